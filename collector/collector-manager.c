/* SPDX-License-Identifier: Apache-2.0 */
#include <time.h>

#include "collector-manager.h"
#include "log.h"

static uint64_t now_realtime_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000;
}

int manager_take_snapshot(Manager *m, Snapshot **ret, bool **ret_fresh) {
        _cleanup_(snapshot_freep) Snapshot *s = NULL;
        _cleanup_free_ const char **known = NULL;
        _cleanup_free_ bool *fresh = NULL;
        HighWaterClock now;
        size_t n_known;
        int r;

        r = snapshot_new(&s);
        if (r < 0)
                return r;
        /* Every counter with a mark is read first, whatever else the source holds. */
        r = highwater_names(m->highwater, &known, &n_known);
        if (r < 0)
                return r;
        r = source_read(m->source, known, n_known, s);
        if (r < 0)
                return r;
        highwater_clock_now(&now);
        r = highwater_apply(m->highwater, s, &now, &fresh);
        if (r < 0)
                return r;
        r = highwater_save(m->highwater);
        if (r < 0) {
                /* Served anyway, but said: a restart could lose the raised marks. */
                log_warning_errno(r, "Failed to persist high-water marks: %m");
                r = snapshot_add_errorf(s, "highwater", "high-water marks not persisted: %s", strerror(-r));
                if (r < 0)
                        return r;
        }
        s->time_usec = now_realtime_usec();
        s->generation = m->highwater->generation;
        s->sequence = ++m->sequence;
        m->last_snapshot_usec = s->time_usec;
        *ret = TAKE_PTR(s);
        if (ret_fresh)
                *ret_fresh = TAKE_PTR(fresh);
        return 0;
}
