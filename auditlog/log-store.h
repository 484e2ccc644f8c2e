/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The log on disk: segment files in a state directory.
 *
 *  log-scan.c   reads every segment in order and checks everything that can be
 *               checked: framing, CRCs, sequence numbers, the hash chain, MACs
 *               (given a key), epoch continuity and seals, checkpoint roots and
 *               signatures, the retention hand-over, a checkpoint held
 *               elsewhere. Used by `callhome-audit verify` (segments in
 *               parallel) and by the daemon at start (which recovers its state
 *               from the same pass, sequentially). Its parts (segment files,
 *               the log's own records, the parallel scan) are listed in
 *               log-scan-internal.h.
 *  log-writer.c appends records (the daemon, and test/bench generators).
 *  log-index.c  the per-segment index files: where each record is, and the
 *               daemon's own marks that tell a cut log at start. */

#include <stdbool.h>
#include <stdint.h>

#include "checkpoint.h"
#include "log-format.h"
#include "merkle.h"
#include "seal.h"

#define AUDIT_SEGMENT_SUFFIX ".seg"
/* One index file per segment, "<first-seq as 16 hex digits>.idx", removed with
 * its segment, so the index is bounded as the log is:
 *    0   8  magic "CHAUDIDX"
 *    8   8  first sequence number of the segment
 *   16   8  synced_through: the last record of the segment known durable (written
 *           after its fdatasync, at most once a second and at close, so never
 *           beyond what the segment holds on disk)
 *   24   8  next_segment: first seq of the segment started after this one (0 while last)
 *   32  28  zero
 *   60   4  CRC-32C of bytes [0, 60)
 *   64      entries of 40 bytes (chain hash, le64 offset inside the segment), by seq */
#define AUDIT_INDEX_SUFFIX ".idx"
#define AUDIT_INDEX_HEADER_SIZE 64
#define AUDIT_INDEX_ENTRY_SIZE 40
#define AUDIT_INDEX_LEGACY_FILE "index" /* one index for the whole log, before 8 */
#define AUDIT_FILE_NAME_MAX 64

typedef struct AuditSegmentInfo {
        uint64_t first_seq;
        uint64_t size;
        uint32_t not_regular; /* 0 for a regular file, else its S_IFMT bits (symlink, FIFO, directory, …) */
        char name[AUDIT_FILE_NAME_MAX];
} AuditSegmentInfo;

/* Segment files of dir_fd, sorted by first sequence number. Files that are not
 * "<16 hex digits>.seg" are ignored; one so named that is not a regular file is
 * listed (size 0, not_regular set), for the scan to report, and never opened. */
int audit_segments_list(int dir_fd, AuditSegmentInfo **ret, size_t *ret_n);
void audit_segment_name(uint64_t first_seq, char ret[AUDIT_FILE_NAME_MAX]);

typedef struct AuditViolation {
        uint64_t seq; /* the record at fault, by position: the one expected there */
        char file[AUDIT_FILE_NAME_MAX];
        uint64_t offset;
        char what[512];
} AuditViolation;

/* Who vouches that records 1..size were seen outside the device (a witness record). */
typedef enum AuditWitnessBy {
        AUDIT_WITNESS_NONE = 0,
        AUDIT_WITNESS_SERVER = 1,   /* a checkpoint the Communication Server cosigned */
        AUDIT_WITNESS_CUSTOMER = 2, /* the customer's acknowledgement, a tag under a key derived from K_0 */
} AuditWitnessBy;

typedef struct AuditWitnessInfo {
        AuditWitnessBy by;
        uint64_t seq;      /* the witness record */
        uint64_t size;     /* it covers records 1..size */
        uint64_t usec;     /* wall-clock time of the witness record */
        uint64_t cosigned; /* the witness's own timestamp in its cosignature (s), once checked; else 0 */
        bool checked;      /* its cosignature (tag) was checked with the witness (customer's) key given */
} AuditWitnessInfo;

typedef struct AuditScanOptions {
        AuditSealKey *key;                /* may be NULL: MACs unchecked; evolved during a sequential scan
                                           * (a parallel one evolves copies and leaves it as it is) */
        const CheckpointVerifier *vkey;   /* NULL: taken from the log's start record */
        const Checkpoint *witness;        /* a checkpoint held elsewhere, or NULL */
        const CheckpointVerifier *witness_key; /* the witness's key: cosignatures checked, or NULL */
        const uint8_t *ack_key;           /* CHECKPOINT_ACK_SIZE bytes from K_0: acknowledgements checked, or NULL */
        bool allow_torn_tail;             /* daemon start-up: report it instead of failing */
        int (*on_record)(const AuditRecord *rec, const AuditSegmentInfo *seg, uint64_t offset, void *userdata);
        void (*on_progress)(uint64_t done, uint64_t total, void *userdata);
        void *userdata;
        /* > 1: verify segments on up to this many threads, each from its segment
         * header's chain state, joined in log order (same result and same
         * first violation as the sequential scan). Only without on_record and
         * allow_torn_tail; when broken, only `violation` is meaningful then. */
        unsigned n_threads;
} AuditScanOptions;

typedef struct AuditScanResult {
        /* chain state after the last good record */
        uint64_t first_seq; /* first record present (1 unless old segments were removed) */
        uint64_t next_seq;
        uint8_t prev_hash[AUDIT_HASH_SIZE];
        uint64_t epoch;
        MerkleFrontier frontier;
        uint64_t epoch_records; /* records in the current (open) epoch */
        uint64_t last_seal_seq;
        uint64_t last_checkpoint_seq;
        uint64_t last_realtime_usec;
        uint64_t epoch_start_usec; /* wall-clock time the current epoch began: its opening seal, or the first record */
        uint64_t last_checkpoint_usec; /* wall-clock time of the last checkpoint record, 0 if none */
        uint64_t last_seal_usec;       /* wall-clock time of the last seal record, 0 if none */
        AuditWitnessInfo last_witness; /* the newest witness record (by NONE: none) */
        /* the witness record the newest retention record rests on (by NONE: none that covers
         * the records removed; only meaningful when first_seq > 1) */
        AuditWitnessInfo retention_evidence;

        uint64_t n_records, n_bytes, n_seals, n_checkpoints, n_recoveries, n_segments;
        uint64_t unsealed;      /* records after the last seal */
        bool macs_checked;
        bool have_vkey;
        CheckpointVerifier vkey;
        bool witness_checked;   /* the witness checkpoint's root was compared */

        /* Segments before the first one the newest retention record keeps: a
         * removal interrupted by a crash (the record is written first). The
         * daemon finishes it at start. */
        size_t retention_leftover;
        uint64_t retention_first_kept;

        /* a torn last record (only with allow_torn_tail) */
        bool torn;
        char torn_file[AUDIT_FILE_NAME_MAX];
        uint64_t torn_offset, torn_bytes;

        /* last segment, for the writer */
        AuditSegmentInfo last_segment;

        bool broken;
        AuditViolation violation;
} AuditScanResult;

/* Returns 0 when the scan ran (check ret->broken), negative errno on I/O errors. */
int audit_log_scan(int dir_fd, const AuditScanOptions *o, AuditScanResult *ret);

/* Reads the record `seq` given its segment and offset into a malloc'd buffer
 * (CRC checked). */
int audit_record_read(int seg_fd, uint64_t offset, uint8_t **ret_buf, AuditRecord *ret);

typedef struct AuditWriter AuditWriter;

typedef struct AuditWriterOptions {
        uint64_t segment_size;    /* roll over to a new segment beyond this */
        uint64_t retention_size;  /* remove the oldest segments beyond this total (0: keep all), but only
                                   * records a witness record covers and none at or after retention_floor() */
        uint64_t (*retention_floor)(void *userdata); /* first seq that must stay (oldest pending), or NULL */
        void *userdata;
        const char *origin;       /* checkpoint origin and key name */
        const char *vkey;         /* verifier key text, recorded in start and retention records */
        const uint8_t *checkpoint_priv; /* 32 bytes, or NULL: no checkpoints */
} AuditWriterOptions;

/* Takes the scan's state. On success the writer owns `key` (the current epoch's
 * key) and key_fd (the key file it is stored in, may be -1 for generators); on
 * failure both are still the caller's. */
int audit_writer_open(int dir_fd, const AuditScanResult *s, AuditSealKey *key, int key_fd,
                      const AuditWriterOptions *o, AuditWriter **ret);
AuditWriter *audit_writer_free(AuditWriter *w);
static inline void audit_writer_freep(AuditWriter **w) {
        if (*w)
                audit_writer_free(*w);
}

/* Appends a record; seq, times, boot id and epoch are filled in. Not yet
 * durable: call audit_writer_sync() before acknowledging it. A negative return
 * means nothing was written; a problem after the record was written (a segment
 * removal that failed) does not fail the append: see audit_writer_take_error().
 * A file-size limit (EFBIG) moves on to a new segment and tries once more.
 * A witness record (AUDIT_KIND_WITNESS, payload from audit_witness_payload())
 * lets retention remove the records it covers, and retention runs at once. */
int audit_writer_append(AuditWriter *w, AuditRecordFields *f, uint64_t *ret_seq, uint8_t ret_hash[AUDIT_HASH_SIZE]);
int audit_writer_sync(AuditWriter *w);
/* Seals the current epoch: a seal record (synced), then the key moves on and
 * the old one is overwritten on disk and wiped from memory. */
int audit_writer_seal(AuditWriter *w);
/* A checkpoint record over everything so far (if anything was added since the last one). */
int audit_writer_checkpoint(AuditWriter *w, bool force);
/* The payload of a witness record: by ("witness" or "customer"), size, root, the consistency
 * proof from size to the records before the witness record, and NULL-terminated key/value
 * string pairs ("checkpoint" the cosigned note, or "tag" in hex, "uid"). */
int audit_witness_payload(const char *by, uint64_t size, const uint8_t root[AUDIT_HASH_SIZE],
                          const uint8_t (*proof)[AUDIT_HASH_SIZE], unsigned n_proof, const char *const *fields,
                          char **ret);
/* Total bytes of the segments kept. */
uint64_t audit_writer_total_size(const AuditWriter *w);
/* Merkle root over every record so far. */
int audit_writer_root(const AuditWriter *w, uint8_t ret[AUDIT_HASH_SIZE]);
/* Appends a recovery record: `dropped` bytes cut after `last_good_seq`. */
int audit_writer_recovery(AuditWriter *w, const char *file, uint64_t offset, uint64_t dropped, uint64_t last_good_seq);

/* The first error that happened after a record was already written (0 if none),
 * and clears it. */
int audit_writer_take_error(AuditWriter *w);

uint64_t audit_writer_next_seq(const AuditWriter *w);
void audit_writer_head(const AuditWriter *w, uint64_t *ret_seq, uint8_t ret_hash[AUDIT_HASH_SIZE],
                       uint64_t *ret_sealed_through);
uint64_t audit_writer_epoch(const AuditWriter *w);
/* The latest checkpoint note written or found ("" if none). */
const char *audit_writer_last_checkpoint(const AuditWriter *w);
void audit_writer_set_last_checkpoint(AuditWriter *w, const char *note, size_t len, uint64_t seq);
/* Locate a record: segment fd (owned by the writer) and offset, from the index. */
int audit_writer_locate(AuditWriter *w, uint64_t seq, int *ret_fd, uint64_t *ret_offset);
/* The Merkle frontier over the records before the first kept segment (from its
 * header): the subtrees a proof needs from the leaves retention removed. */
int audit_writer_base_frontier(AuditWriter *w, MerkleFrontier *ret);
/* Leaf hash of leaf `index` (record index+1), for proofs; -ENODATA for a leaf
 * of a removed segment. */
int audit_writer_leaf(uint64_t index, uint8_t ret[AUDIT_HASH_SIZE], void *userdata);

/* The daemon's start-up pass brings each segment's index file in line with the
 * records the scan finds (an entry is rewritten only when it differs; headers
 * and entries beyond the log's end are left alone, as evidence for
 * audit_log_tail_check()). */
typedef struct AuditIndexCursor {
        int fd;
        uint64_t first_seq;
} AuditIndexCursor;
#define AUDIT_INDEX_CURSOR_INIT { .fd = -EBADF }
int audit_index_note(AuditIndexCursor *c, int dir_fd, const AuditSegmentInfo *seg, const AuditRecord *rec,
                     uint64_t offset);
void audit_index_cursor_done(AuditIndexCursor *c);

/* Before anything is cut or rewritten: do the index files say that the log
 * held more than the scan found (a segment cut back, or later segments
 * removed, while the daemon was stopped)? 0 if not, 1 if so (ret_reason says
 * what), negative errno on I/O errors. A torn record past the last sync is not
 * a cut. Catches a plain cut, not one that also rewrote the index files. */
int audit_log_tail_check(int dir_fd, const AuditScanResult *s, char *ret_reason, size_t reason_size);
