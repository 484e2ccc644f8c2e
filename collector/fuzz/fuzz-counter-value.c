/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the collector's value parsers and the high-water state
 * file parser: whatever the bytes, no crash, no leak, and what is accepted
 * obeys the documented rules (checked here, so a wrong parser fails). */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter-value.h"
#include "highwater.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t stripped(const char *buf, size_t len) {
        return len > 0 && buf[len - 1] == '\n' ? len - 1 : len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data, *reason = NULL;
        char token[COUNTER_TOKEN_MAX + 1], out[32];
        uint64_t u;
        uint32_t idx;
        LevelValue lv;
        char *s;

        if (size > 65536)
                return 0;

        if (counter_parse_u64(buf, size, &u, &reason) >= 0) {
                /* Accepted means: canonical decimal, so it prints back to the same bytes. */
                int n = snprintf(out, sizeof(out), "%" PRIu64, u);
                assert(n > 0 && (size_t) n == stripped(buf, size) && memcmp(out, buf, (size_t) n) == 0);
        } else
                assert(reason && *reason);

        reason = NULL;
        if (counter_parse_level(buf, size, false, &lv, &reason) >= 0) {
                assert(lv.state >= 0 && lv.state < _LEVEL_STATE_MAX);
                assert(lv.state == LEVEL_VALUE ? lv.value >= 0 : lv.value == 0);
        } else
                assert(reason && *reason);
        if (counter_parse_level(buf, size, true, &lv, &reason) >= 0)
                assert(lv.state != LEVEL_SOME_REMAINING);

        if (counter_parse_index(buf, size, &idx, &reason) >= 0) {
                /* An index is a directory name: accepted only in its one canonical spelling, nothing stripped. */
                int n = snprintf(out, sizeof(out), "%" PRIu32, idx);
                assert(idx >= 1 && idx <= INT32_MAX);
                assert(n > 0 && (size_t) n == size && memcmp(out, buf, size) == 0);
        }

        if (counter_parse_text(buf, size, COUNTER_TEXT_MAX, &s, &reason) >= 0) {
                size_t n = strlen(s);
                assert(n >= 1 && n <= COUNTER_TEXT_MAX);
                for (size_t i = 0; i < n; i++)
                        assert(s[i] >= 0x20 && s[i] <= 0x7e);
                free(s);
        }
        if (counter_parse_serial(buf, size, &s, &reason) >= 0) {
                assert(strlen(s) >= 1 && strlen(s) <= COUNTER_SERIAL_MAX);
                free(s);
        }
        if (counter_parse_token(buf, size, token, &reason) >= 0)
                assert(strlen(token) >= 1 && strlen(token) <= COUNTER_TOKEN_MAX);

        /* The state file parser: accepted input renders back to the same bytes. */
        HighWater *h = NULL;
        if (highwater_new(-EBADF, &h) >= 0) {
                if (highwater_parse(buf, size, h) >= 0) {
                        char *f = NULL;
                        size_t flen = 0;
                        /* Format 1 is read, but written as format 2. */
                        bool v1 = size >= 31 && memcmp(buf, "callhome-collector-highwater 1\n", 31) == 0;
                        if (!v1 && highwater_format(h, &f, &flen) >= 0) {
                                assert(flen == size && memcmp(f, buf, size) == 0);
                                free(f);
                        }
                }
                highwater_free(h);
        }
        return 0;
}
