/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "macro.h"
#include "parse-util.h"
#include "payload.h"
#include "txnid.h"

int txn_epoch_next(int state_fd, uint64_t audit_seq, uint64_t *ret_epoch) {
        _cleanup_free_ char *buf = NULL;
        uint64_t stored = 0, epoch;
        char text[32];
        size_t len;
        int r, lost = 0;

        r = read_small_file_at(state_fd, TXN_EPOCH_FILE, 64, &buf, &len);
        if (r < 0 || parse_u64_buf(buf, len, &stored) < 0 || stored == UINT64_MAX) {
                if (r < 0 && !IN_SET3(r, -ENOENT, -EBADFD, -EFBIG) && r != -ENODATA)
                        return r;       /* an I/O error: do not guess */
                stored = 0;
                lost = 1;
        }
        epoch = MAX(audit_seq, stored + 1);
        len = (size_t) snprintf(text, sizeof(text), "%" PRIu64 "\n", epoch);
        r = write_file_atomic_at(state_fd, TXN_EPOCH_FILE, text, len, 0600);
        if (r < 0)
                return r;
        *ret_epoch = epoch;
        return lost;
}

int txn_id_format(const char *serial, uint64_t epoch, uint64_t counter, char **ret) {
        char *id;

        if (!serial || !payload_device_id_valid(serial) || epoch == 0 || counter == 0)
                return -EINVAL;
        if (asprintf(&id, "%s-%" PRIu64 ".%" PRIu64, serial, epoch, counter) < 0)
                return -ENOMEM;
        if (strlen(id) > TXN_ID_MAX) {
                free(id);
                return -EINVAL;
        }
        *ret = id;
        return 0;
}

/* A decimal number >= 1 without leading zeros, of n bytes at s. */
static int parse_number(const char *s, size_t n, uint64_t *ret) {
        char buf[21];

        if (n == 0 || n >= sizeof(buf) || s[0] == '0')
                return -EINVAL;
        memcpy(buf, s, n);
        buf[n] = 0;
        return safe_atou64(buf, ret);
}

int txn_id_parse(const char *id, char **ret_serial, uint64_t *ret_epoch, uint64_t *ret_counter) {
        _cleanup_free_ char *serial = NULL;
        const char *dash, *dot;
        uint64_t epoch, counter;

        if (!id || strlen(id) > TXN_ID_MAX || !(dash = strrchr(id, '-')))
                return -EINVAL;
        serial = strndup(id, (size_t) (dash - id));
        if (!serial)
                return -ENOMEM;
        if (!payload_device_id_valid(serial))
                return -EINVAL;
        dot = strchr(dash + 1, '.');
        if (!dot || parse_number(dash + 1, (size_t) (dot - dash - 1), &epoch) < 0 ||
            parse_number(dot + 1, strlen(dot + 1), &counter) < 0)
                return -EINVAL;
        if (ret_serial)
                *ret_serial = TAKE_PTR(serial);
        *ret_epoch = epoch;
        *ret_counter = counter;
        return 0;
}
