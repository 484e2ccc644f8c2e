/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "highwater.h"

#define HEADER "callhome-collector-highwater 1\n"

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

int highwater_get(const HighWater *h, const char *name, uint64_t *ret) {
        HighWaterEntry *e = find(h, name);
        if (!e)
                return -ENOENT;
        *ret = e->mark;
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

/* Format: a header line, "generation N", then "mark NAME VALUE" lines. */
int highwater_parse(const char *buf, size_t len, HighWater *h) {
        const char *p = buf, *end = buf + len;
        bool have_generation = false;
        int r;

        if (len > HIGHWATER_FILE_MAX || len < strlen(HEADER) || memcmp(buf, HEADER, strlen(HEADER)) != 0)
                return -EBADMSG;
        if (memchr(buf, '\0', len))
                return -EBADMSG;
        p += strlen(HEADER);
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                char line[160], *sp;
                size_t n;
                uint64_t v;

                if (!nl)
                        return -EBADMSG; /* every line ends in a newline: a cut file is not ours */
                n = (size_t) (nl - p);
                if (n >= sizeof(line))
                        return -EBADMSG;
                memcpy(line, p, n);
                line[n] = '\0';
                p = nl + 1;

                if (strncmp(line, "generation ", 11) == 0) {
                        if (have_generation || counter_parse_u64(line + 11, strlen(line + 11), &h->generation, NULL) < 0)
                                return -EBADMSG;
                        have_generation = true;
                } else if (strncmp(line, "mark ", 5) == 0) {
                        if (!have_generation)
                                return -EBADMSG; /* canonical order: the generation comes first */
                        sp = strchr(line + 5, ' ');
                        if (!sp)
                                return -EBADMSG;
                        *sp = '\0';
                        /* Canonical form: names strictly ascending (which also refuses duplicates). */
                        if (h->n_entries > 0 && strcmp(h->entries[h->n_entries - 1].name, line + 5) >= 0)
                                return -EBADMSG;
                        if (!mark_name_is_valid(line + 5) || counter_parse_u64(sp + 1, strlen(sp + 1), &v, NULL) < 0)
                                return -EBADMSG;
                        r = add(h, line + 5, v, NULL);
                        if (r < 0)
                                return r == -E2BIG ? -EBADMSG : r;
                } else
                        return -EBADMSG;
        }
        return have_generation ? 0 : -EBADMSG;
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
        for (size_t i = 0; i < h->n_entries; i++)
                fprintf(f, "mark %s %" PRIu64 "\n", h->entries[i].name, h->entries[i].mark);
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        *ret_len = size;
        return 0;
}

int highwater_load(int dir_fd, HighWater **ret) {
        _cleanup_(highwater_freep) HighWater *h = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t got = 0;
        int r;

        h = calloc(1, sizeof(HighWater));
        if (!h)
                return -ENOMEM;
        h->dir_fd = dir_fd;
        r = read_small_file_at(dir_fd, HIGHWATER_FILE, HIGHWATER_FILE_MAX, &buf, &got);
        if (r == -ENOENT) {
                *ret = TAKE_PTR(h); /* first start: no marks yet */
                return 0;
        }
        if (IN_SET3(r, -EBADFD, -EFBIG, -ENODATA))
                return -EBADMSG; /* not a file we wrote */
        if (r < 0)
                return r;
        r = highwater_parse(buf, got, h);
        if (r < 0)
                return r;
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
        return 0;
fail:
        (void) unlinkat(h->dir_fd, HIGHWATER_FILE ".tmp", 0);
        return r;
}

/* One monotonic counter: returns 1 if it is an anomaly that is new, 0 otherwise. */
static int judge(HighWater *h, const char *name, uint64_t observed, uint64_t *value, CounterState *state,
                 Snapshot *s, bool *is_anomaly) {
        HighWaterEntry *e = find(h, name);
        int r;

        *is_anomaly = false;
        if (e)
                e->seen = true;
        if (!e) {
                r = add(h, name, observed, &e);
                if (r == -E2BIG)
                        return 0; /* cannot hold more marks; the snapshot bounds make this unreachable */
                if (r < 0)
                        return r;
                e->seen = true;
                h->dirty = true;
                *value = observed;
                *state = COUNTER_OK;
                return 0;
        }
        if (observed >= e->mark) {
                if (observed > e->mark) {
                        e->mark = observed;
                        h->dirty = true;
                }
                e->anomalous = false;
                *value = observed;
                *state = COUNTER_OK;
                return 0;
        }
        /* A decrease: never billed. The value stays at the mark. */
        *value = e->mark;
        *state = COUNTER_ANOMALY;
        *is_anomaly = true;
        r = snapshot_add_anomaly(s, name, e->mark, observed);
        if (r < 0)
                return r;
        bool fresh = !e->anomalous || e->last_observed != observed;
        e->anomalous = true;
        e->last_observed = observed;
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

int highwater_apply(HighWater *h, Snapshot *s, bool **ret_fresh) {
        _cleanup_free_ bool *fresh = NULL;
        size_t cap = s->n_counters + s->n_markers;
        int n_fresh = 0, r;
        bool anomaly;

        if (ret_fresh) {
                fresh = calloc(cap ?: 1, sizeof(bool));
                if (!fresh)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < h->n_entries; i++)
                h->entries[i].seen = false;
        for (size_t i = 0; i < s->n_counters; i++) {
                Counter *c = &s->counters[i];
                r = judge(h, c->name, c->observed, &c->value, &c->state, s, &anomaly);
                if (r < 0)
                        return r;
                if (anomaly && fresh)
                        fresh[s->n_anomalies - 1] = r > 0;
                n_fresh += r;
        }
        for (size_t i = 0; i < s->n_markers; i++) {
                MarkerLife *m = &s->markers[i];
                char name[64];

                (void) snprintf(name, sizeof(name), "markers/%" PRIu32 "/life_count", m->index);
                r = judge(h, name, m->observed, &m->value, &m->state, s, &anomaly);
                if (r < 0)
                        return r;
                if (anomaly && fresh)
                        fresh[s->n_anomalies - 1] = r > 0;
                n_fresh += r;
        }
        /* A counter that once counted does not just go away: say so. */
        size_t n_errors = s->n_errors;
        for (size_t i = 0; i < h->n_entries; i++) {
                const HighWaterEntry *e = &h->entries[i];
                bool has_error = false;

                if (e->seen)
                        continue;
                for (size_t j = 0; j < n_errors && !has_error; j++)
                        has_error = error_covers(s->errors[j].name, e->name);
                if (has_error)
                        continue;
                r = snapshot_add_errorf(s, e->name, "missing (high-water mark %" PRIu64 ")", e->mark);
                if (r < 0)
                        return r;
        }
        if (s->n_errors != n_errors)
                qsort(s->errors, s->n_errors, sizeof(CounterError), cmp_error);
        if (ret_fresh)
                *ret_fresh = TAKE_PTR(fresh);
        return n_fresh;
}
