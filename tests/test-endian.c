/* SPDX-License-Identifier: Apache-2.0 */
/* The on-disk formats are little-endian on every host. CRC-32C against a
 * bit-at-a-time reference that reads one byte at a time (so knows no host
 * order), over every length and alignment the word loop meets; a record's
 * integers and CRC against bytes written out by hand; and the byte-swapped
 * image a host-order writer on a big-endian machine would produce, which
 * must not read back as the same record. Runs on the armhf build under qemu too. */
#include <stdio.h>
#include <string.h>

#include "crc32c.h"
#include "log-format.h"

static int failures = 0;

#define CHECK(x)                                                             \
        do {                                                                 \
                if (!(x)) {                                                  \
                        printf("not ok - %s:%d: %s\n", __FILE__, __LINE__, #x); \
                        failures++;                                          \
                }                                                            \
        } while (0)

static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t n) {
        crc = ~crc;
        while (n--) {
                crc ^= *p++;
                for (int k = 0; k < 8; k++)
                        crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78U : crc >> 1;
        }
        return ~crc;
}

static void check_crc(void) {
        uint8_t data[96 + 8];

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) (i * 37 + 11);
        /* Reference vectors (RFC 3720 B.4): 32 zero bytes, 32 0xff bytes. */
        {
                uint8_t zeros[32] = {}, ones[32];

                memset(ones, 0xff, sizeof(ones));
                CHECK(crc32c_portable(0, zeros, 32) == 0x8a9136aaU && crc32c(0, zeros, 32) == 0x8a9136aaU);
                CHECK(crc32c_portable(0, ones, 32) == 0x62a8ab43U && crc32c(0, ones, 32) == 0x62a8ab43U);
                CHECK(crc32c_portable(0, "123456789", 9) == 0xe3069283U);
        }
        for (size_t off = 0; off < 8; off++)
                for (size_t n = 0; n <= 96; n++) {
                        uint32_t want = crc32c_bitwise(0, data + off, n);

                        CHECK(crc32c_portable(0, data + off, n) == want);
                        CHECK(crc32c(0, data + off, n) == want);
                }
}

static void check_record(void) {
        static const uint8_t payload[] = { 'p' };
        AuditRecordFields f = {
                .seq = 0x0102030405060708ULL,
                .realtime_usec = 0x1112131415161718ULL,
                .monotonic_usec = 0x2122232425262728ULL,
                .epoch = 0x4142434445464748ULL,
                .kind = AUDIT_KIND_DATA,
                .direction = AUDIT_DIRECTION_OUTBOUND,
                .type = "t",
                .payload = payload,
                .payload_len = sizeof(payload),
        };
        /* The header's integers as the format defines them: least significant byte first. */
        static const uint8_t want_seq[] = { 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01 };
        static const uint8_t want_real[] = { 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11 };
        static const uint8_t want_mono[] = { 0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21 };
        static const uint8_t want_epoch[] = { 0x48, 0x47, 0x46, 0x45, 0x44, 0x43, 0x42, 0x41 };
        static const uint8_t want_lens[] = { 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00 };
        uint8_t buf[512], swapped[512], hash[AUDIT_HASH_SIZE] = {}, mac[AUDIT_MAC_SIZE] = {};
        AuditRecord rec;
        uint32_t crc;
        int size;

        for (int i = 0; i < AUDIT_BOOT_ID_SIZE; i++)
                f.boot_id[i] = (uint8_t) (0x30 + i);
        size = audit_record_encode(&f, buf, sizeof(buf));
        CHECK(size > 0);
        if (size <= 0)
                return;
        audit_record_finish(buf, (size_t) size, hash, mac);

        CHECK(memcmp(buf, AUDIT_RECORD_MAGIC, 4) == 0);
        CHECK(buf[4] == (uint8_t) size && buf[5] == (uint8_t) (size >> 8) && buf[6] == 0 && buf[7] == 0);
        CHECK(memcmp(buf + 8, want_seq, 8) == 0);
        CHECK(memcmp(buf + 16, want_real, 8) == 0);
        CHECK(memcmp(buf + 24, want_mono, 8) == 0);
        CHECK(memcmp(buf + 48, want_epoch, 8) == 0);
        CHECK(memcmp(buf + 58, want_lens, sizeof(want_lens)) == 0); /* type, txn, meta (16 bit), payload (32 bit) */
        crc = crc32c_bitwise(0, buf, (size_t) size - 4);
        CHECK(buf[size - 4] == (uint8_t) crc && buf[size - 3] == (uint8_t) (crc >> 8) &&
              buf[size - 2] == (uint8_t) (crc >> 16) && buf[size - 1] == (uint8_t) (crc >> 24));

        CHECK(audit_record_parse(buf, (size_t) size, true, &rec, NULL) == AUDIT_PARSE_OK);
        CHECK(rec.seq == f.seq && rec.realtime_usec == f.realtime_usec && rec.monotonic_usec == f.monotonic_usec &&
              rec.epoch == f.epoch && rec.payload_len == 1);

        /* A big-endian host writing its own order: every integer byte-swapped. Never the same record. */
        memcpy(swapped, buf, (size_t) size);
        for (size_t off = 8; off < 32; off += 8)
                for (int i = 0; i < 8; i++)
                        swapped[off + i] = buf[off + 7 - i];
        for (int i = 0; i < 8; i++)
                swapped[48 + i] = buf[55 - i];
        for (int i = 0; i < 4; i++)
                swapped[size - 4 + i] = buf[size - 1 - i];
        CHECK(audit_record_parse(swapped, (size_t) size, true, &rec, NULL) == AUDIT_PARSE_BAD);
}

int main(void) {
        check_crc();
        check_record();
        printf("%s - CRC-32C and record integers little-endian on this host\n", failures ? "not ok" : "ok");
        printf("%d failure(s)\n", failures);
        return failures ? 1 : 0;
}
