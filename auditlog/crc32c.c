/* SPDX-License-Identifier: Apache-2.0 */
#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

/* Both initialised once, whichever thread comes first (verification runs on several). */
static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = (c & 1) ? (c >> 1) ^ 0x82f63b78U : c >> 1;
                table[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; i++)
                for (int t = 1; t < 8; t++)
                        table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

/* The next 8 bytes as the little-endian number the tables are built for, on
 * any host (one plain load on a little-endian one). */
static uint64_t load_le64(const uint8_t *p) {
        uint64_t v;

        memcpy(&v, p, 8);
        return le64toh(v);
}

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t n) {
        (void) pthread_once(&table_once, table_init);
        while (n >= 8) {
                uint64_t v = load_le64(p);

                v ^= crc;
                crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^ table[5][(v >> 16) & 0xff] ^
                      table[4][(v >> 24) & 0xff] ^ table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
                      table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
                p += 8;
                n -= 8;
        }
        while (n--)
                crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
        return crc;
}

#if defined(__x86_64__)
/* One stream of 8-byte steps runs at several GB/s on current cores, a few
 * times SHA-256 even with SHA-NI, so the CRC costs little next to the hash. */
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
        uint64_t c = crc;

        while (n >= 32) {
                uint64_t a, b, d, e;
                memcpy(&a, p, 8);
                memcpy(&b, p + 8, 8);
                memcpy(&d, p + 16, 8);
                memcpy(&e, p + 24, 8);
                c = __builtin_ia32_crc32di(c, a);
                c = __builtin_ia32_crc32di(c, b);
                c = __builtin_ia32_crc32di(c, d);
                c = __builtin_ia32_crc32di(c, e);
                p += 32;
                n -= 32;
        }
        while (n >= 8) {
                uint64_t v;
                memcpy(&v, p, 8);
                c = __builtin_ia32_crc32di(c, v);
                p += 8;
                n -= 8;
        }
        crc = (uint32_t) c;
        while (n--)
                crc = __builtin_ia32_crc32qi(crc, *p++);
        return crc;
}
#endif

#if defined(__x86_64__)
static bool have_hw = false;
static pthread_once_t hw_once = PTHREAD_ONCE_INIT;

static void detect_hw(void) {
        __builtin_cpu_init();
        have_hw = __builtin_cpu_supports("sse4.2") && !secure_getenv("CALLHOME_CRC32C_PORTABLE");
}
#endif

uint32_t crc32c(uint32_t crc, const void *data, size_t size) {
        crc = ~crc;
#if defined(__x86_64__)
        (void) pthread_once(&hw_once, detect_hw);
        if (have_hw)
                return ~crc32c_hw(crc, data, size);
#endif
        return ~crc32c_sw(crc, data, size);
}

uint32_t crc32c_portable(uint32_t crc, const void *data, size_t size) {
        return ~crc32c_sw(~crc, data, size);
}
