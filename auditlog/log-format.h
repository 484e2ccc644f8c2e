/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The on-disk format of the audit log: segment headers and records. Encoding
 * and parsing only, no I/O, so the daemon, the CLI, the unit tests and the
 * fuzz target all drive the same code. All integers are little-endian.
 *
 * Segment file "<first-seq as 16 hex digits>.seg":
 *    0   8  magic "CHAUDSEG"
 *    8   4  format version (1)
 *   12   4  header size (multiple of 8)
 *   16   8  first sequence number in this segment
 *   24   8  epoch that the first record belongs to
 *   32  32  chain hash of record first_seq - 1 (zeros at the start of the log)
 *   64   4  n = number of Merkle frontier hashes (popcount(first_seq - 1))
 *   68   4  zero
 *   72 32n  Merkle frontier over records 1 .. first_seq - 1, largest subtree first
 *    …   4  CRC-32C of everything before it; zero padding to a multiple of 8
 * The header holds the state that verification needs to start at this
 * segment when older ones were removed by the retention cap.
 *
 * Record (8-aligned, directly after the header or the previous record):
 *    0   4  magic "CHR1"
 *    4   4  total size of the record (multiple of 8)
 *    8   8  sequence number (the first record of a log is 1)
 *   16   8  wall-clock time, µs since the epoch
 *   24   8  monotonic time, µs
 *   32  16  boot id
 *   48   8  sealing epoch
 *   56   1  kind (AuditKind)
 *   57   1  direction (AuditDirection)
 *   58   2  length of type     (≤ AUDIT_TYPE_MAX)
 *   60   2  length of txn id   (≤ AUDIT_TXN_MAX)
 *   62   2  length of metadata (≤ AUDIT_META_MAX)
 *   64   4  length of payload  (≤ AUDIT_PAYLOAD_MAX)
 *   68   4  zero
 *   72      type, txn id, metadata, payload, zero padding to a multiple of 8
 *  end-72 32 chain hash h_i = SHA-256(h_{i-1} || record bytes [0, end-72))
 *  end-40 32 MAC = HMAC-SHA256(mac key of the record's epoch, "CHMAC1" || h_i)
 *  end-8   4 zero
 *  end-4   4 CRC-32C of record bytes [0, end-4)
 * Metadata: entries of (u16 key length, key, u16 value length, value).
 *
 * The MAC covers the chain hash only: h_i already commits to the record's
 * bytes and to every record before it, so a MAC over it is as strong as one
 * over the record, costs one fixed-size HMAC per record instead of a second
 * pass over the payload, and keeps verification at the speed of one SHA-256
 * pass (plus the much cheaper CRC). */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_HASH_SIZE 32
#define AUDIT_MAC_SIZE 32
#define AUDIT_BOOT_ID_SIZE 16
#define AUDIT_SEGMENT_MAGIC "CHAUDSEG"
#define AUDIT_RECORD_MAGIC "CHR1"
#define AUDIT_FORMAT_VERSION 1U
#define AUDIT_SEGMENT_FIXED_SIZE 72U
#define AUDIT_FRONTIER_MAX 64U
#define AUDIT_SEGMENT_HEADER_MAX (AUDIT_SEGMENT_FIXED_SIZE + AUDIT_FRONTIER_MAX * AUDIT_HASH_SIZE + 8U)
#define AUDIT_RECORD_HEADER_SIZE 72U
#define AUDIT_RECORD_TRAILER_SIZE 72U
#define AUDIT_RECORD_MIN_SIZE (AUDIT_RECORD_HEADER_SIZE + AUDIT_RECORD_TRAILER_SIZE)

/* Bounds for everything a caller controls. */
#define AUDIT_TYPE_MAX 64U
#define AUDIT_TXN_MAX 128U
#define AUDIT_META_MAX 8192U
#define AUDIT_META_ENTRIES_MAX 32U
#define AUDIT_META_KEY_MAX 64U
#define AUDIT_META_VALUE_MAX 1024U
#define AUDIT_PAYLOAD_MAX (16U << 20)
#define AUDIT_RECORD_MAX_SIZE                                                                       \
        (AUDIT_RECORD_HEADER_SIZE + AUDIT_TYPE_MAX + AUDIT_TXN_MAX + AUDIT_META_MAX + AUDIT_PAYLOAD_MAX + 8U + \
         AUDIT_RECORD_TRAILER_SIZE)

typedef enum AuditKind {
        AUDIT_KIND_DATA = 1,       /* a transaction or event from policyd (Append) */
        AUDIT_KIND_DELIVERY = 2,   /* an outbound transaction was delivered (MarkDelivered) */
        AUDIT_KIND_SEAL = 3,       /* end of an epoch: its key is erased after this record */
        AUDIT_KIND_CHECKPOINT = 4, /* signed note with the Merkle root over records before it */
        AUDIT_KIND_RECOVERY = 5,   /* a torn tail was cut at start-up */
        AUDIT_KIND_RETENTION = 6,  /* old segments removed; where verification starts now */
        AUDIT_KIND_START = 7,      /* first record of a log: origin and checkpoint key */
        AUDIT_KIND_WITNESS = 8,    /* an outside witness covers records 1..N: a cosigned checkpoint or the customer's acknowledgement */
        _AUDIT_KIND_MAX,
        _AUDIT_KIND_INVALID = -EINVAL,
} AuditKind;

typedef enum AuditDirection {
        AUDIT_DIRECTION_INTERNAL = 0, /* a decision, a policy change, the log's own records */
        AUDIT_DIRECTION_OUTBOUND = 1,
        AUDIT_DIRECTION_INBOUND = 2,
        _AUDIT_DIRECTION_MAX,
        _AUDIT_DIRECTION_INVALID = -EINVAL,
} AuditDirection;

const char *audit_kind_to_string(AuditKind k);
const char *audit_direction_to_string(AuditDirection d);
AuditDirection audit_direction_from_string(const char *s);

typedef struct AuditSegmentHeader {
        uint64_t first_seq;
        uint64_t epoch;
        uint8_t prev_hash[AUDIT_HASH_SIZE];
        uint32_t n_frontier;
        uint8_t frontier[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE];
        uint32_t header_size;
} AuditSegmentHeader;

/* A parsed record: pointers into the caller's buffer. */
typedef struct AuditRecord {
        uint32_t size;
        uint64_t seq;
        uint64_t realtime_usec;
        uint64_t monotonic_usec;
        uint8_t boot_id[AUDIT_BOOT_ID_SIZE];
        uint64_t epoch;
        uint8_t kind;
        uint8_t direction;
        const char *type;
        size_t type_len;
        const char *txn;
        size_t txn_len;
        const uint8_t *meta;
        size_t meta_len;
        const uint8_t *payload;
        size_t payload_len;
        const uint8_t *hashed;  /* the bytes the chain hash covers */
        size_t hashed_len;
        const uint8_t *hash;
        const uint8_t *mac;
} AuditRecord;

/* Fields of a record to encode. */
typedef struct AuditRecordFields {
        uint64_t seq;
        uint64_t realtime_usec;
        uint64_t monotonic_usec;
        uint8_t boot_id[AUDIT_BOOT_ID_SIZE];
        uint64_t epoch;
        AuditKind kind;
        AuditDirection direction;
        const char *type;
        const char *txn;
        const uint8_t *meta;
        size_t meta_len;
        const uint8_t *payload;
        size_t payload_len;
} AuditRecordFields;

/* Outcome of parsing: a whole good record, too few bytes for one (a torn
 * tail when nothing follows), or a record that is malformed. */
typedef enum AuditParseResult {
        AUDIT_PARSE_OK = 0,
        AUDIT_PARSE_SHORT = 1,
        AUDIT_PARSE_BAD = 2,
} AuditParseResult;

size_t audit_record_size_for(size_t type_len, size_t txn_len, size_t meta_len, size_t payload_len);

/* Encodes the record into buf (at least audit_record_size_for() bytes); the
 * chain hash, MAC and CRC are filled in by audit_record_seal_trailer() once
 * known. Returns the record size or -EINVAL / -E2BIG. */
int audit_record_encode(const AuditRecordFields *f, uint8_t *buf, size_t buf_size);
/* Writes hash, MAC and CRC into an encoded record of `size` bytes. */
void audit_record_finish(uint8_t *rec, size_t size, const uint8_t hash[AUDIT_HASH_SIZE],
                         const uint8_t mac[AUDIT_MAC_SIZE]);

/* Parses the record at buf (avail bytes available). With check_crc the CRC
 * must match. On AUDIT_PARSE_BAD *ret_reason says what is wrong (static string). */
AuditParseResult audit_record_parse(const uint8_t *buf, size_t avail, bool check_crc, AuditRecord *ret,
                                    const char **ret_reason);

/* Reads just the size field, for skipping: 0 if fewer than 8 bytes or no magic. */
uint32_t audit_record_peek_size(const uint8_t *buf, size_t avail);

int audit_segment_header_encode(const AuditSegmentHeader *h, uint8_t *buf, size_t buf_size);
AuditParseResult audit_segment_header_parse(const uint8_t *buf, size_t avail, AuditSegmentHeader *ret,
                                            const char **ret_reason);

/* Metadata: encode from parallel key/value arrays; iterate. */
int audit_meta_encode(const char *const *keys, const char *const *values, size_t n, uint8_t *buf,
                      size_t buf_size, size_t *ret_len);
/* Calls cb for each entry; returns -EBADMSG if malformed, or cb's negative value. */
int audit_meta_foreach(const uint8_t *meta, size_t len,
                       int (*cb)(const char *key, size_t klen, const char *value, size_t vlen, void *userdata),
                       void *userdata);
bool audit_meta_key_valid(const char *key);
/* Record types chosen by callers: [a-z0-9._-], 1..AUDIT_TYPE_MAX, not starting with "audit.". */
bool audit_type_valid(const char *type, bool internal);
/* Transaction ids: printable ASCII without spaces, 0..AUDIT_TXN_MAX. */
bool audit_txn_valid(const char *txn);

static inline uint64_t audit_le64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}
static inline uint32_t audit_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}
static inline uint16_t audit_le16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}
static inline void audit_put_le64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static inline void audit_put_le32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static inline void audit_put_le16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}
