/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "notify.h"

static int notify_fd = -EBADF;
static int notify_opened = 0; /* 0: not tried; else what notify_open() returned, plus one */

const char *notify_socket_path(void) {
        return secure_getenv("NOTIFY_SOCKET") ?: "";
}

int notify_open(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path = notify_socket_path();
        size_t n = strlen(path);
        int fd, r;

        if (notify_opened)
                return notify_opened - 1;
        if (n == 0)
                r = 0;
        else if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path))
                r = -EAFNOSUPPORT; /* vsock and other families: not for a printer's daemons */
        else {
                memcpy(sa.sun_path, path, n);
                if (sa.sun_path[0] == '@') /* abstract namespace */
                        sa.sun_path[0] = '\0';
                fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        r = negative_errno();
                else if (connect(fd, (const struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
                        r = negative_errno();
                        safe_close(fd);
                } else {
                        notify_fd = fd;
                        r = 1;
                }
        }
        notify_opened = r + 1;
        return r;
}

void notify_close(void) {
        notify_fd = safe_close(notify_fd);
        notify_opened = 1; /* closed for good: never opened again behind a lock-down */
}

static int notify_send(const char *msg) {
        int r = notify_open();

        if (r <= 0)
                return r;
        if (send(notify_fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                return negative_errno();
        return 1;
}

int notify_ready(void) {
        return notify_send("READY=1");
}

int notify_stopping(void) {
        return notify_send("STOPPING=1");
}

int notify_status(const char *format, ...) {
        char buf[512];
        va_list ap;

        memcpy(buf, "STATUS=", 7);
        va_start(ap, format);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        (void) vsnprintf(buf + 7, sizeof(buf) - 7, format, ap);
#pragma GCC diagnostic pop
        va_end(ap);
        return notify_send(buf);
}

int notify_watchdog(void) {
        return notify_send("WATCHDOG=1");
}

uint64_t notify_watchdog_usec(void) {
        uint64_t usec = 0;

        if (sd_watchdog_enabled(0, &usec) <= 0)
                return 0;
        return usec;
}
