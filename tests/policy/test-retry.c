/* SPDX-License-Identifier: Apache-2.0 */
/* The TR-069 retry window over n = 1..12 with a deterministic random source:
 * the draw is always inside [m·(k/1000)^(n−1), m·(k/1000)^n], n stops growing
 * at 10, the extreme m and k saturate at the cap, a later RetryAfter wins and
 * is clamped, and the check-in jitter stays within CheckInMin..Max. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>

#include "retry.h"

static int failures;

static void expect(bool ok, const char *what) {
        printf("%s - %s\n", ok ? "ok" : "FAIL", what);
        if (!ok)
                failures++;
}

/* Returns the values it was given, in turn. */
typedef struct Script {
        const uint64_t *v;
        size_t n, i;
} Script;

static uint64_t scripted(void *userdata) {
        Script *s = userdata;
        assert(s->i < s->n);
        return s->v[s->i++];
}

static uint64_t constant(void *userdata) {
        return *(uint64_t *) userdata;
}

#define S(x) ((uint64_t) (x) * USEC_PER_SEC)

int main(void) {
        _cleanup_(policy_freep) Policy *p = NULL;
        uint64_t lo, hi, top, zero = 0, ones = UINT64_MAX, now = S(1000000);
        char what[128];

        assert(policy_new_default(&p) >= 0);
        assert(p->retry_minimum_wait == 5 && p->retry_interval_multiplier == 2000);

        /* The TR-069 table for m = 5, k = 2000: 5-10, 10-20, ... 2560-5120, then no longer growing. */
        for (unsigned n = 1; n <= 12; n++) {
                unsigned e = MIN(n, 10U);
                uint64_t want_lo = S(5ULL << (e - 1)), want_hi = S(5ULL << e), t;

                retry_window(5, 2000, n, &lo, &hi);
                snprintf(what, sizeof(what), "n=%u: window [%" PRIu64 ", %" PRIu64 "] s", n, lo / USEC_PER_SEC,
                         hi / USEC_PER_SEC);
                expect(lo == want_lo && hi == want_hi, what);
                t = retry_next(p, n, now, 0, constant, &zero);
                expect(t == now + want_lo, "the smallest draw is the window's start");
                top = want_hi - want_lo;
                t = retry_next(p, n, now, 0, constant, &top);
                expect(t == now + want_hi, "the largest draw is the window's end");
        }
        retry_window(5, 2000, 0, &lo, &hi);
        expect(lo == 0 && hi == 0, "no failure: no wait");

        /* A draw lands in the window at exactly the value it maps to. */
        {
                uint64_t v[] = { 3 };
                Script s = { v, 1, 0 };
                expect(retry_next(p, 1, now, 0, scripted, &s) == now + S(5) + 3, "a draw of 3 is 3 µs into the window");
        }
        /* Rejection sampling: a value in the top partial block is drawn again. */
        {
                uint64_t span = S(5) + 1, v[] = { UINT64_MAX - UINT64_MAX % span, 7 };
                Script s = { v, 2, 0 };
                expect(random_uniform(scripted, &s, 0, S(5)) == 7 && s.i == 2, "a biased draw is redrawn");
        }
        expect(random_uniform(constant, &ones, 9, 9) == 9, "a one-value range");
        top = 1;
        expect(random_uniform(constant, &top, 10, 11) == 11, "a two-value range");
        expect(random_uniform(constant, &ones, 0, UINT64_MAX) == UINT64_MAX, "the whole 64-bit range");

        /* k = 1000: a constant m. */
        retry_window(7, 1000, 10, &lo, &hi);
        expect(lo == S(7) && hi == S(7), "k = 1000 waits m every time");
        /* k = 1500 with m = 1: 1.5^n in integer microseconds. */
        retry_window(1, 1500, 3, &lo, &hi);
        expect(lo == 2250000 && hi == 3375000, "k = 1500: [2.25, 3.375] s at n = 3");
        /* The largest policy values saturate at the cap, never overflow. */
        retry_window(65535, 65535, 12, &lo, &hi);
        expect(lo == RETRY_WAIT_MAX_USEC && hi == RETRY_WAIT_MAX_USEC, "m = k = 65535 saturate at the cap");
        retry_window(65535, 65535, 1, &lo, &hi);
        expect(lo == S(65535) && hi == RETRY_WAIT_MAX_USEC, "n = 1 starts at m even when its end saturates");

        /* RetryAfter: the later of the two, clamped. */
        expect(retry_next(p, 1, now, S(3600), constant, &zero) == now + S(3600), "a later RetryAfter wins");
        expect(retry_next(p, 3, now, S(1), constant, &zero) == now + S(20), "an earlier RetryAfter does not");
        expect(retry_next(p, 1, now, UINT64_MAX, constant, &zero) == now + RETRY_WAIT_MAX_USEC,
               "a huge RetryAfter is clamped");
        expect(retry_next(p, 1, UINT64_MAX - 1, 0, constant, &zero) == UINT64_MAX, "the end of time does not wrap");

        /* Check-in jitter between CheckInMin and CheckInMax. */
        expect(checkin_next(p, now, constant, &zero) == now + S(p->check_in_min), "jitter's smallest draw is CheckInMin");
        top = S(p->check_in_max - p->check_in_min);
        expect(checkin_next(p, now, constant, &top) == now + S(p->check_in_max), "its largest is CheckInMax");
        p->check_in_min = p->check_in_max = 600;
        expect(checkin_next(p, now, constant, &ones) == now + S(600), "min = max: no jitter");

        /* The kernel source is usable and not constant. */
        expect(random_source_kernel(NULL) != random_source_kernel(NULL), "getrandom gives different values");

        printf("%s\n", failures ? "FAILED" : "all passed");
        return failures ? 1 : 0;
}
