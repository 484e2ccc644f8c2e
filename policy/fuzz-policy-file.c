/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the policy file parser (well-formedness, the schema, the
 * values) on any bytes; what it accepts must format and parse back the same. */
#include <assert.h>
#include <stdint.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(policy_freep) Policy *p = NULL, *q = NULL;
        _cleanup_free_ char *error = NULL, *a = NULL, *b = NULL;
        size_t la, lb;

        if (policy_parse((const char *) data, size, "fuzz.xml", &p, &error) < 0)
                return 0;
        assert(policy_format(p, &a, &la) >= 0);
        assert(policy_parse(a, la, "formatted.xml", &q, NULL) >= 0);
        assert(policy_format(q, &b, &lb) >= 0);
        assert(la == lb && memcmp(a, b, la) == 0);
        return 0;
}
