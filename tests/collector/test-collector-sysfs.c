/* SPDX-License-Identifier: Apache-2.0 */
/* Collector unit tests: the sysfs reader on a valid tree, on malformed trees, index names, the full tree,
 * a symlinked root, and junk beside the known counters. */
#include "test-collector.h"

/* --- sysfs --------------------------------------------------------------- */

void test_valid_tree(void) {
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

void test_broken_trees(void) {
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
void test_index_names(void) {
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
void test_full_tree(void) {
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
void test_root_symlink(void) {
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

void test_junk(void) {
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

