/* SPDX-License-Identifier: Apache-2.0 */
/* A wall clock before the build date is "not set", said so, not mistaken for
 * an unready certificate; at and after the build date it is believed. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "retry.h"
#include "wallclock.h"

static int failures;

static void expect(bool ok, const char *what) {
        printf("%s - %s\n", ok ? "ok" : "FAIL", what);
        if (!ok)
                failures++;
}

int main(void) {
        uint64_t build = wallclock_build_epoch(), now = (uint64_t) time(NULL);
        char buf[21];

        printf("# build date %s\n", format_utc(build, buf));
        expect(build > 1700000000 && build <= now, "the build date is set and not in the future");
        {
                _cleanup_free_ char *e = NULL;
                expect(wallclock_check(5 * USEC_PER_SEC, &e) == -ETIME, "1970 is a clock that is not set");
                printf("# %s\n", e);
                expect(e && strstr(e, "wall clock is not set") && strstr(e, "1970-01-01T00:00:05Z") &&
                       strstr(e, format_utc(build, buf)), "the error says so with both dates");
                expect(e && !strstr(e, "certificate"), "and not that a certificate is not yet valid");
        }
        expect(wallclock_check_at(1000 * USEC_PER_SEC - 1, 1000, NULL) == -ETIME, "a microsecond before the build: not set");
        expect(wallclock_check_at(1000 * USEC_PER_SEC, 1000, NULL) == 0, "at the build date: set");
        expect(wallclock_check(now * USEC_PER_SEC, NULL) == 0, "the machine's clock now is set");
        expect(streq(format_utc(0, buf), "1970-01-01T00:00:00Z"), "the epoch formats");
        expect(streq(format_utc(UINT64_MAX, buf), "(out of range)"), "a time beyond year 9999 does not");

        printf("%s\n", failures ? "FAILED" : "all passed");
        return failures ? 1 : 0;
}
