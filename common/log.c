/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *log_ident = NULL;
static int log_max_level = LOG_INFO;
static int log_journal_prefix = -1;

void log_setup(const char *ident) {
        const char *e;

        log_ident = ident;
        log_journal_prefix = !!secure_getenv("JOURNAL_STREAM");
        e = secure_getenv("CALLHOME_LOG_LEVEL");
        if (e) {
                int l = log_level_from_string(e);
                if (l >= 0)
                        log_max_level = l;
        }
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

int log_level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
                [LOG_ERR] = "err",         [LOG_WARNING] = "warning",
                [LOG_NOTICE] = "notice",   [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

int log_set_max_level_from_arg(const char *s) {
        int l = log_level_from_string(s);

        if (l < 0)
                return log_error_errno(EINVAL, "Unknown log level %s.", s);
        log_set_max_level(l);
        return 0;
}

int log_internal(int level, int error, const char *file, int line, const char *format, ...) {
        int saved_errno = errno;
        char buf[2048];
        va_list ap;

        if (error < 0)
                error = -error;

        if ((level & LOG_PRIMASK) <= log_max_level) {
                if (log_journal_prefix < 0)
                        log_journal_prefix = !!secure_getenv("JOURNAL_STREAM");

                /* Let "%m" expand to the error we were handed, not whatever errno is. */
                errno = error;
                va_start(ap, format);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                (void) vsnprintf(buf, sizeof(buf), format, ap);
#pragma GCC diagnostic pop
                va_end(ap);

                if (log_journal_prefix > 0)
                        fprintf(stderr, "<%i>%s\n", level & LOG_PRIMASK, buf);
                else if (log_max_level >= LOG_DEBUG)
                        fprintf(stderr, "%s: %s (%s:%i)\n", log_ident ?: program_invocation_short_name, buf, file, line);
                else
                        fprintf(stderr, "%s: %s\n", log_ident ?: program_invocation_short_name, buf);
        }

        errno = saved_errno;
        return -error;
}
