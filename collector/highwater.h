/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* High-water marks: for each monotonic counter (billing counters, marker life
 * counts) the largest value adopted so far, kept in the state directory and
 * replaced atomically (write a temporary file, fsync, rename, fsync the
 * directory), so a crash leaves the old or the new marks, never a torn file.
 *
 * A reading is adopted only if it is at or above the mark and no further above
 * it than the engine can count in the time since the counter was last read
 * (the maximum rate, ipc/COUNTERS.md). Below the mark is a decrease; above the
 * plausible bound is an implausible increase, held back as pending until later
 * reads confirm it. Either way the counter is an anomaly: flagged, its value
 * held at the mark, so no consumer ever bills a glitch or a negative delta.
 *
 * Every counter a snapshot serves has a mark. The set holds marks for twice
 * what one snapshot can serve; when it is full, the mark of a counter that was
 * not read, and longest ago, is dropped, and that is listed in the snapshot. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "counter-model.h"

#define HIGHWATER_FILE "highwater"
#define HIGHWATER_FILE_MAX (256U * 1024U)
#define HIGHWATER_ENTRIES_MAX SNAPSHOT_MARKS_MAX

/* The engine's maximum rate, in impressions per minute (--max-rate=). */
#define HIGHWATER_MAX_RATE_DEFAULT 600U
#define HIGHWATER_MAX_RATE_MAX 1000000U
/* Counted on top of the time between reads: counters the engine updates per
 * job, and a read taken just before such an update. */
#define HIGHWATER_BURST_USEC (10U * 60U * 1000000ULL)
/* A first reading above what the engine can count in this long at its maximum rate is not served. */
#define HIGHWATER_LIFETIME_USEC (50ULL * 366U * 24U * 3600U * 1000000ULL)
/* Consistent reads after an implausible increase before it is adopted (and it must have advanced). */
#define HIGHWATER_CONFIRM_READS 2U
/* How stale the persisted read times may get while no mark changes. */
#define HIGHWATER_STAMP_REFRESH_USEC (15U * 60U * 1000000ULL)

#define HIGHWATER_BOOT_ID_LEN 32U

/* A point in time: CLOCK_BOOTTIME (counts suspend, never steps) and CLOCK_REALTIME, µs. */
typedef struct HighWaterClock {
        int64_t boot_usec;
        uint64_t real_usec;
} HighWaterClock;
void highwater_clock_now(HighWaterClock *ret);

typedef enum HighWaterAnomaly {
        HIGHWATER_NO_ANOMALY,
        HIGHWATER_DECREASE,
        HIGHWATER_IMPLAUSIBLE_INCREASE,
} HighWaterAnomaly;

typedef struct HighWaterEntry {
        char *name;
        uint64_t mark;
        int64_t read_usec; /* CLOCK_BOOTTIME of the last reading consistent with the mark (< 0: before this boot) */
        /* An implausible increase held back (persisted): */
        bool pending;
        uint64_t pending_first; /* the reading that jumped */
        uint64_t pending_last;  /* the latest reading consistent with it */
        int64_t pending_usec;   /* when that was read */
        uint32_t pending_reads; /* consistent readings since the jump */
        /* In memory only: */
        HighWaterAnomaly anomaly; /* at the last snapshot (for signalling changes only) */
        uint64_t last_observed;
        bool present; /* in the snapshot being judged */
} HighWaterEntry;

typedef struct HighWater {
        int dir_fd; /* the state directory, -EBADF for a memory-only set (tests) */
        uint64_t generation;
        uint64_t max_rate; /* impressions per minute */
        /* The boot and the time that read times are relative to: of the file
         * once parsed, of this boot once rebased, of the last apply after it. */
        char boot_id[HIGHWATER_BOOT_ID_LEN + 1];
        HighWaterClock now;
        int64_t saved_usec; /* CLOCK_BOOTTIME of the last save (or load) */
        bool read_times_changed;
        bool presence_known; /* every entry's `present` is set for the snapshot being judged */
        HighWaterEntry *entries;
        size_t n_entries;
        bool dirty;
} HighWater;

int highwater_new(int dir_fd, HighWater **ret);
HighWater *highwater_free(HighWater *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(HighWater *, highwater_free);

/* Parses the state file's contents (no I/O) into an empty set: read times stay
 * relative to the file's boot and clock. -EBADMSG on anything malformed. */
int highwater_parse(const char *buf, size_t len, HighWater *h);
/* Renders the state file's contents. */
int highwater_format(const HighWater *h, char **ret, size_t *ret_len);
/* Makes the read times relative to `now` of boot `boot_id` (32 hex digits,
 * or "" if unknown: then the file's boot is taken for another one).
 * Across a reboot the time between the file's save and `now` is the wall
 * clock's advance, but at least the time since this boot. */
void highwater_rebase(HighWater *h, const char *boot_id, const HighWaterClock *now);

/* Loads the marks from `dir_fd` (takes no ownership; the fd must outlive the set). */
int highwater_load(int dir_fd, HighWater **ret);
/* Writes the marks if changed: tmp file, fsync, rename, fsync dir. */
int highwater_save(HighWater *h);

/* The names of all marks, sorted ("TotalImpressions", "markers/1/life_count"):
 * a source reads these first. Valid until the set changes. */
int highwater_names(const HighWater *h, const char ***ret, size_t *ret_n);

/* Judges a snapshot read at `now`: adopts plausible readings (raising marks),
 * flags decreases and implausible increases (state, value held at the mark,
 * an Anomaly entry each), confirms pending increases. A counter never seen
 * before is adopted, unless its reading is above the lifetime bound: then it
 * is not served and an error says why. Returns the number of anomalies that
 * are new since the last snapshot (a counter newly anomalous, a decrease to a
 * different value, a new implausible jump) and marks them in `ret_fresh`
 * (n_anomalies bools, may be NULL). A counter that has a mark but is absent
 * from the snapshot (and has no error of its own, nor one for another file of
 * its marker) gets the error "missing"; a dropped mark gets an error too. */
int highwater_apply(HighWater *h, Snapshot *s, const HighWaterClock *now, bool **ret_fresh);

/* The mark for `name`, or -ENOENT. */
int highwater_get(const HighWater *h, const char *name, uint64_t *ret);
/* The entry for `name`, or NULL. */
const HighWaterEntry *highwater_find(const HighWater *h, const char *name);
