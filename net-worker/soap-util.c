/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "macro.h"
#include "soap-util.h"

bool soap_valid_text(const char *s, size_t max_chars) {
        const unsigned char *p = (const unsigned char *) s;
        size_t chars = 0;

        assert(s);
        while (*p) {
                uint32_t c;
                int n;

                if (*p < 0x80) {
                        c = *p;
                        n = 1;
                } else if ((*p & 0xE0) == 0xC0) {
                        c = *p & 0x1F;
                        n = 2;
                } else if ((*p & 0xF0) == 0xE0) {
                        c = *p & 0x0F;
                        n = 3;
                } else if ((*p & 0xF8) == 0xF0) {
                        c = *p & 0x07;
                        n = 4;
                } else
                        return false;
                for (int i = 1; i < n; i++) {
                        if ((p[i] & 0xC0) != 0x80)
                                return false;
                        c = (c << 6) | (p[i] & 0x3F);
                }
                /* overlong forms, surrogates, beyond Unicode */
                if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10FFFF ||
                    (c >= 0xD800 && c <= 0xDFFF))
                        return false;
                /* XML 1.0 Char */
                if ((c < 0x20 && c != 0x9 && c != 0xA && c != 0xD) || c == 0xFFFE || c == 0xFFFF)
                        return false;
                p += n;
                if (++chars > max_chars)
                        return false;
        }
        return true;
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool valid_token(const char *s, size_t max, const char *extra, bool alnum_first) {
        size_t n;

        assert(s);
        n = strlen(s);
        if (n < 1 || n > max)
                return false;
        if (alnum_first && !is_alnum(s[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && !strchr(extra, s[i]))
                        return false;
        return true;
}

bool soap_valid_device_id(const char *s) {
        return valid_token(s, 64, "._-", true);
}

bool soap_valid_agent_version(const char *s) {
        return valid_token(s, 32, ".+~_-", false);
}

bool soap_valid_transaction_id(const char *s) {
        return valid_token(s, 96, "._:-", false);
}

bool soap_valid_name(const char *s) {
        return valid_token(s, 64, "._:/-", false);
}

bool soap_valid_software_version(const char *s) {
        unsigned parts = 0;

        assert(s);
        for (;;) {
                size_t digits = strspn(s, "0123456789");

                if (digits < 1 || digits > 6 || (digits > 1 && s[0] == '0'))
                        return false;
                parts++;
                s += digits;
                if (*s == '\0')
                        return parts <= 4;
                if (*s != '.')
                        return false;
                s++;
        }
}

bool soap_valid_sha256_hex(const char *s) {
        assert(s);
        return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static bool digits(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

bool soap_valid_utc_time(const char *s) {
        size_t n;

        assert(s);
        n = strlen(s);
        if (n < 20)
                return false;
        if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) || s[10] != 'T' ||
            !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
                return false;
        s += 19;
        if (*s == '.') {
                size_t f = strspn(s + 1, "0123456789");
                if (f < 1 || f > 6)
                        return false;
                s += 1 + f;
        }
        return streq(s, "Z");
}

bool soap_valid_base64(const char *s, size_t bytes) {
        size_t n, pad = 0;

        assert(s);
        n = strlen(s);
        if (n % 4 != 0)
                return false;
        if (n > 0 && s[n - 1] == '=')
                pad++;
        if (n > 1 && s[n - 2] == '=')
                pad++;
        for (size_t i = 0; i < n - pad; i++)
                if (!is_alnum(s[i]) && s[i] != '+' && s[i] != '/')
                        return false;
        return bytes == 0 || n / 4 * 3 - pad == bytes;
}

int soap_base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ char *clean = NULL;
        _cleanup_free_ uint8_t *out = NULL;
        size_t n = 0, pad = 0;
        int k;

        assert(s);
        assert(ret);
        assert(ret_size);

        /* xs:base64Binary allows whitespace between characters: drop it, then be strict. */
        clean = malloc(len + 1);
        if (!clean)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
                        continue;
                clean[n++] = s[i];
        }
        clean[n] = '\0';
        if (!soap_valid_base64(clean, 0))
                return -EINVAL;
        if (n > 0 && clean[n - 1] == '=')
                pad++;
        if (n > 1 && clean[n - 2] == '=')
                pad++;
        out = malloc(n / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        if (n > INT32_MAX)
                return -E2BIG;
        k = EVP_DecodeBlock(out, (const unsigned char *) clean, (int) n);
        if (k < 0 || (size_t) k < pad)
                return -EINVAL;
        *ret_size = (size_t) k - pad;
        *ret = TAKE_PTR(out);
        return 0;
}
