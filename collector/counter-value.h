/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Parsers for the values a counter source hands us, one value per buffer
 * (sysfs style: the file's bytes, optionally ending in one newline). No I/O
 * here, so a unit test and a fuzz target drive them directly. Each parser
 * returns 0 or a negative errno and, on failure, a static human-readable
 * reason in *ret_reason (the caller reports it with the counter's name). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest text value (description, colorant, model, serial) we accept. */
#define COUNTER_TEXT_MAX 255U
/* Serial numbers and tokens are shorter. */
#define COUNTER_SERIAL_MAX 64U
#define COUNTER_TOKEN_MAX 64U

/* RFC 3805 special values of prtMarkerSuppliesLevel / MaxCapacity, kept as
 * explicit states so that they can never be summed as numbers. */
typedef enum LevelState {
        LEVEL_VALUE,          /* a real, non-negative amount in the supply's unit */
        LEVEL_OTHER,          /* -1: other; for a max capacity: no restriction */
        LEVEL_UNKNOWN,        /* -2: unknown */
        LEVEL_SOME_REMAINING, /* -3: some remaining (a level only) */
        _LEVEL_STATE_MAX,
        _LEVEL_STATE_INVALID = -22,
} LevelState;

const char *level_state_to_string(LevelState s);

typedef struct LevelValue {
        LevelState state;
        int32_t value; /* meaningful only when state == LEVEL_VALUE, else 0 */
} LevelValue;

/* An unsigned 64-bit counter: decimal digits only, at most one trailing
 * newline. Rejects empty, signs, whitespace, leading garbage, > 2^64-1. */
int counter_parse_u64(const char *buf, size_t len, uint64_t *ret, const char **ret_reason);

/* A supply level or max capacity: a non-negative int32 or -1/-2/-3.
 * `is_max` rejects -3, which RFC 3805 defines for levels only. */
int counter_parse_level(const char *buf, size_t len, bool is_max, LevelValue *ret, const char **ret_reason);

/* A positive index (1 … 2^31-1), as in prtMarkerIndex / prtMarkerSuppliesIndex,
 * taken from a directory name: the whole buffer is the canonical decimal
 * number. Unlike the value parsers, no trailing newline is stripped (a
 * directory "1\n" is not index 1), and signs, spaces and leading zeros are
 * refused, so each index has exactly one spelling. */
int counter_parse_index(const char *buf, size_t len, uint32_t *ret, const char **ret_reason);

/* Text: printable ASCII (0x20–0x7e), 1…max bytes after the optional trailing
 * newline is removed, no leading or trailing space. Returns a new string. */
int counter_parse_text(const char *buf, size_t len, size_t max, char **ret, const char **ret_reason);

/* A serial number: [A-Za-z0-9._-], 1…64 bytes. Returns a new string. */
int counter_parse_serial(const char *buf, size_t len, char **ret, const char **ret_reason);

/* A token (an RFC 3805 enumeration label such as "toner", "impressions"):
 * [A-Za-z0-9], 1…64 bytes, copied into `out` (size COUNTER_TOKEN_MAX + 1). */
int counter_parse_token(const char *buf, size_t len, char out[static COUNTER_TOKEN_MAX + 1], const char **ret_reason);

/* A name as it appears in the source tree (a billing counter's file name):
 * [A-Za-z][A-Za-z0-9]{0,63}. */
bool counter_name_is_valid(const char *name);
