/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the strict manifest parser on any bytes. What it accepts
 * has every field within its syntax, and versions compare consistently. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "software.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *error = NULL;
        Manifest m;

        if (manifest_parse(data, size, &m, &error) < 0) {
                assert(error);
                return 0;
        }
        assert(size <= MANIFEST_MAX);
        assert(version_valid(m.version));
        assert(version_compare(m.version, m.version) == 0);
        assert(strlen(m.sha256) == 64 && m.size < 10000000000000000ULL);
        assert(strlen(m.package) >= 1 && strlen(m.model) >= 1 && strlen(m.expires) == 20);
        return 0;
}
