/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the audit log format: CRC-32C, record and segment header
 * encode/parse round trips and every truncation, bounds, metadata, key
 * evolution and the key file, checkpoint notes. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "crc32c.h"
#include "log-format.h"
#include "merkle.h"
#include "seal.h"

#define CHECK(x)                                                             \
        do {                                                                 \
                if (!(x)) {                                                  \
                        fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #x); \
                        return 1;                                            \
                }                                                            \
        } while (0)

static uint8_t buf[1 << 16];

int main(void) {
        const char *keys[] = { "attempt", "peer" }, *values[] = { "2", "server" };
        uint8_t meta[256], payload[1000], key[32], hash[32], mac[32], mac2[32], k1[32], k2[32];
        size_t meta_len = 0;
        AuditRecord rec;
        AuditSealKey *a = NULL, *b = NULL;
        int size;

        /* CRC-32C: the standard check value, and the hardware path equals the table. */
        CHECK(crc32c(0, "123456789", 9) == 0xe3069283U);
        CHECK(crc32c_portable(0, "123456789", 9) == 0xe3069283U);
        for (size_t n = 0; n < 300; n++) {
                for (size_t i = 0; i < n; i++)
                        payload[i] = (uint8_t) (i * 31 + n);
                CHECK(crc32c(0, payload, n) == crc32c_portable(0, payload, n));
                CHECK(crc32c(crc32c(0, payload, n / 2), payload + n / 2, n - n / 2) == crc32c(0, payload, n));
        }

        /* Record round trip. */
        CHECK(audit_meta_encode(keys, values, 2, meta, sizeof(meta), &meta_len) == 0);
        for (size_t i = 0; i < sizeof(payload); i++)
                payload[i] = (uint8_t) i;
        AuditRecordFields f = { .seq = 7, .realtime_usec = 1, .monotonic_usec = 2, .epoch = 3, .kind = AUDIT_KIND_DATA,
                                .direction = AUDIT_DIRECTION_OUTBOUND, .type = "meter-reads", .txn = "SN-7",
                                .meta = meta, .meta_len = meta_len, .payload = payload, .payload_len = 999 };
        size = audit_record_encode(&f, buf, sizeof(buf));
        CHECK(size > 0 && size % 8 == 0);
        memset(hash, 0xaa, 32);
        memset(mac, 0xbb, 32);
        audit_record_finish(buf, (size_t) size, hash, mac);
        CHECK(audit_record_parse(buf, (size_t) size, true, &rec, NULL) == AUDIT_PARSE_OK);
        CHECK(rec.seq == 7 && rec.epoch == 3 && rec.kind == AUDIT_KIND_DATA && rec.payload_len == 999 &&
              memcmp(rec.payload, payload, 999) == 0 && rec.type_len == 11 && memcmp(rec.txn, "SN-7", 4) == 0 &&
              memcmp(rec.hash, hash, 32) == 0 && memcmp(rec.mac, mac, 32) == 0 && rec.meta_len == meta_len);
        /* Every truncation is "short", never a record. */
        for (int n = 0; n < size; n++)
                CHECK(n == 0 || audit_record_parse(buf, (size_t) n, true, &rec, NULL) == AUDIT_PARSE_SHORT);
        /* Every single-bit flip is caught. */
        for (int i = 0; i < size; i++) {
                buf[i] ^= 0x10;
                CHECK(audit_record_parse(buf, (size_t) size, true, &rec, NULL) != AUDIT_PARSE_OK);
                buf[i] ^= 0x10;
        }
        /* Bounds. */
        f.payload_len = AUDIT_PAYLOAD_MAX + 1;
        CHECK(audit_record_encode(&f, buf, sizeof(buf)) == -E2BIG);
        f.payload_len = 10;
        f.seq = 0;
        CHECK(audit_record_encode(&f, buf, sizeof(buf)) == -EINVAL);
        CHECK(!audit_type_valid("audit.seal", false) && audit_type_valid("audit.seal", true));
        CHECK(!audit_type_valid("", false) && !audit_type_valid("Upper", false) && audit_type_valid("meter-reads", false));
        CHECK(!audit_txn_valid("has space") && audit_txn_valid("SN-1"));
        CHECK(!audit_meta_key_valid("bad key") && audit_meta_key_valid("ok.key"));

        /* Segment header round trip. */
        AuditSegmentHeader h = { .first_seq = 6, .epoch = 2, .n_frontier = 2 }, h2;
        memset(h.prev_hash, 1, 32);
        memset(h.frontier[0], 2, 32);
        memset(h.frontier[1], 3, 32);
        size = audit_segment_header_encode(&h, buf, sizeof(buf));
        CHECK(size > 0);
        CHECK(audit_segment_header_parse(buf, (size_t) size, &h2, NULL) == AUDIT_PARSE_OK);
        CHECK(h2.first_seq == 6 && h2.epoch == 2 && h2.n_frontier == 2 && memcmp(h2.frontier[1], h.frontier[1], 32) == 0);
        h.n_frontier = 1; /* popcount(5) = 2: refused */
        CHECK(audit_segment_header_encode(&h, buf, sizeof(buf)) == -EINVAL);

        /* Key evolution: deterministic, one way, evolve_to = repeated evolve. */
        memset(key, 0x42, 32);
        CHECK(audit_seal_key_new(0, key, &a) == 0 && audit_seal_key_new(0, key, &b) == 0);
        CHECK(audit_seal_key_mac(a, hash, mac) == 0 && audit_seal_key_mac(b, hash, mac2) == 0 && memcmp(mac, mac2, 32) == 0);
        CHECK(audit_seal_key_evolve(a) == 0 && audit_seal_key_evolve(a) == 0 && audit_seal_key_evolve_to(b, 2) == 0);
        audit_seal_key_raw(a, k1);
        audit_seal_key_raw(b, k2);
        CHECK(audit_seal_key_epoch(a) == 2 && memcmp(k1, k2, 32) == 0 && memcmp(k1, key, 32) != 0);
        CHECK(audit_seal_key_mac(a, hash, mac2) == 0 && memcmp(mac, mac2, 32) != 0);
        CHECK(audit_seal_key_evolve_to(a, 1) == -ERANGE);
        {
                uint8_t file[AUDIT_KEY_FILE_SIZE];
                AuditSealKey *c = NULL;
                CHECK(audit_key_file_encode(a, file) == 0 && audit_key_file_decode(file, sizeof(file), &c) == 0);
                CHECK(audit_seal_key_epoch(c) == 2);
                file[20] ^= 1;
                audit_seal_key_free(c);
                CHECK(audit_key_file_decode(file, sizeof(file), &c) == -EBADMSG);
        }
        audit_seal_key_free(a);
        audit_seal_key_free(b);

        /* Checkpoint notes: sign, verify, reject alterations and other keys. */
        {
                uint8_t priv[32], pub[32];
                char vk[256], note[CHECKPOINT_NOTE_MAX];
                CheckpointVerifier v;
                Checkpoint c = { .origin = "example.org/log", .size = 12 }, out;

                memset(priv, 7, 32);
                memset(c.root, 9, 32);
                CHECK(checkpoint_public_key(priv, pub) == 0);
                CHECK(checkpoint_vkey_format("example.org/log", pub, vk, sizeof(vk)) == 0);
                CHECK(checkpoint_vkey_parse(vk, strlen(vk), &v) == 0);
                CHECK(checkpoint_sign(priv, "example.org/log", &c, note, sizeof(note)) == 0);
                CHECK(checkpoint_parse_verify(note, strlen(note), &v, &out) == 0 && out.size == 12 &&
                      memcmp(out.root, c.root, 32) == 0);
                note[strlen("example.org/log\n")] = '3'; /* size 12 → 32 */
                CHECK(checkpoint_parse_verify(note, strlen(note), &v, &out) == -EPERM);
                priv[0] ^= 1;
                CHECK(checkpoint_public_key(priv, pub) == 0 && checkpoint_vkey_format("example.org/log", pub, vk, sizeof(vk)) == 0);
                CHECK(checkpoint_vkey_parse(vk, strlen(vk), &v) == 0);
                note[strlen("example.org/log\n")] = '1';
                CHECK(checkpoint_parse_verify(note, strlen(note), &v, &out) == -EPERM);
        }
        printf("ok - audit format unit tests\n");
        return 0;
}
