/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* What the parts of the verifying scan share, and nothing else includes:
 *
 *  log-segment.c          segment files: listing, mapping, the header on its own,
 *                         reading one record (audit_record_read)
 *  log-internal-record.c  the JSON payloads of the log's own records (seal, start,
 *                         checkpoint, retention, witness, delivery): parsing and checking
 *  log-scan.c             the sequential scan: each record's checks, segment by
 *                         segment, and the checks that need the whole log
 *  log-scan-parallel.c    the parallel scan: segments by worker threads, joined in order */

#include <json-c/json.h>
#include <string.h>

#include "log-store.h"
#include "macro.h"

#define SCAN_THREADS_MAX 64U

/* The first seal record of a segment scanned on its own: whether it counts the
 * records of its epoch right depends on how many came before the segment, so
 * the check waits until the segments are joined in order. */
typedef struct DeferredSeal {
        bool pending;
        uint64_t seq, offset;
        uint64_t epoch, counted;
        uint64_t records_before; /* records of its epoch earlier in the same segment */
} DeferredSeal;

typedef struct ScanContext {
        const AuditScanOptions *o;
        AuditScanResult *s;
        AuditSealKey *key;      /* o->key, or a worker's own copy */
        uint64_t key_epoch_max; /* the key is never evolved past this epoch (see epoch_reach()) */
        bool started_mid_log;   /* first segment is not the start of the log */
        bool started_mid_epoch; /* … so the first epoch's record count is unknown */
        AuditSegmentHeader start;
        bool have_retention;
        AuditSegmentHeader retention_desc; /* the first kept segment's header, as the newest retention record describes it */
        bool retention_desc_ok;
        uint64_t retention_first_kept;
        uint64_t retention_evidence_seq;     /* the witness record the newest retention record names */
        bool retention_evidence_resolved;    /* … looked up (a worker defers it when its segment had none before) */
        AuditWitnessInfo retention_evidence;
        bool witness_root_done;
        uint8_t witness_root[AUDIT_HASH_SIZE];

        /* a worker of a parallel scan, on one segment */
        bool defer_first_seal;
        DeferredSeal deferred;
        const bool *stop;       /* set when the result is no longer needed */
        bool aborted;
} ScanContext;

static inline bool hash_eq(const uint8_t *a, const uint8_t *b) {
        return memcmp(a, b, AUDIT_HASH_SIZE) == 0;
}

static inline bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

/* log-scan.c */
/* The first violation found is the one reported; later ones are ignored. */
_printf_(5, 6) void violation(AuditScanResult *s, uint64_t seq, const char *file, uint64_t offset, const char *fmt,
                              ...);
void seal_count_violation(AuditScanResult *s, uint64_t seq, const char *file, uint64_t off, uint64_t epoch,
                          uint64_t counted, uint64_t held);
uint64_t epoch_reach(const AuditScanOptions *o, const AuditSegmentInfo *segs, size_t n);
bool start_at_first_header(ScanContext *c, const AuditSegmentInfo *seg, const AuditSegmentHeader *h);
void check_continuation(ScanContext *c, const AuditSegmentInfo *seg, const AuditSegmentHeader *h);
int scan_records(ScanContext *c, const AuditSegmentInfo *seg, const uint8_t *map, uint64_t size, uint64_t off,
                 bool last);
void finish_scan(ScanContext *c, int dir_fd, const AuditSegmentInfo *segs, size_t n);
void scan_result_init(const AuditScanOptions *o, AuditScanResult *s);

/* log-internal-record.c */
json_object *parse_internal_json(const AuditRecord *rec);
const char *json_get_str(json_object *j, const char *key);
void retention_evidence_resolve(ScanContext *c, const AuditWitnessInfo *last);
void check_kind(ScanContext *c, const AuditRecord *rec, const char *file, uint64_t off);

/* log-segment.c */
const char *file_type_name(uint32_t type);
int segment_map(int dir_fd, const AuditSegmentInfo *seg, uint8_t **ret_map, uint64_t *ret_size);
bool segment_header_check(AuditScanResult *s, const AuditSegmentInfo *seg, const uint8_t *map, uint64_t size,
                          uint64_t fault_seq, AuditSegmentHeader *h);
const char *first_header_implausible(const AuditSegmentHeader *h);

/* log-scan-parallel.c */
/* Returns 1 when the log must be scanned sequentially instead. */
int scan_parallel(int dir_fd, const AuditScanOptions *o, const AuditSegmentInfo *segs, size_t n, unsigned n_threads,
                  AuditScanResult *ret);
