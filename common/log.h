/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "macro.h"

/* Logging to stderr. Under systemd (JOURNAL_STREAM set) each line carries a
 * "<N>" syslog priority prefix that journald understands; otherwise plain
 * "name: message" lines. Daemon and CLI code log; library code does not. */

void log_setup(const char *ident);
void log_set_max_level(int level);
int log_get_max_level(void);
int log_level_from_string(const char *s);
/* --log-level=LEVEL of a daemon or CLI: sets the level, or logs why not and returns -EINVAL. */
int log_set_max_level_from_arg(const char *s);

/* Returns -abs(error) (or 0 if error is 0), so callers can `return log_error_errno(r, ...)`.
 * "%m" in format expands to strerror(error). */
int log_internal(int level, int error, const char *file, int line, const char *format, ...) _printf_(5, 6);

#define log_full_errno(level, error, ...) \
        log_internal((level), (error), __FILE__, __LINE__, __VA_ARGS__)
#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, (e), __VA_ARGS__)
#define log_notice_errno(e, ...) log_full_errno(LOG_NOTICE, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, (e), __VA_ARGS__)

#define log_oom() log_full_errno(LOG_ERR, ENOMEM, "Out of memory.")
