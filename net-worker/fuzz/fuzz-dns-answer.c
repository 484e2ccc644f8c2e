/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the DNS stub's reply parser. The first byte picks the
 * type asked (A or AAAA) for the name "commserver.test"; the rest is what the
 * network sent. */
#include <stdint.h>
#include <stdlib.h>

#include "nw-resolve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t q[DNS_NAME_MAX + 6];
        uint16_t type;
        size_t qlen;
        char *a = NULL;
        uint32_t ttl;

        if (size < 1)
                return 0;
        type = data[0] & 1 ? DNS_TYPE_AAAA : DNS_TYPE_A;
        qlen = nw_dns_question(q, "commserver.test", type);
        if (nw_dns_parse_answer(data + 1, size - 1, q, qlen, type, &a, &ttl) >= 0)
                free(a);
        return 0;
}
