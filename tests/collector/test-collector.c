/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the collector's logic: value parsers, the sysfs reader on a
 * valid tree and on one broken tree per malformed class, the high-water marks
 * (anomaly, persistence, corruption), and the simulator's determinism.
 *
 *   test-collector EXAMPLE-TREE */
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>

#include "counter-model.h"
#include "counter-value.h"
#include "fileio.h"
#include "highwater.h"
#include "source.h"

static unsigned failures, checks;

#define CHECK(cond, ...)                                                      \
        do {                                                                  \
                checks++;                                                     \
                if (!(cond)) {                                                \
                        failures++;                                           \
                        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
                        fprintf(stderr, __VA_ARGS__);                         \
                        fputc('\n', stderr);                                  \
                }                                                             \
        } while (0)

static const char *example;
/* The time the high-water tests judge at: a boot 1000 s old. */
static HighWaterClock clk = { .boot_usec = 1000 * 1000000LL, .real_usec = 1700000000ULL * 1000000ULL };
static char tmpdir[] = "/tmp/test-collector-XXXXXX";

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

static void write_file(const char *dir, const char *rel, const char *content, size_t len) {
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

static void put(const char *dir, const char *rel, const char *content) {
        write_file(dir, rel, content, strlen(content));
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static void rm_rf(const char *p) {
        (void) nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh copy of the example tree under tmpdir/name. */
static char *fresh_tree(const char *name) {
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

static Snapshot *read_tree(const char *path, size_t max_file, unsigned max_files) {
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

static const Counter *find_counter(const Snapshot *s, const char *name) {
        for (size_t i = 0; i < s->n_counters; i++)
                if (streq(s->counters[i].name, name))
                        return &s->counters[i];
        return NULL;
}

static const Supply *find_supply(const Snapshot *s, uint32_t index) {
        for (size_t i = 0; i < s->n_supplies; i++)
                if (s->supplies[i].index == index)
                        return &s->supplies[i];
        return NULL;
}

static bool has_error(const Snapshot *s, const char *name, const char *reason_part) {
        for (size_t i = 0; i < s->n_errors; i++)
                if (streq(s->errors[i].name, name) && strstr(s->errors[i].reason, reason_part))
                        return true;
        return false;
}

static void dump_errors(const Snapshot *s) {
        for (size_t i = 0; i < s->n_errors; i++)
                fprintf(stderr, "  error %s: %s\n", s->errors[i].name, s->errors[i].reason);
}

/* --- sysfs --------------------------------------------------------------- */

static void test_valid_tree(void) {
        _cleanup_(snapshot_freep) Snapshot *s = read_tree(example, 4096, 1024);
        const Supply *p;

        CHECK(s->n_errors == 0, "the example tree reads without errors (%zu)", s->n_errors);
        dump_errors(s);
        CHECK(streq_ptr(s->serial, "CNB7X01234") && streq_ptr(s->model, "Example ColorLaser 4200dn"), "identity");
        CHECK(s->n_counters == 8, "8 billing counters (%zu)", s->n_counters);
        CHECK(find_counter(s, "TotalImpressions") && find_counter(s, "TotalImpressions")->value == 125000,
              "TotalImpressions = 125000");
        CHECK(find_counter(s, "LargeFormatSheets") && streq(find_counter(s, "LargeFormatSheets")->unit, "sheets"),
              "a further counter the source offers is served, its unit from its name");
        CHECK(strcmp(s->counters[0].name, s->counters[1].name) < 0, "counters sorted by name");
        CHECK(s->n_markers == 1 && s->markers[0].value == 125000 && streq(s->markers[0].unit, "impressions"),
              "marker 1 life count with its unit");
        CHECK(s->n_supplies == 6, "6 supplies (%zu)", s->n_supplies);
        p = find_supply(s, 1);
        CHECK(p && streq(p->type, "toner") && streq(p->colorant, "black") && p->level.state == LEVEL_VALUE &&
              p->level.value == 1830 && p->max_capacity.value == 2400, "supply 1: black toner 1830/2400");
        p = find_supply(s, 4);
        CHECK(p && p->level.state == LEVEL_SOME_REMAINING && p->level.value == 0, "-3 is the state some-remaining, value 0");
        p = find_supply(s, 5);
        CHECK(p && p->level.state == LEVEL_UNKNOWN && p->max_capacity.state == LEVEL_UNKNOWN && streq(p->colorant, ""),
              "-2 is the state unknown; absent colorant is empty");
        p = find_supply(s, 6);
        CHECK(p && p->level.state == LEVEL_OTHER && p->max_capacity.state == LEVEL_OTHER, "-1 is the state other");
        CHECK(s->files_read > 40 && s->files_read < 80, "files counted (%u)", s->files_read);
}

/* One broken tree per class: the counter's error names it and says why, the rest is served. */
static void expect_one_broken(const char *what, const char *tree, const char *errname, const char *reason,
                              size_t want_counters, size_t want_supplies) {
        _cleanup_(snapshot_freep) Snapshot *s = read_tree(tree, 4096, 1024);
        bool ok = has_error(s, errname, reason);

        CHECK(ok, "%s: error '%s: …%s…'", what, errname, reason);
        if (!ok)
                dump_errors(s);
        CHECK(s->n_counters == want_counters, "%s: the other billing counters are served (%zu, want %zu)", what,
              s->n_counters, want_counters);
        CHECK(s->n_supplies == want_supplies, "%s: supplies served (%zu, want %zu)", what, s->n_supplies, want_supplies);
        CHECK(s->serial != NULL, "%s: identity still served", what);
}

static void test_broken_trees(void) {
        char *t, outside[4300], p[4300];

        t = fresh_tree("non-numeric");
        put(t, "billing/TotalImpressions", "12a4\n");
        expect_one_broken("non-numeric", t, "TotalImpressions", "not a decimal number", 7, 6);

        t = fresh_tree("negative");
        put(t, "billing/TotalImpressions", "-125000\n");
        expect_one_broken("negative", t, "TotalImpressions", "negative", 7, 6);

        t = fresh_tree("above-2-64");
        put(t, "billing/TotalSheets", "18446744073709551616\n");
        expect_one_broken("above 2^64", t, "TotalSheets", "above 2^64-1", 7, 6);

        t = fresh_tree("empty");
        put(t, "billing/BlankImpressions", "");
        expect_one_broken("empty", t, "BlankImpressions", "empty", 7, 6);

        /* 10 MiB: rejected from its size, before any byte is read. */
        t = fresh_tree("ten-mib");
        {
                char *big = malloc(10 << 20);
                memset(big, '7', 10 << 20);
                write_file(t, "billing/TotalImpressions", big, 10 << 20);
                free(big);
        }
        expect_one_broken("10 MiB file", t, "TotalImpressions", "10485760 bytes exceeds the limit of 4096", 7, 6);

        /* Symlinks escaping the root: a value file and a whole directory. */
        (void) snprintf(outside, sizeof(outside), "%s/outside", tmpdir);
        (void) mkdir(outside, 0755);
        put(outside, "secret", "999999999\n");
        t = fresh_tree("symlink-escape");
        (void) snprintf(p, sizeof(p), "%s/billing/TotalImpressions", t);
        (void) unlink(p);
        (void) snprintf(outside, sizeof(outside), "%s/outside/secret", tmpdir);
        CHECK(symlink(outside, p) == 0, "made a symlink");
        (void) snprintf(p, sizeof(p), "%s/billing/EscapeImpressions", t);
        CHECK(symlink("../../outside/secret", p) == 0, "made a relative symlink");
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 4096, 1024);
                CHECK(has_error(s, "TotalImpressions", "symbolic link, not followed"), "absolute symlink: error");
                CHECK(has_error(s, "EscapeImpressions", "symbolic link, not followed"), "relative ../ symlink: error");
                CHECK(!find_counter(s, "TotalImpressions") && !find_counter(s, "EscapeImpressions"),
                      "no value from outside the root");
                CHECK(s->n_counters == 7, "the rest served");
        }
        /* Hard links: real sysfs has none, and one can name any file on the root's file system. */
        t = fresh_tree("hardlink-escape");
        {
                char odir[4300];
                (void) snprintf(odir, sizeof(odir), "%s/outside", tmpdir);
                put(odir, "model", "Not The Model\n");
        }
        (void) snprintf(p, sizeof(p), "%s/billing/TotalImpressions", t);
        (void) unlink(p);
        CHECK(link(outside, p) == 0, "made a hard link to a file outside the root");
        {
                char model_out[4400], model_in[4300];
                (void) snprintf(model_out, sizeof(model_out), "%s/outside/model", tmpdir);
                (void) snprintf(model_in, sizeof(model_in), "%s/identity/model", t);
                (void) unlink(model_in);
                CHECK(link(model_out, model_in) == 0, "made identity/model a hard link");
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 4096, 1024);
                CHECK(has_error(s, "TotalImpressions", "hard link"), "hard-linked counter: error");
                CHECK(has_error(s, "identity/model", "hard link"), "hard-linked model: error");
                CHECK(!find_counter(s, "TotalImpressions") && s->model == NULL, "nothing served from a hard link");
                CHECK(s->n_counters == 7 && s->serial, "the rest served");
                if (!has_error(s, "identity/model", "hard link"))
                        dump_errors(s);
        }
        t = fresh_tree("symlink-dir-escape");
        (void) snprintf(p, sizeof(p), "%s/supplies/7", t);
        (void) snprintf(outside, sizeof(outside), "%s/outside", tmpdir);
        CHECK(symlink(outside, p) == 0, "made a dir symlink");
        expect_one_broken("symlinked supply directory", t, "supplies/7", "symbolic link, not followed", 8, 6);
        t = fresh_tree("symlink-identity");
        (void) snprintf(p, sizeof(p), "%s/identity", t);
        rm_rf(p);
        CHECK(symlink(outside, p) == 0, "made identity a symlink");
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 4096, 1024);
                CHECK(has_error(s, "identity", "symbolic link"), "symlinked identity directory: error");
                CHECK(s->serial == NULL && s->n_counters == 8, "no identity, counters still served");
        }

        /* Missing files: a supply's level, the serial, a whole directory. */
        t = fresh_tree("missing");
        (void) snprintf(p, sizeof(p), "%s/supplies/2/level", t);
        (void) unlink(p);
        (void) snprintf(p, sizeof(p), "%s/markers/1/counter_unit", t);
        (void) unlink(p);
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 4096, 1024);
                CHECK(has_error(s, "supplies/2/level", "missing"), "missing level: error");
                CHECK(has_error(s, "markers/1/counter_unit", "missing"), "missing counter unit: error");
                CHECK(!find_supply(s, 2) && s->n_supplies == 5, "supply 2 left out, the other 5 served");
                CHECK(s->n_markers == 0 && s->n_counters == 8, "marker left out, counters served");
        }
        t = fresh_tree("missing-dir");
        (void) snprintf(p, sizeof(p), "%s/billing", t);
        rm_rf(p);
        (void) snprintf(p, sizeof(p), "%s/identity/serial", t);
        (void) unlink(p);
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 4096, 1024);
                CHECK(has_error(s, "billing", "missing"), "missing billing directory: error");
                CHECK(has_error(s, "identity/serial", "missing"), "missing serial: error");
                CHECK(s->n_supplies == 6 && s->n_markers == 1, "supplies and markers still served");
        }

        /* Directory loops: symlinks to ".", "..", and a self-referencing link. */
        t = fresh_tree("loops");
        (void) snprintf(p, sizeof(p), "%s/supplies/7", t);
        CHECK(symlink(".", p) == 0, "loop 1");
        (void) snprintf(p, sizeof(p), "%s/markers/2", t);
        CHECK(symlink("..", p) == 0, "loop 2");
        (void) snprintf(p, sizeof(p), "%s/billing/LoopImpressions", t);
        CHECK(symlink("LoopImpressions", p) == 0, "loop 3");
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 4096, 1024);
                CHECK(has_error(s, "supplies/7", "symbolic link"), "symlink to . refused");
                CHECK(has_error(s, "markers/2", "symbolic link"), "symlink to .. refused");
                CHECK(has_error(s, "LoopImpressions", "symbolic link"), "self-loop refused");
                CHECK(s->n_counters == 8 && s->n_supplies == 6 && s->n_markers == 1, "everything else served");
        }

        /* Not regular files: a FIFO (must not hang), a directory, a device. */
        t = fresh_tree("special");
        (void) snprintf(p, sizeof(p), "%s/billing/FifoImpressions", t);
        CHECK(mkfifo(p, 0644) == 0, "made a FIFO");
        (void) snprintf(p, sizeof(p), "%s/billing/DirImpressions", t);
        CHECK(mkdir(p, 0755) == 0, "made a directory");
        (void) snprintf(p, sizeof(p), "%s/supplies/1/level", t);
        (void) unlink(p);
        if (geteuid() == 0)
                CHECK(mknod(p, S_IFCHR | 0644, makedev(1, 5)) == 0, "made /dev/zero's twin");
        else
                CHECK(mkfifo(p, 0644) == 0, "made a FIFO level");
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 4096, 1024);
                CHECK(has_error(s, "FifoImpressions", "not a regular file"), "FIFO refused");
                CHECK(has_error(s, "DirImpressions", "directory"), "directory refused");
                CHECK(has_error(s, "supplies/1/level", "not a regular file"), "device or FIFO level refused");
                CHECK(s->n_counters == 8 && s->n_supplies == 5, "the rest served");
        }

        /* Semantic errors: bad name, bad label, level above max, -3 as max, non-ASCII text. */
        t = fresh_tree("semantic");
        put(t, "billing/Bogus", "5\n");
        put(t, "supplies/1/type", "plutonium\n");
        put(t, "supplies/2/level", "1600\n");
        put(t, "supplies/3/max_capacity", "-3\n");
        put(t, "supplies/4/description", "Gelb \xc3\xa9\n");
        put(t, "identity/model", "Bad\x1b[31mModel\n");
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 4096, 1024);
                CHECK(has_error(s, "billing/Bogus", "not a counter name"), "name without a unit refused");
                CHECK(has_error(s, "supplies/1/type", "RFC 3805"), "unknown supply type refused");
                CHECK(has_error(s, "supplies/2/level", "above max_capacity"), "level above max refused");
                CHECK(has_error(s, "supplies/3/max_capacity", "-3"), "-3 as max capacity refused");
                CHECK(has_error(s, "supplies/4/description", "printable ASCII"), "non-ASCII description refused");
                CHECK(has_error(s, "identity/model", "printable ASCII"), "escape sequence in model refused");
                CHECK(s->n_supplies == 2 && s->n_counters == 8, "supplies 5, 6 and all counters served");
        }

        /* Names the source controls are sanitized before they reach D-Bus. */
        t = fresh_tree("weird-name");
        put(t, "billing/\xff\x01Impressions", "5\n");
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 4096, 1024);
                CHECK(has_error(s, "??Impressions", "symbol") || has_error(s, "billing/??Impressions", "not a counter name"),
                      "a non-ASCII entry name is reported sanitized");
        }

        /* The file budget: at most M opens and entries per snapshot. */
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(example, 4096, 10);
                CHECK(s->files_read == 10, "no more than 10 files opened (%u)", s->files_read);
                CHECK(s->n_counters < 8, "the limit stops reading");
                bool found = false;
                for (size_t i = 0; i < s->n_errors; i++)
                        if (strstr(s->errors[i].reason, "limit of 10 files"))
                                found = true;
                CHECK(found, "the limit is reported");
        }
        /* The size limit is the configured one, and a file one byte over is refused. */
        t = fresh_tree("size-limit");
        put(t, "billing/TotalImpressions", "1234567\n"); /* 8 bytes */
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 7, 1024);
                CHECK(has_error(s, "TotalImpressions", "8 bytes exceeds the limit of 7"), "limit of 7 bytes enforced");
        }
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 8, 1024);
                CHECK(find_counter(s, "TotalImpressions") && find_counter(s, "TotalImpressions")->value == 1234567,
                      "8 bytes within a limit of 8");
        }

        /* The root vanishing under a running reader: errors, no crash. */
        t = fresh_tree("vanishing");
        {
                SourceLimits limits = { 4096, 1024 };
                _cleanup_(source_freep) Source *src = NULL;
                _cleanup_(snapshot_freep) Snapshot *s = NULL;
                char spec[4200];

                (void) snprintf(spec, sizeof(spec), "sysfs:%s", t);
                CHECK(source_new(spec, &limits, &src) == 0, "opened");
                rm_rf(t);
                CHECK(snapshot_new(&s) == 0 && source_read(src, NULL, 0, s) == 0, "read of a deleted tree succeeds");
                CHECK(s->n_counters == 0 && has_error(s, "root", "missing"), "…and says the root is missing");
        }
}

/* Index directories: only canonical names count, and one index is one entry.
 * A directory named "1\n" beside "1" must not become a second marker 1. */
static void test_index_names(void) {
        char *t, p[4300], q[8800];

        t = fresh_tree("index-names");
        (void) snprintf(p, sizeof(p), "%s/markers/1\n", t);
        CHECK(mkdir(p, 0755) == 0, "made markers/1\\n");
        put(t, "markers/1\n/life_count", "999\n");
        put(t, "markers/1\n/counter_unit", "sheets\n");
        (void) snprintf(p, sizeof(p), "%s/supplies/1\n", t);
        CHECK(mkdir(p, 0755) == 0, "made supplies/1\\n");
        (void) snprintf(q, sizeof(q), "cp -a '%s/supplies/1/.' '%s'", t, p);
        CHECK(system(q) == 0, "copied supply 1");
        put(t, "supplies/1\n/level", "7\n");
        static const char *const odd[] = { "+2", "02", "-1", "0", " 3", "2147483648" };
        for (size_t i = 0; i < ELEMENTSOF(odd); i++) {
                (void) snprintf(p, sizeof(p), "%s/markers/%s", t, odd[i]);
                CHECK(mkdir(p, 0755) == 0, "made markers/%s", odd[i]);
        }
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(t, 4096, 1024);
                unsigned before = failures;
                CHECK(s->n_markers == 1 && s->markers[0].index == 1 && s->markers[0].observed == 125000 &&
                      streq(s->markers[0].unit, "impressions"), "one marker 1, the real one (%zu markers)",
                      s->n_markers);
                CHECK(has_error(s, "markers/1?", "not an index"), "markers/1\\n is an error of its own");
                const Supply *one = find_supply(s, 1);
                CHECK(s->n_supplies == 6 && one && one->level.value == 1830, "one supply 1, the real one (%zu supplies)",
                      s->n_supplies);
                CHECK(has_error(s, "supplies/1?", "not an index"), "supplies/1\\n is an error of its own");
                for (size_t i = 0; i < ELEMENTSOF(odd); i++) {
                        (void) snprintf(p, sizeof(p), "markers/%s", odd[i]);
                        CHECK(has_error(s, p, "not an index"), "%s is not an index", p);
                }
                if (failures != before)
                        dump_errors(s);
        }

        /* The model itself refuses a second entry for one index. */
        _cleanup_(snapshot_freep) Snapshot *s = NULL;
        Supply sup = { .index = 3 };
        CHECK(snapshot_new(&s) == 0 && snapshot_add_marker(s, 1, "impressions", 5) == 0, "marker 1");
        CHECK(snapshot_add_marker(s, 1, "sheets", 6) == -EEXIST && s->n_markers == 1, "a second marker 1 refused");
        CHECK(snapshot_add_supply(s, &sup) == 0, "supply 3");
        CHECK(snapshot_add_supply(s, &sup) == -EEXIST && s->n_supplies == 1, "a second supply 3 refused");
}

static void mkdir_in(const char *dir, const char *rel) {
        char p[4300];

        (void) snprintf(p, sizeof(p), "%s/%s", dir, rel);
        if (mkdir(p, 0755) < 0) {
                perror(p);
                exit(1);
        }
}

/* The largest tree the model allows is read whole within the default limits,
 * so the documented bounds (512 counters, 16 markers, 64 supplies) are reachable. */
static void test_full_tree(void) {
        SourceLimits limits = { SOURCE_FILE_SIZE_DEFAULT, SOURCE_FILES_DEFAULT };
        char root[4300], rel[128];

        (void) snprintf(root, sizeof(root), "%s/full-tree", tmpdir);
        CHECK(mkdir(root, 0755) == 0, "full tree root");
        mkdir_in(root, "identity");
        put(root, "identity/serial", "FULL0001\n");
        put(root, "identity/model", "Full Tree\n");
        mkdir_in(root, "billing");
        for (unsigned i = 0; i < SNAPSHOT_COUNTERS_MAX; i++) {
                (void) snprintf(rel, sizeof(rel), "billing/Tray%uSheets", i);
                put(root, rel, "42\n");
        }
        mkdir_in(root, "markers");
        for (unsigned i = 1; i <= SNAPSHOT_MARKERS_MAX; i++) {
                (void) snprintf(rel, sizeof(rel), "markers/%u", i);
                mkdir_in(root, rel);
                (void) snprintf(rel, sizeof(rel), "markers/%u/life_count", i);
                put(root, rel, "7\n");
                (void) snprintf(rel, sizeof(rel), "markers/%u/counter_unit", i);
                put(root, rel, "impressions\n");
        }
        mkdir_in(root, "supplies");
        for (unsigned i = 1; i <= SNAPSHOT_SUPPLIES_MAX; i++) {
                static const char *const f[][2] = {
                        { "type", "toner\n" }, { "class", "supplyThatIsConsumed\n" }, { "description", "Toner\n" },
                        { "colorant", "black\n" }, { "unit", "percent\n" }, { "level", "50\n" },
                        { "max_capacity", "100\n" },
                };
                (void) snprintf(rel, sizeof(rel), "supplies/%u", i);
                mkdir_in(root, rel);
                for (size_t j = 0; j < ELEMENTSOF(f); j++) {
                        (void) snprintf(rel, sizeof(rel), "supplies/%u/%s", i, f[j][0]);
                        put(root, rel, f[j][1]);
                }
        }
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(root, limits.max_file_size, limits.max_files);
                CHECK(s->n_errors == 0, "a full tree reads without errors under the default limits (%zu)", s->n_errors);
                if (s->n_errors)
                        dump_errors(s);
                CHECK(s->n_counters == SNAPSHOT_COUNTERS_MAX && s->n_markers == SNAPSHOT_MARKERS_MAX &&
                      s->n_supplies == SNAPSHOT_SUPPLIES_MAX, "all %u counters, %u markers, %u supplies served",
                      SNAPSHOT_COUNTERS_MAX, SNAPSHOT_MARKERS_MAX, SNAPSHOT_SUPPLIES_MAX);
                CHECK(s->files_read == SOURCE_FILES_FULL_TREE, "it costs SOURCE_FILES_FULL_TREE (%u) opens and entries (%u)",
                      SOURCE_FILES_FULL_TREE, s->files_read);
        }
        /* One more counter than the model holds: an error, not a silent cut. */
        put(root, "billing/ExtraSheets", "1\n");
        {
                _cleanup_(snapshot_freep) Snapshot *s = read_tree(root, limits.max_file_size, limits.max_files);
                CHECK(s->n_counters == SNAPSHOT_COUNTERS_MAX && s->n_errors == 1 &&
                      strstr(s->errors[0].reason, "too many billing counters"), "counter 513 is an error");
        }
}

/* The root is opened with O_NOFOLLOW: a symlinked root is refused at start,
 * and a root swapped for a symlink later is an error of that snapshot. */
static void test_root_symlink(void) {
        SourceLimits limits = { 4096, 1024 };
        char link[4300], spec[4400], real[4300];
        char *t = fresh_tree("root-real");

        (void) snprintf(real, sizeof(real), "%s", t);
        (void) snprintf(link, sizeof(link), "%s/root-link", tmpdir);
        CHECK(symlink(real, link) == 0, "made a symlink to the tree");
        {
                _cleanup_(source_freep) Source *src = NULL;
                (void) snprintf(spec, sizeof(spec), "sysfs:%s", link);
                CHECK(source_new(spec, &limits, &src) == -ELOOP, "a symlinked root is refused");
        }
        {
                _cleanup_(source_freep) Source *src = NULL;
                (void) snprintf(spec, sizeof(spec), "sysfs:%s//", link);
                CHECK(source_new(spec, &limits, &src) == -ELOOP, "…also when written with a trailing slash");
        }
        {
                _cleanup_(source_freep) Source *src = NULL;
                _cleanup_(snapshot_freep) Snapshot *s = NULL;
                char moved[4400];

                (void) snprintf(spec, sizeof(spec), "sysfs:%s/", real);
                CHECK(source_new(spec, &limits, &src) == 0, "a real root with a trailing slash opens");
                (void) snprintf(moved, sizeof(moved), "%s.moved", real);
                CHECK(rename(real, moved) == 0 && symlink(moved, real) == 0, "root swapped for a symlink");
                CHECK(snapshot_new(&s) == 0 && source_read(src, NULL, 0, s) == 0, "read");
                CHECK(s->n_counters == 0 && has_error(s, "root", "symbolic link, not followed"),
                      "the swapped root is not followed");
        }
}

/* --- high-water marks ------------------------------------------------------ */

static Snapshot *one_counter(uint64_t total, uint64_t life) {
        Snapshot *s;

        if (snapshot_new(&s) < 0 || snapshot_add_counter(s, "TotalImpressions", total) < 0 ||
            snapshot_add_marker(s, 1, "impressions", life) < 0)
                exit(1);
        return s;
}

static void test_highwater(void) {
        char dir[4300];
        int dfd, r;
        HighWater *h = NULL;
        bool *fresh = NULL;

        (void) snprintf(dir, sizeof(dir), "%s/state", tmpdir);
        CHECK(mkdir(dir, 0700) == 0, "state dir");
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(highwater_load(dfd, &h) == 0 && h->n_entries == 0, "first load: no marks");

        Snapshot *s = one_counter(100, 50);
        CHECK(highwater_apply(h, s, &clk, &fresh) == 0 && s->n_anomalies == 0, "first snapshot: no anomaly");
        free(fresh);
        CHECK(h->dirty && highwater_save(h) == 0 && !h->dirty, "marks saved");
        snapshot_free(s);

        s = one_counter(90, 60);
        r = highwater_apply(h, s, &clk, &fresh);
        CHECK(r == 1 && s->n_anomalies == 1 && fresh[0], "decrease: one new anomaly");
        CHECK(streq(s->anomalies[0].counter, "TotalImpressions") && s->anomalies[0].previous == 100 &&
              s->anomalies[0].observed == 90, "anomaly names counter, previous, observed");
        CHECK(s->counters[0].state == COUNTER_ANOMALY && s->counters[0].value == 100 && s->counters[0].observed == 90,
              "flagged; the billable value stays at the mark (no negative delta)");
        CHECK(s->markers[0].state == COUNTER_OK && s->markers[0].value == 60, "an increase elsewhere is fine");
        free(fresh);
        snapshot_free(s);

        s = one_counter(90, 60);
        r = highwater_apply(h, s, &clk, &fresh);
        CHECK(r == 0 && s->n_anomalies == 1 && !fresh[0], "the same decrease again: flagged, not signalled again");
        free(fresh);
        snapshot_free(s);
        CHECK(highwater_save(h) == 0, "saved");
        highwater_free(h);
        h = NULL;

        /* Restart: the marks come back from the file. */
        CHECK(highwater_load(dfd, &h) == 0, "reloaded");
        uint64_t v = 0;
        CHECK(highwater_get(h, "TotalImpressions", &v) == 0 && v == 100, "mark of TotalImpressions kept (%" PRIu64 ")", v);
        CHECK(highwater_get(h, "markers/1/life_count", &v) == 0 && v == 60, "mark of the marker kept");
        s = one_counter(95, 60);
        r = highwater_apply(h, s, &clk, NULL);
        CHECK(r == 1 && s->counters[0].state == COUNTER_ANOMALY && s->counters[0].value == 100,
              "after a restart a value below the mark is still an anomaly");
        snapshot_free(s);
        s = one_counter(101, 61);
        r = highwater_apply(h, s, &clk, NULL);
        CHECK(r == 0 && s->n_anomalies == 0 && s->counters[0].value == 101, "passing the mark clears the anomaly");
        snapshot_free(s);

        /* A counter that had a mark and is gone is an error, not silence. */
        CHECK(snapshot_new(&s) == 0 && snapshot_add_marker(s, 1, "impressions", 61) == 0, "snapshot");
        CHECK(highwater_apply(h, s, &clk, NULL) == 0, "applied");
        CHECK(has_error(s, "TotalImpressions", "missing (high-water mark 101)"), "vanished counter reported missing");
        CHECK(s->n_errors == 1, "only that one");
        snapshot_free(s);
        CHECK(snapshot_new(&s) == 0 && snapshot_add_error(s, "TotalImpressions", "not a decimal number") == 0 &&
              snapshot_add_marker(s, 1, "impressions", 61) == 0, "snapshot");
        CHECK(highwater_apply(h, s, &clk, NULL) == 0 && s->n_errors == 1, "a counter with its own error is not also 'missing'");
        snapshot_free(s);
        highwater_free(h);
        h = NULL;

        struct stat st;
        CHECK(fstatat(dfd, HIGHWATER_FILE ".tmp", &st, 0) < 0 && errno == ENOENT, "no temporary file left");
        CHECK(fstatat(dfd, HIGHWATER_FILE, &st, 0) == 0 && (st.st_mode & 0777) == 0600, "state file mode 0600");

        /* A torn or edited file is refused, not half-trusted. */
        static const char *bad[] = {
                "callhome-collector-highwater 1\ngeneration 1\nmark TotalImpressions 100",
                "callhome-collector-highwater 1\nmark TotalImpressions 100\n",
                "callhome-collector-highwater 1\ngeneration 1\nmark TotalImpressions -5\n",
                "callhome-collector-highwater 1\ngeneration 1\nmark TotalImpressions 1\nmark TotalImpressions 2\n",
                "callhome-collector-highwater 1\ngeneration 1\nmark ../etc 1\n",
                "callhome-collector-highwater 2\ngeneration 1\n",
                "",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int fd = openat(dfd, HIGHWATER_FILE, O_WRONLY | O_TRUNC | O_CLOEXEC);
                CHECK(fd >= 0 && write(fd, bad[i], strlen(bad[i])) == (ssize_t) strlen(bad[i]), "wrote bad file");
                close(fd);
                CHECK(highwater_load(dfd, &h) == -EBADMSG, "corrupt state file %zu refused", i);
        }
        /* A file of the first format (marks without read times) is still read. */
        {
                static const char v1[] = "callhome-collector-highwater 1\ngeneration 7\nmark TotalImpressions 100\n";
                int fd = openat(dfd, HIGHWATER_FILE, O_WRONLY | O_TRUNC | O_CLOEXEC);
                CHECK(fd >= 0 && write(fd, v1, strlen(v1)) == (ssize_t) strlen(v1), "wrote a format 1 file");
                close(fd);
                v = 0;
                CHECK(highwater_load(dfd, &h) == 0 && h->generation == 7 && highwater_get(h, "TotalImpressions", &v) == 0 &&
                      v == 100, "format 1 is read: marks kept (%" PRIu64 ")", v);
                highwater_free(h);
                h = NULL;
        }
        close(dfd);
}

/* highwater_save() replaces the file through a new one and a rename: each save
 * is a new inode, a reader of the old file keeps the whole old content, and a
 * save that cannot create its temporary file fails and leaves the old marks. */
static void test_highwater_atomic(void) {
        _cleanup_free_ char *old_text = NULL, *seen = NULL;
        _cleanup_(highwater_freep) HighWater *h = NULL;
        _cleanup_close_ int dfd = -EBADF, reader = -EBADF;
        char dir[4300], tmp[4400];
        size_t old_len = 0, seen_len = 0;
        struct stat st1, st2, st3;
        uint64_t v = 0;

        (void) snprintf(dir, sizeof(dir), "%s/state-atomic", tmpdir);
        CHECK(mkdir(dir, 0700) == 0, "state dir");
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(dfd >= 0 && highwater_load(dfd, &h) == 0, "loaded");
        if (dfd < 0 || !h)
                return;

        Snapshot *s = one_counter(100, 50);
        CHECK(highwater_apply(h, s, &clk, NULL) == 0 && highwater_save(h) == 0, "first save");
        snapshot_free(s);
        CHECK(fstatat(dfd, HIGHWATER_FILE, &st1, AT_SYMLINK_NOFOLLOW) == 0, "marks file exists");
        CHECK(read_small_file_at(dfd, HIGHWATER_FILE, HIGHWATER_FILE_MAX, &old_text, &old_len) == 0, "read marks");
        reader = openat(dfd, HIGHWATER_FILE, O_RDONLY | O_CLOEXEC);
        CHECK(reader >= 0, "a reader holds the marks file open");

        s = one_counter(200, 60);
        CHECK(highwater_apply(h, s, &clk, NULL) == 0 && h->dirty && highwater_save(h) == 0, "second save");
        snapshot_free(s);
        CHECK(fstatat(dfd, HIGHWATER_FILE, &st2, AT_SYMLINK_NOFOLLOW) == 0 && st2.st_ino != st1.st_ino,
              "the second save is a new file (inode %llu, was %llu), not an in-place write",
              (unsigned long long) st2.st_ino, (unsigned long long) st1.st_ino);
        {
                char buf[HIGHWATER_FILE_MAX];
                ssize_t n = pread(reader, buf, sizeof(buf), 0);
                CHECK(n == (ssize_t) old_len && memcmp(buf, old_text, old_len) == 0,
                      "the reader of the old file still sees all of the old marks (%zd bytes, want %zu)", n, old_len);
                CHECK(strstr(old_text, "mark TotalImpressions 100 "), "…which are the old marks");
        }

        /* No change, no write: the file stays as it is. */
        CHECK(!h->dirty && highwater_save(h) == 0, "nothing to save");
        CHECK(fstatat(dfd, HIGHWATER_FILE, &st3, AT_SYMLINK_NOFOLLOW) == 0 && st3.st_ino == st2.st_ino,
              "an unchanged set is not rewritten");

        /* A failing save: a directory squats on the temporary name, so it cannot be created. */
        (void) snprintf(tmp, sizeof(tmp), "%s/" HIGHWATER_FILE ".tmp", dir);
        CHECK(mkdir(tmp, 0700) == 0, "directory at the temporary name");
        free(old_text);
        old_text = NULL;
        CHECK(read_small_file_at(dfd, HIGHWATER_FILE, HIGHWATER_FILE_MAX, &old_text, &old_len) == 0, "read marks");
        s = one_counter(300, 70);
        CHECK(highwater_apply(h, s, &clk, NULL) == 0 && h->dirty, "marks raised in memory");
        snapshot_free(s);
        int r = highwater_save(h);
        CHECK(r < 0, "the save fails (%d)", r);
        CHECK(h->dirty, "…and the marks stay dirty, to be saved again");
        CHECK(read_small_file_at(dfd, HIGHWATER_FILE, HIGHWATER_FILE_MAX, &seen, &seen_len) == 0 &&
              seen_len == old_len && memcmp(seen, old_text, old_len) == 0, "the old marks are intact");
        CHECK(fstatat(dfd, HIGHWATER_FILE, &st3, AT_SYMLINK_NOFOLLOW) == 0 && st3.st_ino == st2.st_ino,
              "…in the same file");
        CHECK(rmdir(tmp) == 0, "squatter removed");
        CHECK(highwater_save(h) == 0 && !h->dirty, "the next save succeeds");
        highwater_free(h);
        h = NULL;
        CHECK(highwater_load(dfd, &h) == 0 && highwater_get(h, "TotalImpressions", &v) == 0 && v == 300,
              "and the raised mark is what a restart loads (%" PRIu64 ")", v);
}

/* A marker left out for a bad counter_unit has its own error; its life count
 * must not also be reported "missing". */
static void test_highwater_marker_error(void) {
        _cleanup_(highwater_freep) HighWater *h = NULL;
        _cleanup_(snapshot_freep) Snapshot *s = NULL, *s2 = NULL, *s3 = NULL;
        char *t;

        if (highwater_new(-EBADF, &h) < 0)
                exit(1);
        s = read_tree(example, 4096, 1024);
        CHECK(highwater_apply(h, s, &clk, NULL) == 0 && s->n_errors == 0, "marks taken from the example tree");

        t = fresh_tree("bad-counter-unit");
        put(t, "markers/1/counter_unit", "furlongs\n");
        s2 = read_tree(t, 4096, 1024);
        CHECK(s2->n_markers == 0 && has_error(s2, "markers/1/counter_unit", "PrtMarkerCounterUnitTC"),
              "the bad unit is reported and the marker left out");
        CHECK(highwater_apply(h, s2, &clk, NULL) == 0, "applied");
        CHECK(!has_error(s2, "markers/1/life_count", "missing"), "no misleading 'life_count: missing'");
        CHECK(s2->n_errors == 1, "only the true error (%zu errors)", s2->n_errors);
        if (s2->n_errors != 1)
                dump_errors(s2);

        /* A marker whose whole directory is gone is still reported missing. */
        t = fresh_tree("marker-gone");
        char p[4300];
        (void) snprintf(p, sizeof(p), "%s/markers/1", t);
        rm_rf(p);
        s3 = read_tree(t, 4096, 1024);
        CHECK(highwater_apply(h, s3, &clk, NULL) == 0, "applied");
        CHECK(has_error(s3, "markers/1/life_count", "missing (high-water mark 125000)"),
              "a vanished marker is reported missing with its mark");
}

/* --- item: every counter served has a mark, however many came and went ----- */

static Snapshot *junk_snapshot(const char *prefix, uint64_t value) {
        Snapshot *s;
        char name[64];

        if (snapshot_new(&s) < 0)
                exit(1);
        for (unsigned i = 0; i < SNAPSHOT_COUNTERS_MAX; i++) {
                (void) snprintf(name, sizeof(name), "%s%03uImpressions", prefix, i);
                if (snapshot_add_counter(s, name, value) < 0)
                        exit(1);
        }
        for (uint32_t i = 1; i <= SNAPSHOT_MARKERS_MAX; i++)
                if (snapshot_add_marker(s, i, "impressions", value) < 0)
                        exit(1);
        return s;
}

static bool all_served_have_marks(const HighWater *h, const Snapshot *s) {
        uint64_t v;
        char name[64];

        for (size_t i = 0; i < s->n_counters; i++)
                if (highwater_get(h, s->counters[i].name, &v) < 0)
                        return false;
        for (size_t i = 0; i < s->n_markers; i++) {
                (void) snprintf(name, sizeof(name), "markers/%" PRIu32 "/life_count", s->markers[i].index);
                if (highwater_get(h, name, &v) < 0)
                        return false;
        }
        return true;
}

static bool has_error_part(const Snapshot *s, const char *reason_part) {
        for (size_t i = 0; i < s->n_errors; i++)
                if (strstr(s->errors[i].reason, reason_part))
                        return true;
        return false;
}

static void test_highwater_full(void) {
        _cleanup_(highwater_freep) HighWater *h = NULL;
        Snapshot *s;
        char dir[4300];
        int dfd;
        uint64_t v = 0;

        (void) snprintf(dir, sizeof(dir), "%s/state-full", tmpdir);
        CHECK(mkdir(dir, 0700) == 0, "state dir");
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(dfd >= 0 && highwater_load(dfd, &h) == 0, "loaded");
        if (!h)
                return;

        /* 512 junk counters and 16 markers, three times over: the set fills up. */
        static const char *const rounds[] = { "JunkA", "JunkB", "JunkC" };
        for (size_t i = 0; i < ELEMENTSOF(rounds); i++) {
                s = junk_snapshot(rounds[i], 7);
                CHECK(highwater_apply(h, s, &clk, NULL) == 0, "%s applied", rounds[i]);
                CHECK(all_served_have_marks(h, s), "%s: every counter served has a mark", rounds[i]);
                if (i == 2)
                        CHECK(has_error_part(s, "dropped"), "marks dropped to make room are named in the snapshot");
                snapshot_free(s);
        }
        CHECK(h->n_entries == HIGHWATER_ENTRIES_MAX, "the set is full and stays bounded (%zu)", h->n_entries);
        CHECK(highwater_save(h) == 0, "saved");

        /* A new counter still gets its mark, and a decrease is caught. */
        s = one_counter(100, 7);
        CHECK(highwater_apply(h, s, &clk, NULL) == 0 && highwater_get(h, "TotalImpressions", &v) == 0 && v == 100,
              "a new counter beside a full set gets a mark (%" PRIu64 ")", v);
        CHECK(has_error_part(s, "dropped"), "the mark dropped to make room is named in the snapshot");
        CHECK(has_error_part(s, "missing (high-water mark 7)"), "the junk not read is still listed");
        snapshot_free(s);
        s = one_counter(50, 7);
        CHECK(highwater_apply(h, s, &clk, NULL) == 1 && s->n_anomalies == 1 && s->counters[0].state == COUNTER_ANOMALY &&
              s->counters[0].value == 100, "100 -> 50 is an anomaly, signalled");
        snapshot_free(s);
        CHECK(highwater_save(h) == 0, "saved");
        highwater_free(h);
        h = NULL;

        /* …and across a restart. */
        CHECK(highwater_load(dfd, &h) == 0 && highwater_get(h, "TotalImpressions", &v) == 0 && v == 100,
              "the mark is kept across a restart");
        s = one_counter(40, 7);
        CHECK(h && highwater_apply(h, s, &clk, NULL) == 1 && s->counters[0].state == COUNTER_ANOMALY,
              "after a restart 100 -> 40 is still an anomaly");
        snapshot_free(s);
        close(dfd);
}

/* --- item: an implausible increase is held back until confirmed ------------------- */

static HighWaterClock at(int64_t seconds) {
        return (HighWaterClock) { .boot_usec = clk.boot_usec + seconds * 1000000LL,
                                  .real_usec = clk.real_usec + (uint64_t) seconds * 1000000ULL };
}

static int judge_total(HighWater *h, uint64_t total, int64_t seconds, Snapshot **ret) {
        HighWaterClock t = at(seconds);
        Snapshot *s;

        if (snapshot_new(&s) < 0 || snapshot_add_counter(s, "TotalImpressions", total) < 0)
                exit(1);
        int r = highwater_apply(h, s, &t, NULL);
        *ret = s;
        return r;
}

/* The state `text` read back five seconds into another boot whose wall clock says `real_usec`: the verdict on `total`. */
static CounterState after_reboot(const char *text, size_t len, uint64_t real_usec, uint64_t total) {
        _cleanup_(highwater_freep) HighWater *h = NULL;
        _cleanup_(snapshot_freep) Snapshot *s = NULL;
        HighWaterClock t = { .boot_usec = 5000000, .real_usec = real_usec };

        if (highwater_new(-EBADF, &h) < 0 || highwater_parse(text, len, h) < 0)
                return _COUNTER_STATE_MAX;
        highwater_rebase(h, "0123456789abcdef0123456789abcdef", &t);
        if (snapshot_new(&s) < 0 || snapshot_add_counter(s, "TotalImpressions", total) < 0 ||
            highwater_apply(h, s, &t, NULL) < 0)
                return _COUNTER_STATE_MAX;
        return s->counters[0].state;
}

static void test_highwater_spike(void) {
        _cleanup_(highwater_freep) HighWater *h = NULL, *h2 = NULL;
        _cleanup_free_ char *text = NULL;
        Snapshot *s;
        size_t len;
        uint64_t v = 0;

        CHECK(highwater_new(-EBADF, &h) == 0 && h->max_rate == HIGHWATER_MAX_RATE_DEFAULT, "default rate");
        CHECK(judge_total(h, 100000, 0, &s) == 0 && s->counters[0].value == 100000, "baseline 100000");
        snapshot_free(s);

        /* One glitch: 2^64-1 a minute later. Flagged, not adopted, not billed. */
        CHECK(judge_total(h, UINT64_MAX, 60, &s) == 1, "a spike is a new anomaly (signalled)");
        CHECK(s->counters[0].state == COUNTER_ANOMALY && s->counters[0].value == 100000 &&
              s->counters[0].observed == UINT64_MAX, "the value stays at the mark");
        CHECK(s->n_anomalies == 1 && streq(s->anomalies[0].reason, ANOMALY_IMPLAUSIBLE_INCREASE) &&
              s->anomalies[0].previous == 100000, "listed as an implausible increase");
        CHECK(highwater_get(h, "TotalImpressions", &v) == 0 && v == 100000, "the mark is not raised");
        snapshot_free(s);
        CHECK(judge_total(h, UINT64_MAX, 90, &s) == 0 && s->counters[0].value == 100000,
              "the same spike again: still held, not signalled again");
        snapshot_free(s);
        /* The way back: the next plausible reading is adopted, the spike forgotten. */
        CHECK(judge_total(h, 100700, 120, &s) == 0 && s->counters[0].state == COUNTER_OK &&
              s->counters[0].value == 100700 && s->n_anomalies == 0, "a plausible reading after the glitch is billed");
        snapshot_free(s);
        CHECK(highwater_find(h, "TotalImpressions") && !highwater_find(h, "TotalImpressions")->pending,
              "nothing pending any more");

        /* A real jump (a new engine board): held, then confirmed by readings that carry on from it. */
        CHECK(judge_total(h, 5000000, 180, &s) == 1 && s->counters[0].value == 100700, "a jump is held back");
        snapshot_free(s);
        CHECK(judge_total(h, 5000000, 240, &s) == 0 && s->counters[0].state == COUNTER_ANOMALY,
              "one consistent reading that did not advance: still held");
        snapshot_free(s);
        /* A restart in between: what is pending is persisted. */
        CHECK(highwater_format(h, &text, &len) == 0 && strstr(text, " pending 5000000 5000000 "), "pending is written");
        CHECK(highwater_new(-EBADF, &h2) == 0 && highwater_parse(text, len, h2) == 0, "and read back");
        {
                HighWaterClock t = at(250);
                highwater_rebase(h2, h->boot_id[0] ? h->boot_id : "00000000000000000000000000000000", &t);
        }
        CHECK(judge_total(h2, 5000100, 300, &s) == 0 && s->counters[0].state == COUNTER_OK &&
              s->counters[0].value == 5000100, "the second consistent reading, advanced: adopted");
        snapshot_free(s);
        CHECK(highwater_get(h2, "TotalImpressions", &v) == 0 && v == 5000100, "the mark follows");

        /* The rate is configurable: at 60 impressions a minute, 700 in a minute is implausible. */
        h2->max_rate = 60;
        CHECK(judge_total(h2, 5000100 + 700, 360, &s) == 1, "700 in a minute at a maximum of 60/min: anomaly");
        snapshot_free(s);
        h2->max_rate = HIGHWATER_MAX_RATE_DEFAULT;
        CHECK(judge_total(h2, 5000100 + 700, 361, &s) == 0, "…and plausible at the default rate");
        snapshot_free(s);

        /* Across a reboot the wall clock's advance counts: an hour later, 30000 more is fine… */
        free(text);
        text = NULL;
        CHECK(highwater_format(h2, &text, &len) == 0, "written");
        CHECK(after_reboot(text, len, at(361 + 3600).real_usec, 5000800 + 30000) == COUNTER_OK,
              "after a reboot an hour later, 30000 more is plausible");
        /* …but a clock set back across a reboot leaves only the time since boot. */
        CHECK(after_reboot(text, len, 1000000, 5000800 + 30000) == COUNTER_ANOMALY,
              "with the clock set back, 30000 more five seconds after boot is implausible");

        /* A first reading beyond any engine's life is not served at all. */
        highwater_free(h);
        h = NULL;
        CHECK(highwater_new(-EBADF, &h) == 0, "new set");
        CHECK(judge_total(h, UINT64_MAX, 0, &s) == 0 && s->n_counters == 0 &&
              has_error(s, "TotalImpressions", "implausible first reading"), "2^64-1 as a first reading: an error");
        CHECK(highwater_get(h, "TotalImpressions", &v) == -ENOENT, "…and no mark");
        snapshot_free(s);
}

/* --- item: junk beside the known counters ------------------------------------------------ */

static Snapshot *read_tree_marked(const char *path, const HighWater *h) {
        SourceLimits limits = { SOURCE_FILE_SIZE_DEFAULT, SOURCE_FILES_DEFAULT };
        _cleanup_(source_freep) Source *src = NULL;
        _cleanup_free_ const char **known = NULL;
        char spec[4200];
        Snapshot *s = NULL;
        size_t n;

        (void) snprintf(spec, sizeof(spec), "sysfs:%s", path);
        if (highwater_names(h, &known, &n) < 0 || source_new(spec, &limits, &src) < 0 || snapshot_new(&s) < 0 ||
            source_read(src, known, n, s) < 0) {
                fprintf(stderr, "cannot read %s\n", path);
                exit(1);
        }
        return s;
}

/* n junk files billing/PREFIX%04uSUFFIX. */
static void put_junk(const char *tree, unsigned n, const char *prefix, const char *suffix) {
        char rel[128];

        for (unsigned i = 0; i < n; i++) {
                (void) snprintf(rel, sizeof(rel), "billing/%s%04u%s", prefix, i, suffix);
                put(tree, rel, "1\n");
        }
}

static void test_junk(void) {
        _cleanup_(highwater_freep) HighWater *h = NULL;
        char *t, p[4300];
        Snapshot *s;

        CHECK(highwater_new(-EBADF, &h) == 0, "new set");
        s = read_tree_marked(example, h);
        CHECK(highwater_apply(h, s, &clk, NULL) == 0 && s->n_counters == 8, "marks from the example tree");
        snapshot_free(s);

        /* 2,100 names that are no counters. */
        t = fresh_tree("junk-names");
        put_junk(t, 2100, "junk", "");
        s = read_tree_marked(t, h);
        CHECK(s->n_counters == 8, "all 8 known counters served beside 2100 junk names (%zu)", s->n_counters);
        CHECK(s->n_markers == 1 && s->n_supplies == 6, "the marker and the 6 supplies too (%zu, %zu)", s->n_markers,
              s->n_supplies);
        CHECK(has_error(s, "snapshot", "too many errors"), "the junk's errors are folded");
        CHECK(s->files_read <= SOURCE_FILES_DEFAULT, "within the budget (%u)", s->files_read);
        snapshot_free(s);

        /* 2,100 junk counters with valid names: the model holds 512, the known ones first. */
        t = fresh_tree("junk-counters");
        put_junk(t, 2100, "Junk", "Impressions");
        s = read_tree_marked(t, h);
        CHECK(find_counter(s, "TotalImpressions") && find_counter(s, "LargeFormatSheets") && s->n_counters == 512,
              "the known counters are among the 512 served");
        CHECK(s->n_markers == 1 && s->n_supplies == 6, "markers and supplies served");
        CHECK(highwater_apply(h, s, &clk, NULL) >= 0 && all_served_have_marks(h, s), "every counter served has a mark");
        snapshot_free(s);

        /* More counters with marks than the model serves: the PWG ones first, the
         * rest named, and the budget still reaches the markers and supplies. */
        s = read_tree_marked(t, h);
        CHECK(s->n_counters == 512 && s->n_markers == 1 && s->n_supplies == 6, "read again");
        CHECK(highwater_apply(h, s, &clk, NULL) >= 0, "applied");
        snapshot_free(s);
        t = fresh_tree("junk-marked");
        put_junk(t, 1100, "Junk", "Impressions");
        {
                /* Marks for all 1100 junk counters, from two snapshots of 512 and one of 76. */
                char name[64];
                for (unsigned i = 0; i < 1100; i += 512) {
                        Snapshot *j;
                        if (snapshot_new(&j) < 0)
                                exit(1);
                        for (unsigned k = i; k < MIN(i + 512U, 1100U); k++) {
                                (void) snprintf(name, sizeof(name), "Junk%04uImpressions", k);
                                if (snapshot_add_counter(j, name, 1) < 0)
                                        exit(1);
                        }
                        CHECK(highwater_apply(h, j, &clk, NULL) >= 0, "junk marked");
                        snapshot_free(j);
                }
        }
        s = read_tree_marked(t, h);
        CHECK(s->n_counters == 512 && find_counter(s, "TotalImpressions") && find_counter(s, "TotalSheets"),
              "512 counters served, the PWG ones among them");
        CHECK(s->n_markers == 1 && s->n_supplies == 6, "markers and supplies served (%zu, %zu)", s->n_markers,
              s->n_supplies);
        CHECK(has_error(s, "Junk1099Impressions", "too many billing counters") ||
              has_error(s, "LargeFormatSheets", "too many billing counters"), "the marked counters not read are named");
        snapshot_free(s);

        /* 1,030 junk names and a counter with a mark gone: it is named, not folded. */
        t = fresh_tree("junk-vanished");
        put_junk(t, 1030, "junk", "");
        (void) snprintf(p, sizeof(p), "%s/billing/TotalSheets", t);
        CHECK(unlink(p) == 0, "TotalSheets removed");
        (void) snprintf(p, sizeof(p), "%s/markers/1", t);
        rm_rf(p);
        s = read_tree_marked(t, h);
        CHECK(highwater_apply(h, s, &clk, NULL) >= 0, "applied");
        CHECK(has_error(s, "TotalSheets", "missing (high-water mark 105000)"), "the vanished counter is named");
        CHECK(has_error(s, "markers/1/life_count", "missing (high-water mark 125000)"), "the vanished marker is named");
        CHECK(has_error(s, "snapshot", "too many errors"), "while the junk is folded");
        snapshot_free(s);
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
