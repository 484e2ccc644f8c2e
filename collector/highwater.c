/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-id128.h>
#include <time.h>

#include "fileio.h"
#include "highwater.h"

#define HEADER_V1 "callhome-collector-highwater 1\n"
#define HEADER "callhome-collector-highwater 2\n"
#define USEC_PER_SEC UINT64_C(1000000)
/* Read times are kept far from the int64 limits, so shifting them cannot overflow. */
#define AGE_MAX (INT64_MAX / 4)

void highwater_clock_now(HighWaterClock *ret) {
        struct timespec b, r;

        (void) clock_gettime(CLOCK_BOOTTIME, &b);
        (void) clock_gettime(CLOCK_REALTIME, &r);
        *ret = (HighWaterClock) {
                .boot_usec = (int64_t) b.tv_sec * (int64_t) USEC_PER_SEC + b.tv_nsec / 1000,
                .real_usec = (uint64_t) r.tv_sec * USEC_PER_SEC + (uint64_t) r.tv_nsec / 1000,
        };
}

int highwater_new(int dir_fd, HighWater **ret) {
        HighWater *h = calloc(1, sizeof(HighWater));

        if (!h)
                return -ENOMEM;
        h->dir_fd = dir_fd;
        h->max_rate = HIGHWATER_MAX_RATE_DEFAULT;
        *ret = h;
        return 0;
}

HighWater *highwater_free(HighWater *h) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n_entries; i++)
                free(h->entries[i].name);
        free(h->entries);
        free(h);
        return NULL;
}

/* Entries are kept sorted by name: lookups are a binary search. */
static size_t lower_bound(const HighWater *h, const char *name) {
        size_t lo = 0, hi = h->n_entries;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (strcmp(h->entries[mid].name, name) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static HighWaterEntry *find(const HighWater *h, const char *name) {
        size_t i = lower_bound(h, name);
        return i < h->n_entries && streq(h->entries[i].name, name) ? &h->entries[i] : NULL;
}

const HighWaterEntry *highwater_find(const HighWater *h, const char *name) {
        return find(h, name);
}

int highwater_get(const HighWater *h, const char *name, uint64_t *ret) {
        HighWaterEntry *e = find(h, name);
        if (!e)
                return -ENOENT;
        *ret = e->mark;
        return 0;
}

int highwater_names(const HighWater *h, const char ***ret, size_t *ret_n) {
        const char **names = calloc(h->n_entries ?: 1, sizeof(char *));

        if (!names)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_entries; i++)
                names[i] = h->entries[i].name;
        *ret = names;
        *ret_n = h->n_entries;
        return 0;
}

static int add(HighWater *h, const char *name, uint64_t mark, HighWaterEntry **ret) {
        HighWaterEntry *p;
        char *n;

        if (h->n_entries >= HIGHWATER_ENTRIES_MAX)
                return -E2BIG;
        n = strdup(name);
        if (!n)
                return -ENOMEM;
        p = reallocarray(h->entries, h->n_entries + 1, sizeof(HighWaterEntry));
        if (!p) {
                free(n);
                return -ENOMEM;
        }
        h->entries = p;
        size_t i = lower_bound(h, name);
        memmove(p + i + 1, p + i, (h->n_entries - i) * sizeof(HighWaterEntry));
        p[i] = (HighWaterEntry) { .name = n, .mark = mark };
        if (ret)
                *ret = &p[i];
        h->n_entries++;
        return 0;
}

static bool mark_name_is_valid(const char *s) {
        /* A billing counter name or markers/N/life_count. */
        if (counter_name_is_valid(s))
                return true;
        if (strncmp(s, "markers/", 8) != 0)
                return false;
        s += 8;
        size_t d = strspn(s, "0123456789");
        return d > 0 && d <= 10 && s[0] != '0' && streq(s + d, "/life_count");
}

/* --- the state file ---------------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *ret) {
        return counter_parse_u64(s, strlen(s), ret, NULL) < 0 ? -EBADMSG : 0;
}

/* Canonical signed decimal (no "-0", no leading zero), at most AGE_MAX either way. */
static int parse_i64(const char *s, int64_t *ret) {
        bool neg = s[0] == '-';
        uint64_t v;

        if (parse_u64(s + neg, &v) < 0 || v > (uint64_t) AGE_MAX || (neg && v == 0))
                return -EBADMSG;
        *ret = neg ? -(int64_t) v : (int64_t) v;
        return 0;
}

/* Splits a line at single spaces; an empty field is malformed. */
static int split(char *line, char **fields, size_t max, size_t *ret_n) {
        size_t n = 0;

        for (char *p = line;;) {
                char *sp = strchr(p, ' ');
                if (n >= max || *p == '\0' || p == sp)
                        return -EBADMSG;
                fields[n++] = p;
                if (!sp)
                        break;
                *sp = '\0';
                p = sp + 1;
        }
        *ret_n = n;
        return 0;
}

static int parse_mark(HighWater *h, char **f, size_t n, bool v1) {
        HighWaterEntry *e;
        uint64_t mark;
        int r;

        if (n != (v1 ? 3U : 4U) && (v1 || n != 9))
                return -EBADMSG;
        /* Canonical form: names strictly ascending (which also refuses duplicates). */
        if (h->n_entries > 0 && strcmp(h->entries[h->n_entries - 1].name, f[1]) >= 0)
                return -EBADMSG;
        if (!mark_name_is_valid(f[1]) || parse_u64(f[2], &mark) < 0)
                return -EBADMSG;
        r = add(h, f[1], mark, &e);
        if (r < 0)
                return r == -E2BIG ? -EBADMSG : r;
        if (v1)
                return 0;
        if (parse_i64(f[3], &e->read_usec) < 0)
                return -EBADMSG;
        if (n == 9) {
                uint64_t reads;
                if (!streq(f[4], "pending") || parse_u64(f[5], &e->pending_first) < 0 ||
                    parse_u64(f[6], &e->pending_last) < 0 || parse_i64(f[7], &e->pending_usec) < 0 ||
                    parse_u64(f[8], &reads) < 0 || reads > UINT32_MAX)
                        return -EBADMSG;
                /* Held back means above the mark, and confirmed only upwards. */
                if (e->pending_first <= mark || e->pending_last < e->pending_first)
                        return -EBADMSG;
                e->pending = true;
                e->pending_reads = (uint32_t) reads;
        }
        return 0;
}

static bool boot_id_is_valid(const char *s) {
        return strlen(s) == HIGHWATER_BOOT_ID_LEN && strspn(s, "0123456789abcdef") == HIGHWATER_BOOT_ID_LEN;
}

/* Format 2: a header line, "generation N", "clock BOOT_ID BOOTTIME REALTIME"
 * (when it was written), then "mark NAME VALUE READ_USEC [pending FIRST LAST
 * USEC READS]" lines. Format 1 (marks without read times) is still read. */
int highwater_parse(const char *buf, size_t len, HighWater *h) {
        const char *p = buf, *end = buf + len;
        bool have_generation = false, have_clock = false, v1;
        int r;

        if (len > HIGHWATER_FILE_MAX || len < strlen(HEADER) || memchr(buf, '\0', len))
                return -EBADMSG;
        if (memcmp(buf, HEADER, strlen(HEADER)) == 0)
                v1 = false;
        else if (memcmp(buf, HEADER_V1, strlen(HEADER_V1)) == 0)
                v1 = true;
        else
                return -EBADMSG;
        p += strlen(HEADER);
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                char line[256], *f[9];
                size_t n;

                if (!nl)
                        return -EBADMSG; /* every line ends in a newline: a cut file is not ours */
                n = (size_t) (nl - p);
                if (n >= sizeof(line))
                        return -EBADMSG;
                memcpy(line, p, n);
                line[n] = '\0';
                p = nl + 1;
                if (split(line, f, ELEMENTSOF(f), &n) < 0)
                        return -EBADMSG;

                /* Canonical order: generation, clock (format 2), marks. */
                if (streq(f[0], "generation")) {
                        if (have_generation || n != 2 || parse_u64(f[1], &h->generation) < 0)
                                return -EBADMSG;
                        have_generation = true;
                } else if (streq(f[0], "clock")) {
                        int64_t boot;
                        if (v1 || !have_generation || have_clock || n != 4 || !boot_id_is_valid(f[1]) ||
                            parse_i64(f[2], &boot) < 0 || boot < 0 || parse_u64(f[3], &h->now.real_usec) < 0)
                                return -EBADMSG;
                        memcpy(h->boot_id, f[1], HIGHWATER_BOOT_ID_LEN + 1);
                        h->now.boot_usec = boot;
                        have_clock = true;
                } else if (streq(f[0], "mark")) {
                        if (!have_generation || (!v1 && !have_clock))
                                return -EBADMSG;
                        r = parse_mark(h, f, n, v1);
                        if (r < 0)
                                return r;
                } else
                        return -EBADMSG;
        }
        return have_generation && (v1 || have_clock) ? 0 : -EBADMSG;
}

int highwater_format(const HighWater *h, char **ret, size_t *ret_len) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fputs(HEADER, f);
        fprintf(f, "generation %" PRIu64 "\n", h->generation);
        fprintf(f, "clock %s %" PRIi64 " %" PRIu64 "\n", h->boot_id[0] ? h->boot_id : "00000000000000000000000000000000",
                h->now.boot_usec, h->now.real_usec);
        for (size_t i = 0; i < h->n_entries; i++) {
                const HighWaterEntry *e = &h->entries[i];
                fprintf(f, "mark %s %" PRIu64 " %" PRIi64, e->name, e->mark, e->read_usec);
                if (e->pending)
                        fprintf(f, " pending %" PRIu64 " %" PRIu64 " %" PRIi64 " %" PRIu32, e->pending_first,
                                e->pending_last, e->pending_usec, e->pending_reads);
                fputc('\n', f);
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        *ret_len = size;
        return 0;
}

/* A time of the file's boot, moved into the frame of `now`'s boot, `gap` after the file was written. */
static int64_t shift(const HighWater *h, int64_t t, int64_t gap, const HighWaterClock *now) {
        uint64_t age = 0;

        if (h->boot_id[0] && t < h->now.boot_usec)
                age = MIN((uint64_t) h->now.boot_usec - (uint64_t) t, (uint64_t) AGE_MAX);
        return MAX(now->boot_usec - (int64_t) age - gap, -AGE_MAX);
}

void highwater_rebase(HighWater *h, const char *boot_id, const HighWaterClock *now) {
        assert(boot_id[0] == '\0' || boot_id_is_valid(boot_id));
        if (!h->boot_id[0] || !boot_id[0] || !streq(h->boot_id, boot_id)) {
                /* Another boot: the clock of the old one is gone. What passed since the
                 * file was written is the wall clock's advance, if it advanced at least
                 * as long as this boot has run; otherwise (no RTC, a clock set back) only
                 * this boot's time is certain. A format 1 file has no clock: its marks
                 * count from this boot's start. */
                int64_t gap = now->boot_usec;
                if (h->boot_id[0] && now->real_usec > h->now.real_usec &&
                    now->real_usec - h->now.real_usec > (uint64_t) gap)
                        gap = (int64_t) MIN(now->real_usec - h->now.real_usec, (uint64_t) AGE_MAX);
                for (size_t i = 0; i < h->n_entries; i++) {
                        HighWaterEntry *e = &h->entries[i];
                        e->read_usec = shift(h, e->read_usec, gap, now);
                        if (e->pending)
                                e->pending_usec = shift(h, e->pending_usec, gap, now);
                }
        }
        memcpy(h->boot_id, boot_id, HIGHWATER_BOOT_ID_LEN + 1);
        h->now = *now;
        h->saved_usec = now->boot_usec;
}

int highwater_load(int dir_fd, HighWater **ret) {
        _cleanup_(highwater_freep) HighWater *h = NULL;
        _cleanup_free_ char *buf = NULL;
        char boot_id[SD_ID128_STRING_MAX];
        HighWaterClock now;
        sd_id128_t id;
        size_t got = 0;
        int r;

        /* Without a boot ID (no /proc), every start counts as a new boot: the stricter choice. */
        if (sd_id128_get_boot(&id) >= 0)
                (void) sd_id128_to_string(id, boot_id);
        else
                boot_id[0] = '\0';
        highwater_clock_now(&now);

        r = highwater_new(dir_fd, &h);
        if (r < 0)
                return r;
        r = read_small_file_at(dir_fd, HIGHWATER_FILE, HIGHWATER_FILE_MAX, &buf, &got);
        if (r == -ENOENT) {
                /* first start: no marks yet */
        } else if (IN_SET3(r, -EBADFD, -EFBIG, -ENODATA))
                return -EBADMSG; /* not a file we wrote */
        else if (r < 0)
                return r;
        else {
                r = highwater_parse(buf, got, h);
                if (r < 0)
                        return r;
        }
        highwater_rebase(h, boot_id, &now);
        *ret = TAKE_PTR(h);
        return 0;
}

int highwater_save(HighWater *h) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t len;
        int r;

        if (!h->dirty)
                return 0;
        if (h->dir_fd < 0) {
                h->dirty = false;
                return 0;
        }
        r = highwater_format(h, &buf, &len);
        if (r < 0)
                return r;
        /* A stale temporary from a crash is simply replaced. */
        fd = openat(h->dir_fd, HIGHWATER_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        r = write_full(fd, buf, len);
        if (r < 0)
                goto fail;
        if (fsync(fd) < 0) {
                r = negative_errno();
                goto fail;
        }
        fd = safe_close(fd);
        if (renameat(h->dir_fd, HIGHWATER_FILE ".tmp", h->dir_fd, HIGHWATER_FILE) < 0) {
                r = negative_errno();
                goto fail;
        }
        /* The rename itself must be durable before we count the marks as kept. */
        if (fsync(h->dir_fd) < 0)
                return negative_errno();
        h->dirty = false;
        h->read_times_changed = false;
        h->saved_usec = h->now.boot_usec;
        return 0;
fail:
        (void) unlinkat(h->dir_fd, HIGHWATER_FILE ".tmp", 0);
        return r;
}

/* --- judging ------------------------------------------------------------------------------ */

/* The most a counter in `unit` advances per impression (ipc/COUNTERS.md): the
 * length units for a 1.3 m sheet, the densest text for characters and lines. */
static uint64_t per_impression(const char *unit) {
        static const struct {
                const char *unit;
                uint64_t n;
        } table[] = {
                { "impressions", 1 },       { "sheets", 1 },       { "pages", 16 },
                { "tenThousandthsOfInches", 520000 }, { "micrometers", 1300000 }, { "feet", 5 },
                { "meters", 2 },            { "characters", 100000 }, { "lines", 1000 },
                { "dotRow", 125000 },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(table[i].unit, unit))
                        return table[i].n;
        return 1;
}

/* How far a counter in `unit` can plausibly advance in `elapsed_usec` (plus the burst allowance). */
static uint64_t allowance(const HighWater *h, const char *unit, int64_t elapsed_usec) {
        uint64_t e = elapsed_usec > 0 ? (uint64_t) elapsed_usec : 0, secs, per_min, total;

        if (__builtin_add_overflow(e, HIGHWATER_BURST_USEC, &e))
                return UINT64_MAX;
        secs = e / USEC_PER_SEC + (e % USEC_PER_SEC != 0);
        if (streq(unit, "hours"))
                return secs / 3600 + 1; /* a marker runs at most an hour per hour */
        if (__builtin_mul_overflow(h->max_rate, per_impression(unit), &per_min) ||
            __builtin_mul_overflow(per_min, secs, &total))
                return UINT64_MAX;
        return total / 60 + (total % 60 != 0);
}

/* Which marks go first when the set is full: names outside the model's own
 * list, then markers, then the PWG counters. */
static size_t drop_class(const char *name) {
        if (strncmp(name, "markers/", 8) == 0)
                return 1;
        for (size_t i = 0; i < billing_counter_names_count; i++)
                if (streq(name, billing_counter_names[i]))
                        return 2;
        return 0;
}

static void marker_mark_name(uint32_t index, char buf[static 32]) {
        (void) snprintf(buf, 32, "markers/%" PRIu32 "/life_count", index);
}

/* Marks every entry that this snapshot serves as present, judged yet or not. */
static void mark_presence(HighWater *h, const Snapshot *s) {
        char name[32];

        for (size_t i = 0; i < s->n_counters; i++) {
                HighWaterEntry *e = find(h, s->counters[i].name);
                if (e)
                        e->present = true;
        }
        for (size_t i = 0; i < s->n_markers; i++) {
                marker_mark_name(s->markers[i].index, name);
                HighWaterEntry *e = find(h, name);
                if (e)
                        e->present = true;
        }
        h->presence_known = true;
}

/* Room for one more mark: drops the mark of a counter not in this snapshot
 * (the lowest class, then the one read longest ago), and says so. */
static int make_room(HighWater *h, Snapshot *s) {
        size_t victim = SIZE_MAX;
        int r;

        if (h->n_entries < HIGHWATER_ENTRIES_MAX)
                return 0;
        /* Rarely needed, so worked out only now: never drop a mark this snapshot serves. */
        if (!h->presence_known)
                mark_presence(h, s);
        for (size_t i = 0, victim_class = 0; i < h->n_entries; i++) {
                const HighWaterEntry *e = &h->entries[i];
                size_t class;

                if (e->present)
                        continue;
                class = drop_class(e->name);
                if (victim == SIZE_MAX || class < victim_class ||
                    (class == victim_class && e->read_usec < h->entries[victim].read_usec)) {
                        victim = i;
                        victim_class = class;
                }
        }
        if (victim == SIZE_MAX)
                return -E2BIG; /* unreachable: a snapshot holds fewer counters than the set */
        HighWaterEntry *v = &h->entries[victim];
        r = snapshot_add_kept_errorf(s, v->name, "not read, and its high-water mark %" PRIu64
                                     " dropped: the %u marks kept are all taken", v->mark, HIGHWATER_ENTRIES_MAX);
        if (r < 0)
                return r;
        free(v->name);
        memmove(v, v + 1, (h->n_entries - victim - 1) * sizeof(HighWaterEntry));
        h->n_entries--;
        h->dirty = true;
        return 0;
}

static void adopt(HighWater *h, HighWaterEntry *e, uint64_t observed) {
        if (observed != e->mark || e->pending)
                h->dirty = true;
        e->mark = observed;
        e->pending = false;
        e->read_usec = h->now.boot_usec;
        e->anomaly = HIGHWATER_NO_ANOMALY;
        h->read_times_changed = true;
}

typedef struct Verdict {
        uint64_t value;
        CounterState state;
        bool anomaly;  /* an Anomaly entry was added */
        bool unserved; /* to be removed from the snapshot */
} Verdict;

/* One monotonic counter: returns 1 if it is an anomaly that is new, 0 otherwise. */
static int judge(HighWater *h, Snapshot *s, const char *name, const char *unit, uint64_t observed, Verdict *v) {
        HighWaterEntry *e = find(h, name);
        int64_t now = h->now.boot_usec;
        const char *reason;
        bool fresh;
        int r;

        *v = (Verdict) { .value = observed, .state = COUNTER_OK };
        if (e)
                e->present = true;
        else {
                /* Nothing to compare with, but no engine counts this far in its life. */
                uint64_t lifetime = allowance(h, unit, (int64_t) HIGHWATER_LIFETIME_USEC);
                if (observed > lifetime) {
                        v->unserved = true;
                        return snapshot_add_kept_errorf(s, name, "implausible first reading %" PRIu64 ": above %" PRIu64
                                                        ", the most it can count in 50 years at the maximum rate; "
                                                        "not served", observed, lifetime);
                }
                r = make_room(h, s);
                if (r < 0)
                        return r;
                r = add(h, name, observed, &e);
                if (r < 0)
                        return r;
                e->present = true;
                e->read_usec = now;
                h->dirty = true;
                return 0;
        }
        if (observed < e->mark) {
                /* A decrease: never billed. */
                if (e->pending)
                        h->dirty = true;
                e->pending = false;
                reason = ANOMALY_DECREASE;
                fresh = e->anomaly != HIGHWATER_DECREASE || e->last_observed != observed;
                e->anomaly = HIGHWATER_DECREASE;
        } else if (observed - e->mark <= allowance(h, unit, now - e->read_usec)) {
                adopt(h, e, observed);
                return 0;
        } else {
                /* Faster than the engine can count since it was last read: held back
                 * until later readings carry on from it at a plausible rate. */
                if (e->pending && observed >= e->pending_last &&
                    observed - e->pending_last <= allowance(h, unit, now - e->pending_usec)) {
                        if (e->pending_reads < UINT32_MAX)
                                e->pending_reads++;
                        e->pending_last = observed;
                        e->pending_usec = now;
                        h->dirty = true;
                        if (e->pending_reads >= HIGHWATER_CONFIRM_READS && e->pending_last > e->pending_first) {
                                adopt(h, e, observed);
                                return 0;
                        }
                        fresh = e->anomaly != HIGHWATER_IMPLAUSIBLE_INCREASE;
                } else {
                        e->pending = true;
                        e->pending_first = e->pending_last = observed;
                        e->pending_usec = now;
                        e->pending_reads = 0;
                        h->dirty = true;
                        fresh = true;
                }
                reason = ANOMALY_IMPLAUSIBLE_INCREASE;
                e->anomaly = HIGHWATER_IMPLAUSIBLE_INCREASE;
        }
        v->value = e->mark;
        v->state = COUNTER_ANOMALY;
        v->anomaly = true;
        e->last_observed = observed;
        r = snapshot_add_anomaly(s, name, e->mark, observed, reason);
        if (r < 0)
                return r;
        return fresh;
}

/* Whether the error `err` already accounts for the absence of the mark `mark`:
 * its own name, or the entry it lives in ("markers/1" or "markers/1/counter_unit"
 * for "markers/1/life_count"), since a marker with any bad file is left out whole. */
static bool error_covers(const char *err, const char *mark) {
        const char *slash = strrchr(mark, '/');
        size_t n;

        if (streq(err, mark))
                return true;
        if (!slash)
                return false;
        n = (size_t) (slash - mark);
        return strncmp(err, mark, n) == 0 && (err[n] == '\0' || err[n] == '/');
}

static int cmp_error(const void *a, const void *b) {
        return strcmp(((const CounterError *) a)->name, ((const CounterError *) b)->name);
}

/* Judges one counter and writes the verdict into its `value` and `state` (or
 * says it is not to be served), noting in `fresh` whether its anomaly is new. */
static int judge_into(HighWater *h, Snapshot *s, bool *fresh, const char *name, const char *unit, uint64_t observed,
                      uint64_t *value, CounterState *state, bool *ret_unserved) {
        Verdict v;
        int r;

        r = judge(h, s, name, unit, observed, &v);
        if (r < 0)
                return r;
        *ret_unserved = v.unserved;
        if (v.unserved)
                return 0;
        *value = v.value;
        *state = v.state;
        if (v.anomaly && fresh)
                fresh[s->n_anomalies - 1] = r > 0;
        return r;
}

int highwater_apply(HighWater *h, Snapshot *s, const HighWaterClock *now, bool **ret_fresh) {
        _cleanup_free_ bool *fresh = NULL;
        size_t cap = s->n_counters + s->n_markers, n_errors = s->n_errors;
        int n_fresh = 0, r;
        bool unserved;
        char name[32];

        assert(h->max_rate > 0);
        if (ret_fresh) {
                fresh = calloc(cap ?: 1, sizeof(bool));
                if (!fresh)
                        return -ENOMEM;
        }
        h->now = *now;
        for (size_t i = 0; i < h->n_entries; i++)
                h->entries[i].present = false;
        h->presence_known = false;

        for (size_t i = 0; i < s->n_counters;) {
                Counter *c = &s->counters[i];
                r = judge_into(h, s, fresh, c->name, c->unit, c->observed, &c->value, &c->state, &unserved);
                if (r < 0)
                        return r;
                n_fresh += r;
                if (unserved)
                        snapshot_remove_counter(s, i);
                else
                        i++;
        }
        for (size_t i = 0; i < s->n_markers;) {
                MarkerLife *m = &s->markers[i];
                marker_mark_name(m->index, name);
                r = judge_into(h, s, fresh, name, m->unit, m->observed, &m->value, &m->state, &unserved);
                if (r < 0)
                        return r;
                n_fresh += r;
                if (unserved)
                        snapshot_remove_marker(s, i);
                else
                        i++;
        }
        /* A counter that once counted does not just go away: say so. */
        for (size_t i = 0; i < h->n_entries; i++) {
                const HighWaterEntry *e = &h->entries[i];
                bool has_error = false;

                if (e->present)
                        continue;
                for (size_t j = 0; j < n_errors && !has_error; j++)
                        has_error = error_covers(s->errors[j].name, e->name);
                if (has_error)
                        continue;
                r = snapshot_add_kept_errorf(s, e->name, "missing (high-water mark %" PRIu64 ")", e->mark);
                if (r < 0)
                        return r;
        }
        if (s->n_errors != n_errors)
                qsort(s->errors, s->n_errors, sizeof(CounterError), cmp_error);
        /* Read times persist too, but a quiet printer's are not worth a write per snapshot. */
        if (h->read_times_changed && now->boot_usec - h->saved_usec >= (int64_t) HIGHWATER_STAMP_REFRESH_USEC)
                h->dirty = true;
        if (ret_fresh)
                *ret_fresh = TAKE_PTR(fresh);
        return n_fresh;
}
