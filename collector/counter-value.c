/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "counter-value.h"
#include "macro.h"

static const char *const level_state_names[_LEVEL_STATE_MAX] = {
        [LEVEL_VALUE] = "value",
        [LEVEL_OTHER] = "other",
        [LEVEL_UNKNOWN] = "unknown",
        [LEVEL_SOME_REMAINING] = "some-remaining",
};

const char *level_state_to_string(LevelState s) {
        return s >= 0 && s < _LEVEL_STATE_MAX ? level_state_names[s] : NULL;
}

static int fail(const char **ret_reason, const char *reason, int error) {
        if (ret_reason)
                *ret_reason = reason;
        return -error;
}

/* Strip the one trailing newline a sysfs attribute ends with; a NUL anywhere is garbage. */
static int strip(const char *buf, size_t *len, const char **ret_reason) {
        if (*len > 0 && buf[*len - 1] == '\n')
                (*len)--;
        if (*len == 0)
                return fail(ret_reason, "empty value", EINVAL);
        if (memchr(buf, '\0', *len))
                return fail(ret_reason, "NUL byte in value", EINVAL);
        if (memchr(buf, '\n', *len))
                return fail(ret_reason, "more than one line", EINVAL);
        return 0;
}

static int digits(const char *buf, size_t len, uint64_t *ret, const char **ret_reason) {
        uint64_t v = 0;

        for (size_t i = 0; i < len; i++) {
                unsigned d;

                if (buf[i] < '0' || buf[i] > '9')
                        return fail(ret_reason, "not a decimal number", EINVAL);
                d = (unsigned) (buf[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return fail(ret_reason, "out of range (above 2^64-1)", ERANGE);
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* strndup() would look for a NUL past `len` in a buffer that need not have one. */
static char *copy_string(const char *buf, size_t len) {
        char *s = malloc(len + 1);

        if (!s)
                return NULL;
        memcpy(s, buf, len);
        s[len] = '\0';
        return s;
}

int counter_parse_u64(const char *buf, size_t len, uint64_t *ret, const char **ret_reason) {
        uint64_t v;
        int r;

        r = strip(buf, &len, ret_reason);
        if (r < 0)
                return r;
        if (buf[0] == '-')
                return fail(ret_reason, "negative value for a counter", ERANGE);
        if (buf[0] == '0' && len > 1)
                return fail(ret_reason, "leading zero", EINVAL);
        r = digits(buf, len, &v, ret_reason);
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

int counter_parse_level(const char *buf, size_t len, bool is_max, LevelValue *ret, const char **ret_reason) {
        uint64_t v;
        int r;

        r = strip(buf, &len, ret_reason);
        if (r < 0)
                return r;
        if (buf[0] == '-') {
                if (len == 2 && buf[1] == '1') {
                        *ret = (LevelValue) { LEVEL_OTHER, 0 };
                        return 0;
                }
                if (len == 2 && buf[1] == '2') {
                        *ret = (LevelValue) { LEVEL_UNKNOWN, 0 };
                        return 0;
                }
                if (len == 2 && buf[1] == '3') {
                        if (is_max)
                                return fail(ret_reason, "-3 (some remaining) is defined for a level only", EINVAL);
                        *ret = (LevelValue) { LEVEL_SOME_REMAINING, 0 };
                        return 0;
                }
                return fail(ret_reason, "negative value other than -1, -2, -3", ERANGE);
        }
        if (buf[0] == '0' && len > 1)
                return fail(ret_reason, "leading zero", EINVAL);
        r = digits(buf, len, &v, ret_reason);
        if (r < 0)
                return r;
        if (v > INT32_MAX)
                return fail(ret_reason, "out of range (above 2^31-1)", ERANGE);
        *ret = (LevelValue) { LEVEL_VALUE, (int32_t) v };
        return 0;
}

int counter_parse_index(const char *buf, size_t len, uint32_t *ret, const char **ret_reason) {
        static const char reason[] = "index must be 1 to 2147483647, decimal digits only, no leading zero";
        uint64_t v;

        /* A directory name, not a file's value: nothing is stripped, or "1\n" would alias "1". */
        if (len == 0 || len > 10 || buf[0] == '0' || digits(buf, len, &v, NULL) < 0)
                return fail(ret_reason, reason, EINVAL);
        if (v > INT32_MAX)
                return fail(ret_reason, reason, ERANGE);
        *ret = (uint32_t) v;
        return 0;
}

int counter_parse_text(const char *buf, size_t len, size_t max, char **ret, const char **ret_reason) {
        char *s;
        int r;

        r = strip(buf, &len, ret_reason);
        if (r < 0)
                return r;
        if (len > max)
                return fail(ret_reason, "text too long", E2BIG);
        for (size_t i = 0; i < len; i++)
                if (buf[i] < 0x20 || buf[i] > 0x7e)
                        return fail(ret_reason, "text must be printable ASCII", EINVAL);
        if (buf[0] == ' ' || buf[len - 1] == ' ')
                return fail(ret_reason, "leading or trailing space", EINVAL);
        s = copy_string(buf, len);
        if (!s)
                return fail(ret_reason, "out of memory", ENOMEM);
        *ret = s;
        return 0;
}

int counter_parse_serial(const char *buf, size_t len, char **ret, const char **ret_reason) {
        static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
        char *s;
        int r;

        r = strip(buf, &len, ret_reason);
        if (r < 0)
                return r;
        if (len > COUNTER_SERIAL_MAX)
                return fail(ret_reason, "serial number longer than 64 characters", E2BIG);
        for (size_t i = 0; i < len; i++)
                if (!memchr(allowed, buf[i], sizeof(allowed) - 1))
                        return fail(ret_reason, "serial number may hold only A-Z a-z 0-9 . _ -", EINVAL);
        s = copy_string(buf, len);
        if (!s)
                return fail(ret_reason, "out of memory", ENOMEM);
        *ret = s;
        return 0;
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int counter_parse_token(const char *buf, size_t len, char out[static COUNTER_TOKEN_MAX + 1], const char **ret_reason) {
        int r;

        r = strip(buf, &len, ret_reason);
        if (r < 0)
                return r;
        if (len > COUNTER_TOKEN_MAX)
                return fail(ret_reason, "keyword longer than 64 characters", E2BIG);
        for (size_t i = 0; i < len; i++)
                if (!is_alnum(buf[i]))
                        return fail(ret_reason, "keyword may hold only A-Z a-z 0-9", EINVAL);
        memcpy(out, buf, len);
        out[len] = '\0';
        return 0;
}

bool counter_name_is_valid(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n > 64)
                return false;
        if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_alnum(name[i]))
                        return false;
        return true;
}
