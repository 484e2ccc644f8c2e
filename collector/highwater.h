/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* High-water marks: the largest value each monotonic counter (billing
 * counters, marker life counts) has ever shown, kept in the state directory
 * and replaced atomically (write a temporary file, fsync, rename, fsync the
 * directory), so a crash leaves the old or the new marks, never a torn file.
 * A counter below its mark is an anomaly: flagged, its value held at the mark,
 * so no consumer ever computes a negative delta. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "counter-model.h"

#define HIGHWATER_FILE "highwater"
#define HIGHWATER_FILE_MAX (64U * 1024U)
#define HIGHWATER_ENTRIES_MAX (SNAPSHOT_COUNTERS_MAX + SNAPSHOT_MARKERS_MAX)

typedef struct HighWaterEntry {
        char *name;
        uint64_t mark;
        bool anomalous;         /* below the mark at the last snapshot */
        uint64_t last_observed; /* what it showed then (for signalling changes only) */
        bool seen;              /* present in the snapshot being judged */
} HighWaterEntry;

typedef struct HighWater {
        int dir_fd; /* the state directory, -EBADF for a memory-only set (tests) */
        uint64_t generation;
        HighWaterEntry *entries;
        size_t n_entries;
        bool dirty;
} HighWater;

HighWater *highwater_free(HighWater *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(HighWater *, highwater_free);

/* Parses the state file's contents (no I/O). -EBADMSG on anything malformed. */
int highwater_parse(const char *buf, size_t len, HighWater *h);
/* Renders the state file's contents. */
int highwater_format(const HighWater *h, char **ret, size_t *ret_len);

/* Loads the marks from `dir_fd` (takes no ownership; the fd must outlive the set). */
int highwater_load(int dir_fd, HighWater **ret);
/* Writes the marks if changed: tmp file, fsync, rename, fsync dir. */
int highwater_save(HighWater *h);

/* Judges a snapshot: raises marks, flags decreases (state, value held at the
 * mark, an Anomaly entry each). Returns the number of anomalies that are new
 * since the last snapshot (a counter newly below its mark, or showing a
 * different value below it) and marks them in `ret_fresh` (n_anomalies bools,
 * may be NULL). A counter that has a mark but is absent from the snapshot
 * (and has no error of its own, nor one for another file of its marker)
 * gets the error "missing". */
int highwater_apply(HighWater *h, Snapshot *s, bool **ret_fresh);

/* The mark for `name`, or -ENOENT. */
int highwater_get(const HighWater *h, const char *name, uint64_t *ret);
