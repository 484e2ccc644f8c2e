/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "notify.h"

int notify_ready(void) {
        return sd_notify(0, "READY=1");
}

int notify_stopping(void) {
        return sd_notify(0, "STOPPING=1");
}

int notify_status(const char *format, ...) {
        char buf[512];
        va_list ap;

        va_start(ap, format);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        (void) vsnprintf(buf, sizeof(buf), format, ap);
#pragma GCC diagnostic pop
        va_end(ap);
        return sd_notifyf(0, "STATUS=%s", buf);
}

int notify_watchdog(void) {
        return sd_notify(0, "WATCHDOG=1");
}

uint64_t notify_watchdog_usec(void) {
        uint64_t usec = 0;

        if (sd_watchdog_enabled(0, &usec) <= 0)
                return 0;
        return usec;
}
