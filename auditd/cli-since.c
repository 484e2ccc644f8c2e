/* SPDX-License-Identifier: Apache-2.0 */
/* The time of --since, apart from the command line so that a fuzz target
 * drives it (auditd/fuzz/fuzz-audit-since.c). */
#include <stdint.h>
#include <time.h>

#include "audit-cli.h"
#include "parse-util.h"

int parse_since(const char *s, uint64_t *ret) {
        struct tm tm = {}, want;
        const char *end;
        uint64_t v;

        if (s[0] == '@') {
                if (safe_atou64(s + 1, &v) < 0 || v > UINT64_MAX / 1000000U)
                        return -EINVAL;
                *ret = v * 1000000U;
                return 0;
        }
        end = strptime(s, "%Y-%m-%d", &tm);
        if (!end)
                return -EINVAL;
        if (*end) {
                /* one space, not strptime()'s "any white space, or none": "2026-03-299:59" is no time */
                if (*end != ' ')
                        return -EINVAL;
                const char *e2 = strptime(end + 1, "%H:%M:%S", &tm);
                if (!e2)
                        e2 = strptime(end + 1, "%H:%M", &tm);
                if (!e2 || *e2)
                        return -EINVAL;
        }
        want = tm;
        tm.tm_isdst = -1;
        time_t t = mktime(&tm);
        if (t < 0)
                return -EINVAL;
        /* mktime() normalises what does not exist: February 31 into March, 23:59:60
         * into the next day, a local time that the change to summer time skips into
         * the hour after it. None of them is the time asked for. */
        if (tm.tm_year != want.tm_year || tm.tm_mon != want.tm_mon || tm.tm_mday != want.tm_mday ||
            tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min || tm.tm_sec != want.tm_sec)
                return -EINVAL;
        *ret = (uint64_t) t * 1000000U;
        return 0;
}
