/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdint.h>

#include "macro.h"

/* sd_notify() helpers. Without NOTIFY_SOCKET (not under systemd) they do nothing. */
int notify_ready(void);
int notify_stopping(void);
int notify_status(const char *format, ...) _printf_(1, 2);
int notify_watchdog(void);
/* Watchdog interval the service manager expects, 0 when none: ping at half of it. */
uint64_t notify_watchdog_usec(void);
