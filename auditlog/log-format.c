/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <string.h>

#include "crc32c.h"
#include "log-format.h"

static const char *const kind_names[_AUDIT_KIND_MAX] = {
        [AUDIT_KIND_DATA] = "data",           [AUDIT_KIND_DELIVERY] = "delivery",
        [AUDIT_KIND_SEAL] = "seal",           [AUDIT_KIND_CHECKPOINT] = "checkpoint",
        [AUDIT_KIND_RECOVERY] = "recovery",   [AUDIT_KIND_RETENTION] = "retention",
        [AUDIT_KIND_START] = "start",         [AUDIT_KIND_WITNESS] = "witness",
};

static const char *const direction_names[_AUDIT_DIRECTION_MAX] = {
        [AUDIT_DIRECTION_INTERNAL] = "internal",
        [AUDIT_DIRECTION_OUTBOUND] = "outbound",
        [AUDIT_DIRECTION_INBOUND] = "inbound",
};

const char *audit_kind_to_string(AuditKind k) {
        return k > 0 && k < _AUDIT_KIND_MAX ? kind_names[k] : NULL;
}

const char *audit_direction_to_string(AuditDirection d) {
        return d >= 0 && d < _AUDIT_DIRECTION_MAX ? direction_names[d] : NULL;
}

AuditDirection audit_direction_from_string(const char *s) {
        for (int i = 0; i < _AUDIT_DIRECTION_MAX; i++)
                if (strcmp(s, direction_names[i]) == 0)
                        return (AuditDirection) i;
        return _AUDIT_DIRECTION_INVALID;
}

static size_t align8(size_t n) {
        return (n + 7) & ~(size_t) 7;
}

size_t audit_record_size_for(size_t type_len, size_t txn_len, size_t meta_len, size_t payload_len) {
        return AUDIT_RECORD_HEADER_SIZE + align8(type_len + txn_len + meta_len + payload_len) +
               AUDIT_RECORD_TRAILER_SIZE;
}

bool audit_type_valid(const char *type, bool internal) {
        size_t n = strlen(type);

        if (n == 0 || n > AUDIT_TYPE_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = type[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
                        return false;
        }
        /* The log's own record types are not for callers to forge. */
        return internal || strncmp(type, "audit.", 6) != 0;
}

bool audit_txn_valid(const char *txn) {
        size_t n = strlen(txn);

        if (n > AUDIT_TXN_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (txn[i] <= ' ' || txn[i] >= 0x7f)
                        return false;
        return true;
}

bool audit_meta_key_valid(const char *key) {
        size_t n = strlen(key);

        if (n == 0 || n > AUDIT_META_KEY_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = key[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '-' || c == '_'))
                        return false;
        }
        return true;
}

int audit_meta_encode(const char *const *keys, const char *const *values, size_t n, uint8_t *buf,
                      size_t buf_size, size_t *ret_len) {
        size_t off = 0;

        if (n > AUDIT_META_ENTRIES_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                size_t kl = strlen(keys[i]), vl = strlen(values[i]);

                if (!audit_meta_key_valid(keys[i]))
                        return -EINVAL;
                if (vl > AUDIT_META_VALUE_MAX)
                        return -E2BIG;
                if (off + 4 + kl + vl > buf_size || off + 4 + kl + vl > AUDIT_META_MAX)
                        return -E2BIG;
                audit_put_le16(buf + off, (uint16_t) kl);
                memcpy(buf + off + 2, keys[i], kl);
                off += 2 + kl;
                audit_put_le16(buf + off, (uint16_t) vl);
                memcpy(buf + off + 2, values[i], vl);
                off += 2 + vl;
        }
        *ret_len = off;
        return 0;
}

int audit_meta_foreach(const uint8_t *meta, size_t len,
                       int (*cb)(const char *key, size_t klen, const char *value, size_t vlen, void *userdata),
                       void *userdata) {
        size_t off = 0, n = 0;

        while (off < len) {
                size_t kl, vl;
                const uint8_t *k, *v;

                if (++n > AUDIT_META_ENTRIES_MAX || len - off < 2)
                        return -EBADMSG;
                kl = audit_le16(meta + off);
                if (kl == 0 || kl > AUDIT_META_KEY_MAX || len - off - 2 < kl + 2)
                        return -EBADMSG;
                k = meta + off + 2;
                off += 2 + kl;
                vl = audit_le16(meta + off);
                if (vl > AUDIT_META_VALUE_MAX || len - off - 2 < vl)
                        return -EBADMSG;
                v = meta + off + 2;
                off += 2 + vl;
                if (cb) {
                        int r = cb((const char *) k, kl, (const char *) v, vl, userdata);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int audit_record_encode(const AuditRecordFields *f, uint8_t *buf, size_t buf_size) {
        size_t type_len = f->type ? strlen(f->type) : 0, txn_len = f->txn ? strlen(f->txn) : 0;
        size_t size, off;

        if (f->kind <= 0 || f->kind >= _AUDIT_KIND_MAX || f->direction < 0 || f->direction >= _AUDIT_DIRECTION_MAX)
                return -EINVAL;
        if (type_len == 0 || type_len > AUDIT_TYPE_MAX || txn_len > AUDIT_TXN_MAX || f->meta_len > AUDIT_META_MAX ||
            f->payload_len > AUDIT_PAYLOAD_MAX)
                return -E2BIG;
        if (f->seq == 0)
                return -EINVAL;
        size = audit_record_size_for(type_len, txn_len, f->meta_len, f->payload_len);
        if (size > buf_size)
                return -ENOBUFS;

        memset(buf, 0, size);
        memcpy(buf, AUDIT_RECORD_MAGIC, 4);
        audit_put_le32(buf + 4, (uint32_t) size);
        audit_put_le64(buf + 8, f->seq);
        audit_put_le64(buf + 16, f->realtime_usec);
        audit_put_le64(buf + 24, f->monotonic_usec);
        memcpy(buf + 32, f->boot_id, AUDIT_BOOT_ID_SIZE);
        audit_put_le64(buf + 48, f->epoch);
        buf[56] = (uint8_t) f->kind;
        buf[57] = (uint8_t) f->direction;
        audit_put_le16(buf + 58, (uint16_t) type_len);
        audit_put_le16(buf + 60, (uint16_t) txn_len);
        audit_put_le16(buf + 62, (uint16_t) f->meta_len);
        audit_put_le32(buf + 64, (uint32_t) f->payload_len);
        off = AUDIT_RECORD_HEADER_SIZE;
        memcpy(buf + off, f->type, type_len);
        off += type_len;
        if (txn_len)
                memcpy(buf + off, f->txn, txn_len);
        off += txn_len;
        if (f->meta_len)
                memcpy(buf + off, f->meta, f->meta_len);
        off += f->meta_len;
        if (f->payload_len)
                memcpy(buf + off, f->payload, f->payload_len);
        return (int) size;
}

void audit_record_finish(uint8_t *rec, size_t size, const uint8_t hash[AUDIT_HASH_SIZE],
                         const uint8_t mac[AUDIT_MAC_SIZE]) {
        uint8_t *t = rec + size - AUDIT_RECORD_TRAILER_SIZE;

        memcpy(t, hash, AUDIT_HASH_SIZE);
        memcpy(t + 32, mac, AUDIT_MAC_SIZE);
        audit_put_le32(t + 64, 0);
        audit_put_le32(t + 68, crc32c(0, rec, size - 4));
}

uint32_t audit_record_peek_size(const uint8_t *buf, size_t avail) {
        if (avail < 8 || memcmp(buf, AUDIT_RECORD_MAGIC, 4) != 0)
                return 0;
        return audit_le32(buf + 4);
}

#define BAD(msg)                        \
        do {                            \
                if (ret_reason)         \
                        *ret_reason = (msg); \
                return AUDIT_PARSE_BAD; \
        } while (0)

AuditParseResult audit_record_parse(const uint8_t *buf, size_t avail, bool check_crc, AuditRecord *ret,
                                    const char **ret_reason) {
        size_t body, pad_start, pad_end, type_len, txn_len, meta_len, payload_len;
        uint32_t size;
        const uint8_t *t;

        if (avail < 8) {
                /* Too few bytes: short if they could start a record, bad otherwise. */
                if (memcmp(buf, AUDIT_RECORD_MAGIC, avail < 4 ? avail : 4) != 0)
                        BAD("bad record magic");
                return AUDIT_PARSE_SHORT;
        }
        if (memcmp(buf, AUDIT_RECORD_MAGIC, 4) != 0)
                BAD("bad record magic");
        size = audit_le32(buf + 4);
        if (size < AUDIT_RECORD_MIN_SIZE || size % 8 != 0 || size > AUDIT_RECORD_MAX_SIZE)
                BAD("bad record size");
        if (avail < size)
                return AUDIT_PARSE_SHORT;
        if (check_crc && crc32c(0, buf, size - 4) != audit_le32(buf + size - 4))
                BAD("CRC mismatch");

        type_len = audit_le16(buf + 58);
        txn_len = audit_le16(buf + 60);
        meta_len = audit_le16(buf + 62);
        payload_len = audit_le32(buf + 64);
        if (type_len == 0 || type_len > AUDIT_TYPE_MAX || txn_len > AUDIT_TXN_MAX || meta_len > AUDIT_META_MAX ||
            payload_len > AUDIT_PAYLOAD_MAX)
                BAD("field length out of bounds");
        body = type_len + txn_len + meta_len + payload_len;
        if (audit_record_size_for(type_len, txn_len, meta_len, payload_len) != size)
                BAD("record size does not match its field lengths");
        if (buf[56] == 0 || buf[56] >= _AUDIT_KIND_MAX)
                BAD("unknown record kind");
        if (buf[57] >= _AUDIT_DIRECTION_MAX)
                BAD("unknown direction");
        if (audit_le32(buf + 68) != 0)
                BAD("reserved header field not zero");
        pad_start = AUDIT_RECORD_HEADER_SIZE + body;
        pad_end = size - AUDIT_RECORD_TRAILER_SIZE;
        for (size_t i = pad_start; i < pad_end; i++)
                if (buf[i] != 0)
                        BAD("padding not zero");
        t = buf + size - AUDIT_RECORD_TRAILER_SIZE;
        if (audit_le32(t + 64) != 0)
                BAD("reserved trailer field not zero");
        if (audit_le64(buf + 8) == 0)
                BAD("sequence number zero");
        if (meta_len > 0 && audit_meta_foreach(buf + AUDIT_RECORD_HEADER_SIZE + type_len + txn_len, meta_len, NULL,
                                               NULL) < 0)
                BAD("malformed metadata");

        if (ret) {
                *ret = (AuditRecord) {
                        .size = size,
                        .seq = audit_le64(buf + 8),
                        .realtime_usec = audit_le64(buf + 16),
                        .monotonic_usec = audit_le64(buf + 24),
                        .epoch = audit_le64(buf + 48),
                        .kind = buf[56],
                        .direction = buf[57],
                        .type = (const char *) buf + AUDIT_RECORD_HEADER_SIZE,
                        .type_len = type_len,
                        .txn = (const char *) buf + AUDIT_RECORD_HEADER_SIZE + type_len,
                        .txn_len = txn_len,
                        .meta = buf + AUDIT_RECORD_HEADER_SIZE + type_len + txn_len,
                        .meta_len = meta_len,
                        .payload = buf + AUDIT_RECORD_HEADER_SIZE + type_len + txn_len + meta_len,
                        .payload_len = payload_len,
                        .hashed = buf,
                        .hashed_len = size - AUDIT_RECORD_TRAILER_SIZE,
                        .hash = t,
                        .mac = t + 32,
                };
                memcpy(ret->boot_id, buf + 32, AUDIT_BOOT_ID_SIZE);
        }
        return AUDIT_PARSE_OK;
}

int audit_segment_header_encode(const AuditSegmentHeader *h, uint8_t *buf, size_t buf_size) {
        size_t n, size;

        if (h->n_frontier > AUDIT_FRONTIER_MAX || h->first_seq == 0 ||
            (unsigned) __builtin_popcountll(h->first_seq - 1) != h->n_frontier)
                return -EINVAL;
        n = AUDIT_SEGMENT_FIXED_SIZE + (size_t) h->n_frontier * AUDIT_HASH_SIZE;
        size = align8(n + 4);
        if (size > buf_size)
                return -ENOBUFS;
        memset(buf, 0, size);
        memcpy(buf, AUDIT_SEGMENT_MAGIC, 8);
        audit_put_le32(buf + 8, AUDIT_FORMAT_VERSION);
        audit_put_le32(buf + 12, (uint32_t) size);
        audit_put_le64(buf + 16, h->first_seq);
        audit_put_le64(buf + 24, h->epoch);
        memcpy(buf + 32, h->prev_hash, AUDIT_HASH_SIZE);
        audit_put_le32(buf + 64, h->n_frontier);
        for (uint32_t i = 0; i < h->n_frontier; i++)
                memcpy(buf + AUDIT_SEGMENT_FIXED_SIZE + i * AUDIT_HASH_SIZE, h->frontier[i], AUDIT_HASH_SIZE);
        audit_put_le32(buf + n, crc32c(0, buf, n));
        return (int) size;
}

AuditParseResult audit_segment_header_parse(const uint8_t *buf, size_t avail, AuditSegmentHeader *ret,
                                            const char **ret_reason) {
        uint32_t n_frontier, size;
        uint64_t first_seq;
        size_t n;

        if (avail < AUDIT_SEGMENT_FIXED_SIZE) {
                if (memcmp(buf, AUDIT_SEGMENT_MAGIC, avail < 8 ? avail : 8) != 0)
                        BAD("bad segment magic");
                return AUDIT_PARSE_SHORT;
        }
        if (memcmp(buf, AUDIT_SEGMENT_MAGIC, 8) != 0)
                BAD("bad segment magic");
        if (audit_le32(buf + 8) != AUDIT_FORMAT_VERSION)
                BAD("unsupported segment format version");
        n_frontier = audit_le32(buf + 64);
        if (n_frontier > AUDIT_FRONTIER_MAX)
                BAD("too many frontier hashes");
        n = AUDIT_SEGMENT_FIXED_SIZE + (size_t) n_frontier * AUDIT_HASH_SIZE;
        size = audit_le32(buf + 12);
        if (size != align8(n + 4))
                BAD("bad segment header size");
        if (avail < size)
                return AUDIT_PARSE_SHORT;
        if (crc32c(0, buf, n) != audit_le32(buf + n))
                BAD("segment header CRC mismatch");
        for (size_t i = n + 4; i < size; i++)
                if (buf[i] != 0)
                        BAD("segment header padding not zero");
        if (audit_le32(buf + 68) != 0)
                BAD("reserved segment header field not zero");
        first_seq = audit_le64(buf + 16);
        if (first_seq == 0 || (unsigned) __builtin_popcountll(first_seq - 1) != n_frontier)
                BAD("frontier size does not match the first sequence number");
        if (ret) {
                ret->first_seq = first_seq;
                ret->epoch = audit_le64(buf + 24);
                memcpy(ret->prev_hash, buf + 32, AUDIT_HASH_SIZE);
                ret->n_frontier = n_frontier;
                for (uint32_t i = 0; i < n_frontier; i++)
                        memcpy(ret->frontier[i], buf + AUDIT_SEGMENT_FIXED_SIZE + i * AUDIT_HASH_SIZE, AUDIT_HASH_SIZE);
                ret->header_size = size;
        }
        return AUDIT_PARSE_OK;
}
