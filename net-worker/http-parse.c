/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "http-parse.h"
#include "macro.h"

/* An HTTP-date is 29 bytes (IMF-fixdate), RFC 850's and asctime's forms a few
 * more; anything much longer is no date. */
#define RETRY_AFTER_DATE_MAX 64

static bool is_ows(char c) {
        return c == ' ' || c == '\t';
}

uint32_t nw_http_retry_after(const char *value, size_t n, time_t now, uint32_t max) {
        char date[RETRY_AFTER_DATE_MAX + 1];
        uint64_t seconds = 0;
        size_t i = 0;

        assert(value || n == 0);

        while (n > 0 && (is_ows(value[n - 1]) || value[n - 1] == '\r' || value[n - 1] == '\n'))
                n--;
        while (i < n && is_ows(value[i]))
                i++;
        if (i == n || max == 0)
                return 0;

        if (value[i] >= '0' && value[i] <= '9') {
                for (; i < n; i++) {
                        if (value[i] < '0' || value[i] > '9')
                                return 0;
                        seconds = MIN(seconds * 10 + (uint64_t) (value[i] - '0'), (uint64_t) UINT32_MAX);
                }
        } else {
                time_t t;

                if (n - i > RETRY_AFTER_DATE_MAX || memchr(value + i, '\0', n - i))
                        return 0;
                memcpy(date, value + i, n - i);
                date[n - i] = '\0';
                t = curl_getdate(date, NULL);
                if (t == -1 || t <= now)
                        return 0;
                seconds = MIN((uint64_t) t - (uint64_t) now, (uint64_t) UINT32_MAX);
        }
        return (uint32_t) MIN(seconds, (uint64_t) max);
}

bool nw_http_header_line(NwHttpHeaders *h, const NwLimits *limits, const char *line, size_t n, time_t now) {
        static const char name[] = "Retry-After:";

        assert(h);
        assert(limits);
        assert(line || n == 0);

        if (n >= 5 && !memcmp(line, "HTTP/", 5))
                *h = (NwHttpHeaders) {};
        else
                h->count++;
        if (n > limits->max_header_line || h->count > limits->max_headers) {
                h->too_large = true;
                return false;
        }
        if (n >= strlen(name) && !strncasecmp(line, name, strlen(name)))
                h->retry_after = nw_http_retry_after(line + strlen(name), n - strlen(name), now,
                                                     limits->max_retry_after);
        return true;
}

bool nw_http_is_xml(const char *content_type) {
        return content_type && !strncasecmp(content_type, "text/xml", 8) &&
               (content_type[8] == '\0' || content_type[8] == ';');
}
