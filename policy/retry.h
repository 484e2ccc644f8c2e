/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* When policyd tries again: the TR-069 (CWMP, section 3.2.1.1) retry window
 * after consecutive failures, a server's RetryAfter, and the jitter of the
 * regular check-in. Pure functions: the clock is a parameter and randomness
 * comes from a source the caller gives, so tests are deterministic. */

#include <stdint.h>

#include "policy.h"

#define USEC_PER_SEC ((uint64_t) 1000000)
#define RETRY_FAILURES_CAP 10U                          /* n counts no further */
#define RETRY_WAIT_MAX_USEC ((uint64_t) POLICY_INTERVAL_MAX * USEC_PER_SEC)   /* no wait is longer */

/* 64 uniformly random bits per call. */
typedef uint64_t (*RandomSource)(void *userdata);

/* The kernel's random source (getrandom()); userdata unused. */
uint64_t random_source_kernel(void *userdata);

/* A uniform draw from [lo, hi] (inclusive; lo > hi gives lo), unbiased. */
uint64_t random_uniform(RandomSource rnd, void *userdata, uint64_t lo, uint64_t hi);

/* The window after the n-th consecutive failure (n >= 1, capped at
 * RETRY_FAILURES_CAP): [m·(k/1000)^(n−1), m·(k/1000)^n] seconds, in
 * microseconds, each end at most RETRY_WAIT_MAX_USEC. m in seconds, k per
 * mille (2000 doubles); n = 0 (no failure) is an empty window at 0. */
void retry_window(uint32_t m, uint32_t k, unsigned n, uint64_t *ret_lo_usec, uint64_t *ret_hi_usec);

/* When to try again after the n-th consecutive failure at now_usec: a random
 * time in the window, or the server's RetryAfter when that is later
 * (retry_after_usec: the delay it asked for, 0 = none), the wait clamped to
 * RETRY_WAIT_MAX_USEC. Returns the absolute time (same clock as now_usec). */
uint64_t retry_next(const Policy *p, unsigned n, uint64_t now_usec, uint64_t retry_after_usec,
                    RandomSource rnd, void *userdata);

/* The next regular check-in: a random time between CheckInMin and CheckInMax
 * seconds after now_usec, so that devices do not call in together. */
uint64_t checkin_next(const Policy *p, uint64_t now_usec, RandomSource rnd, void *userdata);
