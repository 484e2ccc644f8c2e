/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "parse-util.h"

static int parse_digits(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                if (v > (UINT64_MAX - (uint64_t) (s[i] - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        *ret = v;
        return 0;
}

int parse_u64_buf(const char *buf, size_t len, uint64_t *ret) {
        uint64_t v;
        int r;

        if (len > 0 && buf[len - 1] == '\n')
                len--;
        r = parse_digits(buf, len, &v);
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

int parse_i64_buf(const char *buf, size_t len, int64_t *ret) {
        bool neg = false;
        uint64_t v;
        int r;

        if (len > 0 && buf[len - 1] == '\n')
                len--;
        if (len > 0 && buf[0] == '-') {
                neg = true;
                buf++;
                len--;
        }
        r = parse_digits(buf, len, &v);
        if (r < 0)
                return r;
        if (neg) {
                if (v > (uint64_t) INT64_MAX + 1)
                        return -ERANGE;
                *ret = v == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) v;
        } else {
                if (v > INT64_MAX)
                        return -ERANGE;
                *ret = (int64_t) v;
        }
        return 0;
}

int safe_atou64(const char *s, uint64_t *ret) {
        return parse_digits(s, strlen(s), ret);
}

int safe_atoi64(const char *s, int64_t *ret) {
        size_t n = strlen(s);

        if (n > 0 && s[n - 1] == '\n')
                return -EINVAL;
        return parse_i64_buf(s, n, ret);
}

int safe_atou32(const char *s, uint32_t *ret) {
        uint64_t v;
        int r = safe_atou64(s, &v);

        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int safe_atoi32(const char *s, int32_t *ret) {
        int64_t v;
        int r = safe_atoi64(s, &v);

        if (r < 0)
                return r;
        if (v < INT32_MIN || v > INT32_MAX)
                return -ERANGE;
        *ret = (int32_t) v;
        return 0;
}

int safe_atou(const char *s, unsigned *ret) {
        uint32_t v;
        int r = safe_atou32(s, &v);

        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

int parse_boolean(const char *s) {
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

typedef struct Suffix {
        const char *suffix;
        uint64_t factor;
} Suffix;

static int parse_with_suffix(const char *s, const Suffix *table, size_t n, uint64_t *ret) {
        size_t digits = strspn(s, "0123456789");
        const char *rest = s + digits;
        uint64_t v, f = 0;
        int r;

        r = parse_digits(s, digits, &v);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (streq(rest, table[i].suffix)) {
                        f = table[i].factor;
                        break;
                }
        if (f == 0)
                return -EINVAL;
        if (v > UINT64_MAX / f)
                return -ERANGE;
        *ret = v * f;
        return 0;
}

int parse_duration_usec(const char *s, uint64_t *ret) {
        static const Suffix table[] = {
                { "", 1000000ULL },        { "s", 1000000ULL },      { "sec", 1000000ULL },
                { "ms", 1000ULL },         { "us", 1ULL },           { "min", 60000000ULL },
                { "m", 60000000ULL },      { "h", 3600000000ULL },   { "d", 86400000000ULL },
        };
        return parse_with_suffix(s, table, ELEMENTSOF(table), ret);
}

int parse_size(const char *s, uint64_t *ret) {
        static const Suffix table[] = {
                { "", 1ULL },           { "B", 1ULL },          { "K", 1ULL << 10 },
                { "M", 1ULL << 20 },    { "G", 1ULL << 30 },    { "KiB", 1ULL << 10 },
                { "MiB", 1ULL << 20 },  { "GiB", 1ULL << 30 },
        };
        return parse_with_suffix(s, table, ELEMENTSOF(table), ret);
}
