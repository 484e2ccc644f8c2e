/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* What callhome-audit prints of a record's bytes (type, transaction id,
 * metadata, payload), which whoever feeds the log controls:
 *   - on a terminal, only printable characters go out as they are; every
 *     other byte is written as \xHH (a backslash as \\), so no escape
 *     sequence, C0/C1 control (8-bit CSI included), bidirectional override or
 *     broken UTF-8 reaches the terminal;
 *   - in JSON, only strictly valid UTF-8 goes out as a string: no overlong
 *     forms, no surrogates, nothing beyond U+10FFFF, no NUL. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the strictly valid UTF-8 sequence at p and its code point,
 * or 0 when the bytes there are not one. */
size_t utf8_sequence(const uint8_t *p, size_t n, uint32_t *ret_cp);
/* Whether all n bytes are strictly valid UTF-8 without NUL. */
bool utf8_valid_strict(const uint8_t *p, size_t n);
/* Whether a code point may go to a terminal as it is. */
bool codepoint_printable(uint32_t cp);
/* Strictly valid UTF-8 of printable code points only (and newline, tab, CR if allowed). */
bool text_printable(const uint8_t *p, size_t n, bool allow_whitespace);

typedef enum CliEscapeFlags {
        CLI_ESCAPE_SPACES = 1 << 0, /* newline, tab, CR as a space (one-line summaries) */
} CliEscapeFlags;

/* Writes the escaped form of p[0..n) to ret (NUL-terminated, at most
 * ret_size - 1 bytes, never a character or escape cut in two) and returns
 * how many input bytes it covers (< n when ret was too small). */
size_t cli_escape(const uint8_t *p, size_t n, CliEscapeFlags flags, char *ret, size_t ret_size);
/* The escaped form in a malloc'd string (NULL when out of memory). */
char *cli_escape_dup(const uint8_t *p, size_t n);
