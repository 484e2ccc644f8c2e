/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <sys/random.h>

#include "retry.h"

uint64_t random_source_kernel(void *userdata) {
        uint64_t v;

        (void) userdata;
        /* getrandom() of 8 bytes from an initialised pool never fails short
         * nor blocks; before the pool is ready it blocks, which is what a
         * random jitter wants. */
        while (getrandom(&v, sizeof(v), 0) != (ssize_t) sizeof(v))
                ;
        return v;
}

uint64_t random_uniform(RandomSource rnd, void *userdata, uint64_t lo, uint64_t hi) {
        uint64_t span, limit, v;

        assert(rnd);
        if (hi <= lo)
                return lo;
        span = hi - lo;
        if (span == UINT64_MAX)
                return rnd(userdata);
        span++;
        /* Reject the top partial block so every value is equally likely. */
        limit = UINT64_MAX - UINT64_MAX % span;
        do
                v = rnd(userdata);
        while (v >= limit);
        return lo + v % span;
}

/* m·(k/1000)^e seconds in microseconds, saturating at the cap. */
static uint64_t scaled(uint32_t m, uint32_t k, unsigned e) {
        uint64_t v = (uint64_t) m * USEC_PER_SEC;

        for (unsigned i = 0; i < e && v < RETRY_WAIT_MAX_USEC; i++)
                v = v * k / 1000;       /* v < 2^42, k < 2^16: no overflow */
        return MIN(v, RETRY_WAIT_MAX_USEC);
}

void retry_window(uint32_t m, uint32_t k, unsigned n, uint64_t *ret_lo_usec, uint64_t *ret_hi_usec) {
        assert(ret_lo_usec && ret_hi_usec);
        if (n == 0) {
                *ret_lo_usec = *ret_hi_usec = 0;
                return;
        }
        n = MIN(n, RETRY_FAILURES_CAP);
        *ret_lo_usec = scaled(m, k, n - 1);
        *ret_hi_usec = scaled(m, k, n);
}

uint64_t retry_next(const Policy *p, unsigned n, uint64_t now_usec, uint64_t retry_after_usec,
                    RandomSource rnd, void *userdata) {
        uint64_t lo, hi, wait;

        assert(p);
        retry_window(p->retry_minimum_wait, p->retry_interval_multiplier, n, &lo, &hi);
        wait = random_uniform(rnd, userdata, lo, hi);
        wait = MIN(MAX(wait, retry_after_usec), RETRY_WAIT_MAX_USEC);
        return now_usec > UINT64_MAX - wait ? UINT64_MAX : now_usec + wait;
}

uint64_t checkin_next(const Policy *p, uint64_t now_usec, RandomSource rnd, void *userdata) {
        uint64_t wait;

        assert(p);
        wait = random_uniform(rnd, userdata, (uint64_t) p->check_in_min * USEC_PER_SEC,
                              (uint64_t) p->check_in_max * USEC_PER_SEC);
        return now_usec > UINT64_MAX - wait ? UINT64_MAX : now_usec + wait;
}
