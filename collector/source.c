/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse-util.h"
#include "source.h"

int source_new(const char *spec, const SourceLimits *limits, Source **ret) {
        _cleanup_(source_freep) Source *s = NULL;
        int r;

        s = calloc(1, sizeof(Source));
        if (!s)
                return -ENOMEM;
        if (strncmp(spec, "sysfs:", 6) == 0) {
                const char *path = spec + 6;

                if (path[0] != '/')
                        return -EINVAL;
                r = sysfs_source_open(path, limits, &s->sysfs);
                if (r < 0)
                        return r;
                s->description = strdup(spec);
        } else if (strncmp(spec, "sim:", 4) == 0) {
                uint64_t seed;
                char buf[64];

                r = safe_atou64(spec + 4, &seed);
                if (r < 0)
                        return r;
                r = sim_printer_new(seed, &s->sim);
                if (r < 0)
                        return r;
                (void) snprintf(buf, sizeof(buf), "sim:seed=%llu", (unsigned long long) seed);
                s->description = strdup(buf);
        } else
                return -EINVAL;
        if (!s->description)
                return -ENOMEM;
        *ret = TAKE_PTR(s);
        return 0;
}

Source *source_free(Source *s) {
        if (!s)
                return NULL;
        sysfs_source_free(s->sysfs);
        sim_printer_free(s->sim);
        free(s->description);
        free(s);
        return NULL;
}

static int cmp_counter(const void *a, const void *b) {
        return strcmp(((const Counter *) a)->name, ((const Counter *) b)->name);
}
static int cmp_marker(const void *a, const void *b) {
        uint32_t x = ((const MarkerLife *) a)->index, y = ((const MarkerLife *) b)->index;
        return x < y ? -1 : x > y;
}
static int cmp_supply(const void *a, const void *b) {
        uint32_t x = ((const Supply *) a)->index, y = ((const Supply *) b)->index;
        return x < y ? -1 : x > y;
}
static int cmp_error(const void *a, const void *b) {
        return strcmp(((const CounterError *) a)->name, ((const CounterError *) b)->name);
}

int source_read(Source *s, const char *const *known, size_t n_known, Snapshot *snap) {
        int r = s->sysfs ? sysfs_source_read(s->sysfs, known, n_known, snap) : sim_printer_read(s->sim, snap);
        if (r < 0)
                return r;
        /* Directory order is arbitrary: sort, so equal states give equal snapshots. */
        if (snap->n_counters > 1)
                qsort(snap->counters, snap->n_counters, sizeof(Counter), cmp_counter);
        if (snap->n_markers > 1)
                qsort(snap->markers, snap->n_markers, sizeof(MarkerLife), cmp_marker);
        if (snap->n_supplies > 1)
                qsort(snap->supplies, snap->n_supplies, sizeof(Supply), cmp_supply);
        if (snap->n_errors > 1)
                qsort(snap->errors, snap->n_errors, sizeof(CounterError), cmp_error);
        return 0;
}
