/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdint.h>

#include "macro.h"

/* Messages to the service manager (the sd_notify() protocol) on one socket,
 * opened by notify_open() before the lock-down and reused: sd_notify() makes
 * a new socket for every message, which a daemon that may no longer call
 * socket()/connect() cannot do. Without NOTIFY_SOCKET (not under systemd)
 * every call does nothing and returns 0. */

/* Connect to $NOTIFY_SOCKET. 1 when connected, 0 when there is none, or a
 * negative errno. Called again, it returns what it did the first time. */
int notify_open(void);
/* Close it; later messages are dropped, never sent on a new socket. */
void notify_close(void);
/* The address it was opened for ("" if none), for error messages. */
const char *notify_socket_path(void);

int notify_ready(void);
int notify_stopping(void);
int notify_status(const char *format, ...) _printf_(1, 2);
int notify_watchdog(void);
/* Watchdog interval the service manager expects, 0 when none: ping at half of it. */
uint64_t notify_watchdog_usec(void);
