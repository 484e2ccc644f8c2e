/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of common/: strict number parsing, logging, profile names. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>

#include "confine.h"
#include "log.h"
#include "parse-util.h"

static int failures = 0;

#define CHECK(cond)                                                             \
        do {                                                                    \
                if (!(cond)) {                                                  \
                        printf("not ok - %s:%d: %s\n", __FILE__, __LINE__, #cond); \
                        failures++;                                             \
                }                                                               \
        } while (0)

static void test_u64(void) {
        uint64_t v = 7;

        CHECK(safe_atou64("0", &v) == 0 && v == 0);
        CHECK(safe_atou64("18446744073709551615", &v) == 0 && v == UINT64_MAX);
        v = 7;
        CHECK(safe_atou64("18446744073709551616", &v) == -ERANGE && v == 7);
        CHECK(safe_atou64("99999999999999999999999", &v) == -ERANGE);
        CHECK(safe_atou64("", &v) == -EINVAL);
        CHECK(safe_atou64(" 1", &v) == -EINVAL);
        CHECK(safe_atou64("1 ", &v) == -EINVAL);
        CHECK(safe_atou64("+1", &v) == -EINVAL);
        CHECK(safe_atou64("-1", &v) == -EINVAL);
        CHECK(safe_atou64("0x10", &v) == -EINVAL);
        CHECK(safe_atou64("12a", &v) == -EINVAL);
        CHECK(safe_atou64("1\n", &v) == -EINVAL);
        CHECK(v == 7); /* ret_ written only on success */

        CHECK(parse_u64_buf("42\n", 3, &v) == 0 && v == 42);
        CHECK(parse_u64_buf("42\n\n", 4, &v) == -EINVAL);
        CHECK(parse_u64_buf("\n", 1, &v) == -EINVAL);
        CHECK(parse_u64_buf("4\0002", 3, &v) == -EINVAL);
        CHECK(parse_u64_buf("123456", 3, &v) == 0 && v == 123);
}

static void test_i64(void) {
        int64_t v = 0;
        int32_t w = 0;
        uint32_t u = 0;

        CHECK(safe_atoi64("-9223372036854775808", &v) == 0 && v == INT64_MIN);
        CHECK(safe_atoi64("9223372036854775807", &v) == 0 && v == INT64_MAX);
        CHECK(safe_atoi64("9223372036854775808", &v) == -ERANGE);
        CHECK(safe_atoi64("-9223372036854775809", &v) == -ERANGE);
        CHECK(safe_atoi64("-", &v) == -EINVAL);
        CHECK(safe_atoi64("--1", &v) == -EINVAL);
        CHECK(parse_i64_buf("-3\n", 3, &v) == 0 && v == -3);
        CHECK(safe_atoi32("-2147483648", &w) == 0 && w == INT32_MIN);
        CHECK(safe_atoi32("2147483648", &w) == -ERANGE);
        CHECK(safe_atou32("4294967295", &u) == 0 && u == UINT32_MAX);
        CHECK(safe_atou32("4294967296", &u) == -ERANGE);
}

static void test_misc(void) {
        uint64_t v;

        CHECK(parse_boolean("yes") == 1 && parse_boolean("OFF") == 0 && parse_boolean("maybe") == -EINVAL);
        CHECK(parse_duration_usec("90", &v) == 0 && v == 90000000ULL);
        CHECK(parse_duration_usec("15min", &v) == 0 && v == 900000000ULL);
        CHECK(parse_duration_usec("2h", &v) == 0 && v == 7200000000ULL);
        CHECK(parse_duration_usec("1fortnight", &v) == -EINVAL);
        CHECK(parse_duration_usec("99999999999999999d", &v) == -ERANGE);
        CHECK(parse_size("4K", &v) == 0 && v == 4096);
        CHECK(parse_size("16M", &v) == 0 && v == 16ULL << 20);
        CHECK(parse_size("1.5G", &v) == -EINVAL);

        for (int i = 0; i < _CONFINE_PROFILE_MAX; i++)
                CHECK(confine_profile_from_string(confine_profile_to_string((ConfineProfile) i)) == (ConfineProfile) i);
        CHECK(confine_profile_from_string("browser") == _CONFINE_PROFILE_INVALID);
        CHECK(streq(confine_profile_user(CONFINE_PROFILE_NET_WORKER), "callhome-net"));
        CHECK(seccomp_mode_from_string("trap") == SECCOMP_MODE_TRAP);
        CHECK(seccomp_mode_from_string("allow") == _SECCOMP_MODE_INVALID);
        setenv("CALLHOME_SECCOMP", "allow-everything", 1);
        CHECK(seccomp_mode_from_env() == SECCOMP_MODE_KILL); /* a typo never weakens the sandbox */
        unsetenv("CALLHOME_SECCOMP");
}

static void test_log(void) {
        char buf[512] = {};
        FILE *saved = stderr;
        FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
        int r;

        assert(f);
        stderr = f;
        setenv("JOURNAL_STREAM", "8:123", 1);
        log_setup("test");
        r = log_error_errno(ENOENT, "Failed to open %s: %m", "x");
        log_debug("hidden");
        fflush(f);
        stderr = saved;
        fclose(f);
        CHECK(r == -ENOENT);
        CHECK(strcmp(buf, "<3>Failed to open x: No such file or directory\n") == 0);
        CHECK(log_full_errno(LOG_WARNING, -EPERM, "x") == -EPERM);
        CHECK(log_level_from_string("debug") == LOG_DEBUG);
        CHECK(log_level_from_string("7") == 7);
        CHECK(log_level_from_string("loud") == -EINVAL);

        memset(buf, 0, sizeof(buf));
        f = fmemopen(buf, sizeof(buf) - 1, "w");
        assert(f);
        stderr = f;
        unsetenv("JOURNAL_STREAM");
        log_setup("test");
        log_warning("plain %d", 1);
        fflush(f);
        stderr = saved;
        fclose(f);
        CHECK(strcmp(buf, "test: plain 1\n") == 0);
}

int main(void) {
        test_u64();
        test_i64();
        test_misc();
        test_log();
        printf("%d failure(s)\n", failures);
        return failures ? 1 : 0;
}
