/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The collector's counter model (ipc/COUNTERS.md): billing counters named
 * after the PWG imaging counters (PWG 5106.1), marker life counts and
 * supplies after the Printer MIB (RFC 3805). A Snapshot is what one read of
 * the source yields; sources fill it, highwater.c judges it, the bus sends it. */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "counter-value.h"
#include "macro.h"

/* Hard upper bounds of one snapshot, whatever the source offers. */
#define SNAPSHOT_COUNTERS_MAX 512U
#define SNAPSHOT_MARKERS_MAX 16U
#define SNAPSHOT_SUPPLIES_MAX 64U
#define SNAPSHOT_ERRORS_MAX 1024U
/* High-water marks kept (highwater.h): room for every monotonic counter one
 * snapshot can serve, and as many again for counters no longer read. */
#define SNAPSHOT_MARKS_MAX (2U * (SNAPSHOT_COUNTERS_MAX + SNAPSHOT_MARKERS_MAX))
/* Errors about counters that have a mark (or a PWG name) are listed beyond
 * SNAPSHOT_ERRORS_MAX, so junk can never fold them away: at most two for each
 * such name (a marker's life_count and counter_unit). */
#define SNAPSHOT_KEPT_ERRORS_MAX (2U * (SNAPSHOT_MARKS_MAX + 16U))

typedef enum CounterState {
        COUNTER_OK,      /* observed adopted: at or above the mark, at a plausible rate */
        COUNTER_ANOMALY, /* observed below the mark, or above it faster than the engine can count:
                          * the value stays at the mark */
        _COUNTER_STATE_MAX,
} CounterState;
const char *counter_state_to_string(CounterState s);

typedef struct Counter {
        char name[COUNTER_TOKEN_MAX + 1]; /* "TotalImpressions" */
        const char *unit;                 /* static: "impressions", "sheets" */
        uint64_t value;                   /* the billable value: the high-water mark once judged */
        uint64_t observed;                /* what the source said this time */
        CounterState state;
} Counter;

typedef struct MarkerLife {
        uint32_t index;                    /* prtMarkerIndex */
        char unit[COUNTER_TOKEN_MAX + 1];  /* prtMarkerCounterUnit label */
        uint64_t value;                    /* prtMarkerLifeCount, max(observed, mark) */
        uint64_t observed;
        CounterState state;
} MarkerLife;

typedef struct Supply {
        uint32_t index;                     /* prtMarkerSuppliesIndex */
        char type[COUNTER_TOKEN_MAX + 1];   /* prtMarkerSuppliesType label: "toner" */
        char class[COUNTER_TOKEN_MAX + 1];  /* prtMarkerSuppliesClass label */
        char *description;                  /* prtMarkerSuppliesDescription */
        char *colorant;                     /* prtMarkerColorantValue: "black", "" if none */
        char unit[COUNTER_TOKEN_MAX + 1];   /* prtMarkerSuppliesSupplyUnit label */
        LevelValue level;                   /* prtMarkerSuppliesLevel */
        LevelValue max_capacity;            /* prtMarkerSuppliesMaxCapacity */
} Supply;

typedef struct CounterError {
        char *name;   /* "TotalImpressions", "supplies/2/level", "identity/serial" */
        char *reason; /* "not a decimal number", "symbolic link, not followed", … */
} CounterError;

typedef struct Anomaly {
        char *counter;     /* name as in Counter.name, or "markers/N/life_count" */
        uint64_t previous; /* the high-water mark */
        uint64_t observed;
        const char *reason; /* static: ANOMALY_DECREASE or ANOMALY_IMPLAUSIBLE_INCREASE */
} Anomaly;

#define ANOMALY_DECREASE "decrease"
#define ANOMALY_IMPLAUSIBLE_INCREASE "implausible-increase"

typedef struct Snapshot {
        char *serial; /* machine data only: from the source's identity */
        char *model;
        uint64_t time_usec; /* CLOCK_REALTIME when read */
        uint64_t generation;
        uint64_t sequence;
        unsigned files_read;

        Counter *counters;
        size_t n_counters;
        MarkerLife *markers;
        size_t n_markers;
        Supply *supplies;
        size_t n_supplies;
        CounterError *errors;
        size_t n_errors;
        size_t n_kept_errors; /* of n_errors, those added with snapshot_add_kept_error() */
        bool errors_folded;   /* the "snapshot" error stands for errors not listed */
        Anomaly *anomalies;
        size_t n_anomalies;
} Snapshot;

Snapshot *snapshot_free(Snapshot *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Snapshot *, snapshot_free);
int snapshot_new(Snapshot **ret);

/* Appending. Each returns -E2BIG beyond the SNAPSHOT_*_MAX bounds; a marker
 * or supply whose index is already in the snapshot is refused with -EEXIST. */
int snapshot_add_counter(Snapshot *s, const char *name, uint64_t observed);
int snapshot_add_marker(Snapshot *s, uint32_t index, const char *unit, uint64_t observed);
int snapshot_add_supply(Snapshot *s, const Supply *supply); /* takes description/colorant */
/* Records an error; `name` and `reason` are copied. Past SNAPSHOT_ERRORS_MAX,
 * errors are folded into one last "snapshot" error rather than dropped silently. */
int snapshot_add_error(Snapshot *s, const char *name, const char *reason);
int snapshot_add_errorf(Snapshot *s, const char *name, const char *format, ...) _printf_(3, 4);
/* The same for an error about a counter that has a high-water mark or a PWG
 * name: listed within its own bound (SNAPSHOT_KEPT_ERRORS_MAX), never folded
 * because of other errors. */
int snapshot_add_kept_error(Snapshot *s, const char *name, const char *reason);
int snapshot_add_kept_errorf(Snapshot *s, const char *name, const char *format, ...) _printf_(3, 4);
/* Either, as `keep` says, from a va_list. */
int snapshot_add_errorv(Snapshot *s, bool keep, const char *name, const char *format, va_list ap) _printf_(4, 0);
/* `reason` is static: ANOMALY_DECREASE or ANOMALY_IMPLAUSIBLE_INCREASE. */
int snapshot_add_anomaly(Snapshot *s, const char *counter, uint64_t previous, uint64_t observed, const char *reason);
/* Removes counter or marker `i` (not served after all), keeping the order. */
void snapshot_remove_counter(Snapshot *s, size_t i);
void snapshot_remove_marker(Snapshot *s, size_t i);

void supply_done(Supply *s);

/* The unit of a billing counter follows from its name: "…Impressions" →
 * "impressions", "…Sheets" → "sheets", "…Pages" → "pages"; NULL for any
 * other name (rejected: a count without a unit cannot be billed). */
const char *billing_counter_unit(const char *name);
/* The PWG 5106.1 counters the model names explicitly (documented order). */
extern const char *const billing_counter_names[];
extern const size_t billing_counter_names_count;

/* RFC 3805 textual conventions, as their labels. */
bool marker_counter_unit_is_valid(const char *label);  /* PrtMarkerCounterUnitTC */
bool supply_type_is_valid(const char *label);          /* PrtMarkerSuppliesTypeTC */
bool supply_class_is_valid(const char *label);         /* PrtMarkerSuppliesClassTC */
bool supply_unit_is_valid(const char *label);          /* PrtMarkerSuppliesSupplyUnitTC */

/* A stable text rendering (no time, no sequence) for tests and the demo:
 * two snapshots of the same state render identically. */
int snapshot_format(const Snapshot *s, char **ret);
