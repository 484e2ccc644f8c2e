/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Our rules on the server's HTTP response, on top of libcurl's parsing of the
 * protocol: the bounds on header lines, Retry-After (delay-seconds or an
 * HTTP-date, clamped) and the content type of a reply. No I/O and no clock of
 * its own, so that the unit tests and the fuzz target drive exactly what the
 * client runs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "nw-config.h"

/* What the header lines of the response under way have said. */
typedef struct NwHttpHeaders {
        unsigned count;       /* header lines of the current response (after its status line) */
        bool too_large;       /* a line longer than max_header_line, or more than max_headers lines */
        uint32_t retry_after; /* seconds, from the current response's last Retry-After; 0: none (or "now") */
} NwHttpHeaders;

/* One line as libcurl hands it to CURLOPT_HEADERFUNCTION (any bytes, CRLF
 * included, not NUL-terminated). A status line ("HTTP/…") starts a new
 * response: a proxy's CONNECT reply comes before the server's. now is the
 * wall clock an HTTP-date is measured from. false: over a bound (h->too_large
 * set), the transfer must be aborted. */
bool nw_http_header_line(NwHttpHeaders *h, const NwLimits *limits, const char *line, size_t n, time_t now);

/* A Retry-After value (the bytes after the colon, n of them): seconds in
 * [1, max], or 0 when it asks for no delay, names a time not after now, or
 * is neither delay-seconds (1*DIGIT, saturating) nor a date libcurl reads. */
uint32_t nw_http_retry_after(const char *value, size_t n, time_t now, uint32_t max);

/* Content-Type is text/xml, with or without parameters. */
bool nw_http_is_xml(const char *content_type);
