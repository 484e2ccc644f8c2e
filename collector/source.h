/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A counter source: where a snapshot's facts come from. "sysfs:DIR" reads a
 * directory tree as a kernel driver exposes it (source-sysfs.c); "sim:SEED" is
 * a deterministic simulated printer (source-sim.c). */

#include <stdbool.h>
#include <stdint.h>

#include "counter-model.h"

/* Bounds of one read of a sysfs tree. */
#define SOURCE_FILE_SIZE_DEFAULT 4096U
#define SOURCE_FILE_SIZE_MAX (64U * 1024U)
/* Opens and directory entries a read spends on the largest tree the model
 * allows: the root; identity/ with serial and model; billing/ with an entry
 * and a file per counter; markers/ with an entry, a directory and two files
 * per marker; supplies/ with an entry, a directory and seven files per supply.
 * The default budget covers it, so every counter the model admits is read. */
#define SOURCE_FILES_FULL_TREE                                                      \
        (1U + 3U + (1U + 2U * SNAPSHOT_COUNTERS_MAX) + (1U + 4U * SNAPSHOT_MARKERS_MAX) + \
         (1U + 9U * SNAPSHOT_SUPPLIES_MAX))
#define SOURCE_FILES_DEFAULT 2048U
#define SOURCE_FILES_MAX 16384U
_Static_assert(SOURCE_FILES_DEFAULT >= SOURCE_FILES_FULL_TREE, "the default file budget must cover a full tree");

typedef struct SourceLimits {
        size_t max_file_size; /* bytes a value file may hold; larger files are not read */
        unsigned max_files;   /* files and directories opened (and entries listed) per snapshot */
} SourceLimits;

typedef struct SysfsSource SysfsSource;
typedef struct SimPrinter SimPrinter;

/* sysfs ------------------------------------------------------------------ */
/* Checks that the root directory opens (so a wrong path fails at start),
 * then closes it: each sysfs_source_read() reopens the root by its path, as
 * whatever user the process then runs as (after confinement, the service
 * user), so a driver that recreates its directory is followed. The root's
 * last component must not be a symbolic link (O_NOFOLLOW, -ELOOP); below it,
 * every read is relative to an opened directory and follows no link, so
 * nothing outside the root is ever reached. */
int sysfs_source_open(const char *path, const SourceLimits *limits, SysfsSource **ret);
SysfsSource *sysfs_source_free(SysfsSource *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(SysfsSource *, sysfs_source_free);
/* Fills `snap` with what the tree holds; every malformed value becomes an
 * error entry with its name and reason. The PWG counters and the `known`
 * names (sorted; billing names, "markers/N/life_count": those with a mark)
 * are read first, by name, and their errors are kept (never folded); then
 * markers/, supplies/ and billing/ are listed, each leaving of the budget what
 * the later ones may need. Fails only on -ENOMEM. */
int sysfs_source_read(SysfsSource *s, const char *const *known, size_t n_known, Snapshot *snap);

/* sim -------------------------------------------------------------------- */
int sim_printer_new(uint64_t seed, SimPrinter **ret);
SimPrinter *sim_printer_free(SimPrinter *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(SimPrinter *, sim_printer_free);
#define SIM_STEP_MAX 1000000U
/* Prints `sheets` sheets (simplex or duplex, mono, colour or blank as the seeded generator decides). */
int sim_printer_step(SimPrinter *p, uint32_t sheets);
/* A new cartridge: the level goes back to its max capacity. -ENOENT: no such
 * supply; -EOPNOTSUPP: the supply has no numeric max capacity. */
int sim_printer_replace_supply(SimPrinter *p, uint32_t index);
/* NVRAM cleared: the counter (a billing name or "markers/N/life_count") goes to 0. -ENOENT: no such counter. */
int sim_printer_reset_counter(SimPrinter *p, const char *name);
int sim_printer_read(SimPrinter *p, Snapshot *snap);

/* either ------------------------------------------------------------------ */
typedef struct Source {
        char *description; /* "sysfs:/path" or "sim:seed=N" */
        SysfsSource *sysfs;
        SimPrinter *sim;
} Source;

/* "sysfs:DIR" or "sim:SEED" (SEED a decimal 64-bit number). */
int source_new(const char *spec, const SourceLimits *limits, Source **ret);
Source *source_free(Source *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Source *, source_free);
/* Reads into `snap` and sorts it (counters by name, markers and supplies by
 * index); `known` as for sysfs_source_read() (the simulator has no others). */
int source_read(Source *s, const char *const *known, size_t n_known, Snapshot *snap);
