/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

/* Strict number parsing: the whole string must be a number in range; no
 * leading whitespace, no sign on unsigned values, no trailing garbage.
 * Return 0 or -EINVAL (not a number) / -ERANGE (out of range). */
int safe_atou64(const char *s, uint64_t *ret);
int safe_atoi64(const char *s, int64_t *ret);
int safe_atou32(const char *s, uint32_t *ret);
int safe_atoi32(const char *s, int32_t *ret);
int safe_atou(const char *s, unsigned *ret);

/* Same, for a buffer of given length that need not be NUL terminated. A single
 * trailing newline is accepted (sysfs-style files end in one). */
int parse_u64_buf(const char *buf, size_t len, uint64_t *ret);
int parse_i64_buf(const char *buf, size_t len, int64_t *ret);

/* "1/yes/true/on" and "0/no/false/off" → 1 / 0, else -EINVAL. */
int parse_boolean(const char *s);

/* Durations such as "90", "90s", "15min", "2h", "1d" → microseconds. */
int parse_duration_usec(const char *s, uint64_t *ret);

/* Byte sizes such as "512", "4K", "16M", "1G" (binary multiples) → bytes. */
int parse_size(const char *s, uint64_t *ret);
