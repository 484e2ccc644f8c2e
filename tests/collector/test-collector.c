/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the collector's logic: value parsers, the sysfs reader on a
 * valid tree and on one broken tree per malformed class, the high-water marks
 * (anomaly, persistence, corruption), and the simulator's determinism.
 *
 *   test-collector EXAMPLE-TREE */
#include "test-collector.h"

unsigned failures, checks;

const char *example;
/* The time the high-water tests judge at: a boot 1000 s old. */
HighWaterClock clk = { .boot_usec = 1000 * 1000000LL, .real_usec = 1700000000ULL * 1000000ULL };
char tmpdir[] = "/tmp/test-collector-XXXXXX";


/* --- parsers ------------------------------------------------------------- */

static void test_parsers(void) {
        static const struct {
                const char *in;
                int r;
                uint64_t v;
        } u64[] = {
                { "0", 0, 0 },
                { "0\n", 0, 0 },
                { "125000\n", 0, 125000 },
                { "18446744073709551615\n", 0, UINT64_MAX },
                { "18446744073709551616\n", -ERANGE, 0 },
                { "99999999999999999999999\n", -ERANGE, 0 },
                { "-1\n", -ERANGE, 0 },
                { "", -EINVAL, 0 },
                { "\n", -EINVAL, 0 },
                { "\n\n", -EINVAL, 0 },
                { "12a4\n", -EINVAL, 0 },
                { " 12\n", -EINVAL, 0 },
                { "12 \n", -EINVAL, 0 },
                { "+12\n", -EINVAL, 0 },
                { "0x10\n", -EINVAL, 0 },
                { "012\n", -EINVAL, 0 },
                { "1\n2\n", -EINVAL, 0 },
                { "12\r\n", -EINVAL, 0 },
        };
        const char *reason;
        uint64_t v;

        for (size_t i = 0; i < ELEMENTSOF(u64); i++) {
                reason = NULL;
                int r = counter_parse_u64(u64[i].in, strlen(u64[i].in), &v, &reason);
                CHECK(r == u64[i].r, "u64 '%s': got %d want %d", u64[i].in, r, u64[i].r);
                if (r == 0)
                        CHECK(v == u64[i].v, "u64 '%s' value", u64[i].in);
                else
                        CHECK(reason && *reason, "u64 '%s' has a reason", u64[i].in);
        }
        /* An embedded NUL is garbage, not a terminator. */
        CHECK(counter_parse_u64("12\0" "3", 4, &v, &reason) == -EINVAL, "NUL inside a value is rejected");
        CHECK(strstr(reason, "NUL"), "…with a reason naming it");

        static const struct {
                const char *in;
                bool is_max;
                int r;
                LevelState s;
                int32_t v;
        } lv[] = {
                { "1830\n", false, 0, LEVEL_VALUE, 1830 },
                { "0\n", false, 0, LEVEL_VALUE, 0 },
                { "-1\n", false, 0, LEVEL_OTHER, 0 },
                { "-2\n", false, 0, LEVEL_UNKNOWN, 0 },
                { "-3\n", false, 0, LEVEL_SOME_REMAINING, 0 },
                { "-3\n", true, -EINVAL, 0, 0 },
                { "-1\n", true, 0, LEVEL_OTHER, 0 },
                { "-4\n", false, -ERANGE, 0, 0 },
                { "-0\n", false, -ERANGE, 0, 0 },
                { "-\n", false, -ERANGE, 0, 0 },
                { "2147483647\n", false, 0, LEVEL_VALUE, INT32_MAX },
                { "2147483648\n", false, -ERANGE, 0, 0 },
                { "abc\n", false, -EINVAL, 0, 0 },
                { "", false, -EINVAL, 0, 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(lv); i++) {
                LevelValue l = { 99, 99 };
                int r = counter_parse_level(lv[i].in, strlen(lv[i].in), lv[i].is_max, &l, &reason);
                CHECK(r == lv[i].r, "level '%s' max=%d: got %d want %d", lv[i].in, lv[i].is_max, r, lv[i].r);
                if (r == 0)
                        CHECK(l.state == lv[i].s && l.value == lv[i].v, "level '%s' state/value", lv[i].in);
        }

        uint32_t idx;
        CHECK(counter_parse_index("1", 1, &idx, &reason) == 0 && idx == 1, "index 1");
        CHECK(counter_parse_index("0", 1, &idx, &reason) < 0, "index 0 rejected");
        CHECK(counter_parse_index("01", 2, &idx, &reason) < 0, "index 01 rejected");
        CHECK(counter_parse_index("2147483648", 10, &idx, &reason) < 0, "index 2^31 rejected");
        CHECK(counter_parse_index("2147483647", 10, &idx, &reason) == 0 && idx == INT32_MAX, "index 2^31-1");
        /* An index is a directory name, not a file's value: the whole name, nothing stripped. */
        static const char *const bad_index[] = { "1\n", "", "\n", "+1", "-1", " 1", "1 ", "1\r", "0x1", "1a",
                                                 "00000000001", "99999999999" };
        for (size_t i = 0; i < ELEMENTSOF(bad_index); i++) {
                reason = NULL;
                CHECK(counter_parse_index(bad_index[i], strlen(bad_index[i]), &idx, &reason) < 0 && reason && *reason,
                      "index name %zu rejected, with a reason", i);
        }
        CHECK(counter_parse_index("1\0", 2, &idx, &reason) < 0, "index with a NUL rejected");

        char *s = NULL;
        CHECK(counter_parse_text("Black Toner\n", 12, 255, &s, &reason) == 0 && streq(s, "Black Toner"), "text");
        free(s);
        CHECK(counter_parse_text("caf\xc3\xa9\n", 6, 255, &s, &reason) == -EINVAL, "non-ASCII text rejected");
        CHECK(counter_parse_text("a\tb\n", 4, 255, &s, &reason) == -EINVAL, "control character rejected");
        CHECK(counter_parse_text("abcdef", 6, 5, &s, &reason) == -E2BIG, "long text rejected");
        CHECK(counter_parse_serial("CNB7X01234\n", 11, &s, &reason) == 0 && streq(s, "CNB7X01234"), "serial");
        free(s);
        CHECK(counter_parse_serial("CN B7\n", 6, &s, &reason) == -EINVAL, "serial with a space rejected");
        CHECK(counter_parse_serial("CN/B7\n", 6, &s, &reason) == -EINVAL, "serial with a slash rejected");
        char tok[COUNTER_TOKEN_MAX + 1];
        CHECK(counter_parse_token("toner\n", 6, tok, &reason) == 0 && streq(tok, "toner"), "token");
        CHECK(counter_parse_token("to ner\n", 7, tok, &reason) == -EINVAL, "token with space rejected");

        CHECK(streq_ptr(billing_counter_unit("TotalImpressions"), "impressions"), "unit of TotalImpressions");
        CHECK(streq_ptr(billing_counter_unit("TotalSheets"), "sheets"), "unit of TotalSheets");
        CHECK(billing_counter_unit("Impressions") == NULL, "a bare unit is not a counter name");
        CHECK(billing_counter_unit("Toner") == NULL, "a name without a unit is rejected");
        CHECK(billing_counter_unit("Total-Impressions") == NULL, "a name with '-' is rejected");
}

/* --- tree helpers -------------------------------------------------------- */

void write_file(const char *dir, const char *rel, const char *content, size_t len) {
        char p[4096];
        int fd;

        (void) snprintf(p, sizeof(p), "%s/%s", dir, rel);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, content, len) != (ssize_t) len) {
                perror(p);
                exit(1);
        }
        close(fd);
}

void put(const char *dir, const char *rel, const char *content) {
        write_file(dir, rel, content, strlen(content));
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

void rm_rf(const char *p) {
        (void) nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh copy of the example tree under tmpdir/name. */
char *fresh_tree(const char *name) {
        static char path[4096];
        char cmd[8192];

        (void) snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        rm_rf(path);
        (void) snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", example, path);
        if (system(cmd) != 0) {
                fprintf(stderr, "cp failed\n");
                exit(1);
        }
        return path;
}

Snapshot *read_tree(const char *path, size_t max_file, unsigned max_files) {
        SourceLimits limits = { max_file, max_files };
        _cleanup_(source_freep) Source *src = NULL;
        char spec[4200];
        Snapshot *s = NULL;

        (void) snprintf(spec, sizeof(spec), "sysfs:%s", path);
        if (source_new(spec, &limits, &src) < 0 || snapshot_new(&s) < 0 || source_read(src, NULL, 0, s) < 0) {
                fprintf(stderr, "cannot read %s\n", path);
                exit(1);
        }
        return s;
}

const Counter *find_counter(const Snapshot *s, const char *name) {
        for (size_t i = 0; i < s->n_counters; i++)
                if (streq(s->counters[i].name, name))
                        return &s->counters[i];
        return NULL;
}

const Supply *find_supply(const Snapshot *s, uint32_t index) {
        for (size_t i = 0; i < s->n_supplies; i++)
                if (s->supplies[i].index == index)
                        return &s->supplies[i];
        return NULL;
}

bool has_error(const Snapshot *s, const char *name, const char *reason_part) {
        for (size_t i = 0; i < s->n_errors; i++)
                if (streq(s->errors[i].name, name) && strstr(s->errors[i].reason, reason_part))
                        return true;
        return false;
}

void dump_errors(const Snapshot *s) {
        for (size_t i = 0; i < s->n_errors; i++)
                fprintf(stderr, "  error %s: %s\n", s->errors[i].name, s->errors[i].reason);
}

/* --- simulator ------------------------------------------------------------- */

static char *sim_render(uint64_t seed, void (*script)(SimPrinter *p)) {
        _cleanup_(sim_printer_freep) SimPrinter *p = NULL;
        _cleanup_(snapshot_freep) Snapshot *s = NULL;
        char *out = NULL;

        if (sim_printer_new(seed, &p) < 0)
                exit(1);
        script(p);
        if (snapshot_new(&s) < 0 || sim_printer_read(p, s) < 0 || snapshot_format(s, &out) < 0)
                exit(1);
        return out;
}

static void script_a(SimPrinter *p) {
        (void) sim_printer_step(p, 500);
        (void) sim_printer_replace_supply(p, 2);
        (void) sim_printer_step(p, 1234);
}

static void script_b(SimPrinter *p) {
        (void) sim_printer_step(p, 1734);
}

static void test_sim(void) {
        _cleanup_free_ char *a1 = sim_render(42, script_a), *a2 = sim_render(42, script_a);
        _cleanup_free_ char *b = sim_render(43, script_a), *c = sim_render(42, script_b);
        _cleanup_(sim_printer_freep) SimPrinter *p = NULL;
        _cleanup_(snapshot_freep) Snapshot *s = NULL;

        CHECK(streq(a1, a2), "same seed, same steps: identical snapshots");
        CHECK(!streq(a1, b), "another seed: another printer");
        CHECK(!streq(a1, c), "a cartridge replacement shows");

        CHECK(sim_printer_new(7, &p) == 0 && sim_printer_step(p, 2000) == 0, "sim printed 2000 sheets");
        CHECK(snapshot_new(&s) == 0 && sim_printer_read(p, s) == 0, "sim read");
        const Counter *t = find_counter(s, "TotalImpressions"), *m = find_counter(s, "MonochromeImpressions"),
                      *f = find_counter(s, "FullColorImpressions"), *bl = find_counter(s, "BlankImpressions"),
                      *sh = find_counter(s, "TotalSheets"), *d = find_counter(s, "TotalTwoSidedImpressions");
        CHECK(t && m && f && bl && sh && d, "all PWG counters present");
        CHECK(t->value == m->value + f->value + bl->value, "impressions add up (%" PRIu64 ")", t->value);
        CHECK(sh->value == 2010 && t->value == sh->value + d->value / 2, "sheets and duplex consistent");
        CHECK(s->supplies[0].level.value < 2400, "black toner used");
        CHECK(s->supplies[5].level.state == LEVEL_SOME_REMAINING && s->supplies[5].max_capacity.state == LEVEL_UNKNOWN,
              "waste toner shows the special values as states");
        CHECK(sim_printer_replace_supply(p, 1) == 0, "replace black");
        CHECK(sim_printer_replace_supply(p, 6) == -EOPNOTSUPP, "waste box has no numeric capacity");
        CHECK(sim_printer_replace_supply(p, 99) == -ENOENT, "no supply 99");
        CHECK(sim_printer_reset_counter(p, "Nope") == -ENOENT, "unknown counter");
        CHECK(sim_printer_step(p, SIM_STEP_MAX + 1) == -E2BIG, "step bound");
        snapshot_free(s);
        s = NULL;
        CHECK(sim_printer_reset_counter(p, "TotalImpressions") == 0, "reset");
        CHECK(snapshot_new(&s) == 0 && sim_printer_read(p, s) == 0, "sim read");
        CHECK(s->supplies[0].level.value == 2400, "black full again");
        CHECK(find_counter(s, "TotalImpressions")->observed == 0, "counter reset to 0");
}

int main(int argc, char *argv[]) {
        if (argc != 2) {
                fprintf(stderr, "Usage: test-collector EXAMPLE-TREE\n");
                return 2;
        }
        example = argv[1];
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        test_parsers();
        test_valid_tree();
        test_broken_trees();
        test_index_names();
        test_full_tree();
        test_root_symlink();
        test_highwater();
        test_highwater_atomic();
        test_highwater_marker_error();
        test_highwater_full();
        test_highwater_spike();
        test_junk();
        test_sim();
        rm_rf(tmpdir);
        printf("%u checks, %u failures\n", checks, failures);
        return failures ? 1 : 0;
}
