/* SPDX-License-Identifier: Apache-2.0 */
/* For tests of callhome-policyd only: an LD_PRELOAD library that sets the wall
 * clock the daemon sees, as a printer without a battery-backed clock has it at
 * boot. While the file named by CALLHOME_TEST_CLOCK_FILE holds a number of
 * seconds, CLOCK_REALTIME reads that many seconds since the epoch (plus the
 * time since the library was loaded); without the file, the real clock. The
 * test "sets the time" by removing the file. Only what stdio's fopen/fscanf
 * and clock_gettime need, which the daemon's seccomp allowlist has. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long real_clock_gettime(clockid_t clock, struct timespec *ts) {
        return syscall(SYS_clock_gettime, clock, ts);
}

static time_t loaded;   /* CLOCK_MONOTONIC seconds when the library was loaded */

__attribute__((constructor)) static void shim_init(void) {
        struct timespec mono;

        if (real_clock_gettime(CLOCK_MONOTONIC, &mono) == 0)
                loaded = mono.tv_sec;
}

/* The seconds the file holds, or -1 without a (valid) file. */
static long long forced_seconds(void) {
        const char *path = secure_getenv("CALLHOME_TEST_CLOCK_FILE");
        long long v = -1;
        FILE *f;

        if (!path || !(f = fopen(path, "re")))
                return -1;
        if (fscanf(f, "%lld", &v) != 1 || v < 0)
                v = -1;
        fclose(f);
        return v;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
        struct timespec mono;
        long long forced;

        if (real_clock_gettime(clock, ts) < 0)
                return -1;
        if (clock != CLOCK_REALTIME && clock != CLOCK_REALTIME_COARSE)
                return 0;
        forced = forced_seconds();
        if (forced < 0 || real_clock_gettime(CLOCK_MONOTONIC, &mono) < 0)
                return 0;
        /* Moves on as time passes, from wherever the file puts it. */
        ts->tv_sec = (time_t) forced + (mono.tv_sec - loaded);
        ts->tv_nsec = mono.tv_nsec;
        return 0;
}
