/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "retry.h"
#include "wallclock.h"

#ifndef CALLHOME_BUILD_EPOCH
#error "CALLHOME_BUILD_EPOCH must be set by meson"
#endif

uint64_t wallclock_build_epoch(void) {
        return CALLHOME_BUILD_EPOCH;
}

const char *format_utc(uint64_t sec, char buf[static 21]) {
        time_t t = (time_t) sec;
        struct tm tm;

        if (sec > (uint64_t) INT64_MAX || !gmtime_r(&t, &tm) || tm.tm_year > 9999 - 1900 ||
            strftime(buf, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
                return strcpy(buf, "(out of range)");
        return buf;
}

int wallclock_check_at(uint64_t now_usec, uint64_t build_epoch, char **ret_error) {
        char a[21], b[21];

        if (now_usec / USEC_PER_SEC >= build_epoch)
                return 0;
        if (ret_error && asprintf(ret_error, "the wall clock is not set: it reads %s, before this software was built (%s)",
                                  format_utc(now_usec / USEC_PER_SEC, a), format_utc(build_epoch, b)) < 0)
                return -ENOMEM;
        return -ETIME;
}

int wallclock_check(uint64_t now_usec, char **ret_error) {
        return wallclock_check_at(now_usec, wallclock_build_epoch(), ret_error);
}
