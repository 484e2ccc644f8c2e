/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Whether the wall clock is set. A device without a battery-backed clock
 * starts at 1970 (or at whatever the RTC held) until NTP sets it; every
 * certificate would then look "not yet valid" and every manifest would look
 * fresh. A time before this build was made cannot be right, so it is reported
 * as "the clock is not set" and nothing that depends on the date is decided. */

#include <stdint.h>

/* The build date, seconds since the epoch: SOURCE_DATE_EPOCH or the time of
 * the latest git commit when meson configured the build. */
uint64_t wallclock_build_epoch(void);

/* 0 when now_usec (CLOCK_REALTIME, microseconds) is at or after
 * build_epoch (seconds); else -ETIME and *ret_error (if given) says the clock
 * is not set, with both times in UTC. -ENOMEM. */
int wallclock_check_at(uint64_t now_usec, uint64_t build_epoch, char **ret_error);

/* The same against this build's date. */
int wallclock_check(uint64_t now_usec, char **ret_error);

/* "YYYY-MM-DDTHH:MM:SSZ" of seconds since the epoch into buf (at least 21
 * bytes); "(out of range)" when it does not fit. */
const char *format_utc(uint64_t sec, char buf[static 21]);
