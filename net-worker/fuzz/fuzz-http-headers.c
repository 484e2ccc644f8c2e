/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: our rules on a server's HTTP response headers (the
 * callback libcurl calls for each header line): the line and count bounds,
 * Retry-After in both forms and its clamp, the content type. The input is
 * what the network sent, cut into lines after each '\n' as libcurl does; the
 * clock is fixed, so a finding replays. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http-parse.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW ((time_t) 1796083200) /* 2026-12-01 00:00:00 UTC */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *p = (const char *) data, *end = p + size;
        NwLimits limits = NW_LIMITS_DEFAULT;
        NwHttpHeaders h = {};
        bool all_digits = size > 0;
        uint64_t v = 0;
        uint32_t s;

        /* small bounds, so that the fuzzer reaches them */
        limits.max_headers = 8;
        limits.max_header_line = 256;
        limits.max_retry_after = 3600;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl + 1 - p) : (size_t) (end - p);
                char type[64];
                bool ok = nw_http_header_line(&h, &limits, p, n, NOW);

                assert(ok == !h.too_large);
                if (!ok) {
                        assert(n > limits.max_header_line || h.count > limits.max_headers);
                        break; /* libcurl aborts the transfer */
                }
                assert(h.count <= limits.max_headers && h.retry_after <= limits.max_retry_after);
                /* libcurl hands over the Content-Type value without the name, the OWS and the CRLF */
                if (n > 13 && n - 13 < sizeof(type) && !strncasecmp(p, "Content-Type:", 13)) {
                        size_t i = 13, e = n;
                        while (i < e && p[i] == ' ')
                                i++;
                        while (e > i && (p[e - 1] == '\r' || p[e - 1] == '\n' || p[e - 1] == ' '))
                                e--;
                        memcpy(type, p + i, e - i);
                        type[e - i] = '\0';
                        if (nw_http_is_xml(type))
                                assert(strncasecmp(type, "text/xml", 8) == 0);
                }
                p += n;
        }

        /* The whole input as a Retry-After value: delay-seconds saturate and clamp. */
        s = nw_http_retry_after((const char *) data, size, NOW, 600);
        assert(s <= 600);
        for (size_t i = 0; i < size; i++) {
                if (data[i] < '0' || data[i] > '9') {
                        all_digits = false;
                        break;
                }
                v = MIN(v * 10 + (data[i] - '0'), (uint64_t) UINT32_MAX);
        }
        if (all_digits)
                assert(s == MIN(v, 600U));
        return 0;
}
