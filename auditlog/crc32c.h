/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli, as in iSCSI, ext4, LevelDB): the cheap per-record check
 * that tells a torn write from a whole record. Uses the SSE4.2 instruction when
 * the CPU has it, a slicing-by-8 table otherwise. crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t crc32c(uint32_t crc, const void *data, size_t size);
/* The table version alone, so a test can hold the two against each other. */
uint32_t crc32c_portable(uint32_t crc, const void *data, size_t size);
