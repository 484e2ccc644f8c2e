/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-output.h"

size_t utf8_sequence(const uint8_t *p, size_t n, uint32_t *ret_cp) {
        uint32_t cp, min;
        size_t len;

        assert(p || n == 0);
        if (n == 0)
                return 0;
        if (p[0] < 0x80) {
                *ret_cp = p[0];
                return 1;
        }
        if (p[0] >= 0xc2 && p[0] <= 0xdf) {
                len = 2;
                cp = p[0] & 0x1fU;
                min = 0x80;
        } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
                len = 3;
                cp = p[0] & 0x0fU;
                min = 0x800;
        } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
                len = 4;
                cp = p[0] & 0x07U;
                min = 0x10000;
        } else
                return 0; /* a continuation byte, an overlong lead (C0, C1) or beyond U+10FFFF (F5..FF) */
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (p[i] & 0x3fU);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        *ret_cp = cp;
        return len;
}

bool utf8_valid_strict(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_sequence(p + i, n - i, &cp);

                if (len == 0 || cp == 0)
                        return false;
                i += len;
        }
        return true;
}

bool codepoint_printable(uint32_t cp) {
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) /* C0, DEL, C1 */
                return false;
        if ((cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x206f) ||
            cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb)) /* zero-width, line/paragraph separators, bidi controls */
                return false;
        return true;
}

bool text_printable(const uint8_t *p, size_t n, bool allow_whitespace) {
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_sequence(p + i, n - i, &cp);

                if (len == 0 || !(codepoint_printable(cp) || (allow_whitespace && (cp == '\n' || cp == '\t' || cp == '\r'))))
                        return false;
                i += len;
        }
        return true;
}

size_t cli_escape(const uint8_t *p, size_t n, CliEscapeFlags flags, char *ret, size_t ret_size) {
        size_t i = 0, o = 0;

        assert(ret && ret_size > 0);
        while (i < n) {
                char esc[5];
                const char *out;
                size_t in_len, out_len;
                uint32_t cp;

                in_len = utf8_sequence(p + i, n - i, &cp);
                if (in_len > 0 && cp != '\\' && codepoint_printable(cp)) {
                        out = (const char *) p + i;
                        out_len = in_len;
                } else if ((flags & CLI_ESCAPE_SPACES) && (p[i] == '\n' || p[i] == '\t' || p[i] == '\r')) {
                        out = " ";
                        out_len = in_len = 1;
                } else {
                        in_len = 1;
                        switch (p[i]) {
                        case '\\':
                                out = "\\\\";
                                break;
                        case '\n':
                                out = "\\n";
                                break;
                        case '\t':
                                out = "\\t";
                                break;
                        case '\r':
                                out = "\\r";
                                break;
                        default:
                                (void) snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
                                out = esc;
                        }
                        out_len = strlen(out);
                }
                if (o + out_len >= ret_size)
                        break;
                memcpy(ret + o, out, out_len);
                o += out_len;
                i += in_len;
        }
        ret[o] = '\0';
        return i;
}

char *cli_escape_dup(const uint8_t *p, size_t n) {
        size_t size = 4 * n + 1; /* \xHH is the longest form of a byte */
        char *s = malloc(size);

        if (!s)
                return NULL;
        (void) cli_escape(p, n, 0, s, size);
        return s;
}
