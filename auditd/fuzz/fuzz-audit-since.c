/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the time of `callhome-audit show --since=TIME`, in a time
 * zone with daylight saving time. An accepted "@SECONDS" is those seconds; an
 * accepted date (and time) is that very local time: it prints back the same. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit-cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool initialized = false;
        char s[64], back[64];
        struct tm tm;
        uint64_t usec;
        time_t t;

        if (!initialized) {
                (void) setenv("TZ", "Europe/Berlin", 1);
                tzset();
                initialized = true;
        }
        if (size >= sizeof(s) || memchr(data, '\0', size))
                return 0; /* a command-line argument: a string, and no longer than this to be a time */
        memcpy(s, data, size);
        s[size] = '\0';

        if (parse_since(s, &usec) < 0)
                return 0;
        assert(usec % 1000000U == 0);
        if (s[0] == '@')
                return 0;
        t = (time_t) (usec / 1000000U);
        assert(localtime_r(&t, &tm));
        assert(strftime(back, sizeof(back), "%Y-%m-%d %H:%M:%S", &tm) > 0);
        /* the same local time, written the canonical way: compare field by field */
        {
                int y, mo, d, h = 0, mi = 0, sec = 0;
                int n = sscanf(s, "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &sec);

                assert(n >= 3);
                if (!(tm.tm_year + 1900 == y && tm.tm_mon + 1 == mo && tm.tm_mday == d && tm.tm_hour == h &&
                      tm.tm_min == mi && tm.tm_sec == sec)) {
                        fprintf(stderr, "\"%s\" was taken as %s\n", s, back);
                        abort();
                }
        }
        return 0;
}
