/* SPDX-License-Identifier: Apache-2.0 */
/* Collector unit tests: high-water marks (anomaly, atomic persistence, marker errors, full table, spikes). */
#include "test-collector.h"

/* --- high-water marks ------------------------------------------------------ */

static Snapshot *one_counter(uint64_t total, uint64_t life) {
        Snapshot *s;

        if (snapshot_new(&s) < 0 || snapshot_add_counter(s, "TotalImpressions", total) < 0 ||
            snapshot_add_marker(s, 1, "impressions", life) < 0)
                exit(1);
        return s;
}

void test_highwater(void) {
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
void test_highwater_atomic(void) {
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
void test_highwater_marker_error(void) {
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

bool all_served_have_marks(const HighWater *h, const Snapshot *s) {
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

void test_highwater_full(void) {
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

void test_highwater_spike(void) {
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

