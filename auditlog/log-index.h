/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Inside the log library: the per-segment index files that log-writer.c keeps
 * (format in log-store.h; the daemon's start-up uses the public
 * audit_index_note() and audit_log_tail_check()). */

#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "log-store.h"
#include "macro.h"

typedef struct AuditIndexHeader {
        uint64_t first_seq;
        uint64_t synced_through; /* the last record of the segment known durable */
        uint64_t next_segment;   /* first seq of the segment started after it, 0 while last */
} AuditIndexHeader;

int audit_index_header_write(int fd, const AuditIndexHeader *h);
/* Opens the index of the segment starting at first_seq; with create, creates it
 * (with a header saying nothing is synced yet) and opens it for writing. */
int audit_index_open(int dir_fd, uint64_t first_seq, bool create, int *ret_fd);
int audit_index_entry_update(int fd, uint64_t first_seq, uint64_t seq, const uint8_t hash[AUDIT_HASH_SIZE],
                             uint64_t offset);
int audit_index_entry_read(int fd, uint64_t first_seq, uint64_t seq, uint8_t ret_hash[AUDIT_HASH_SIZE],
                           uint64_t *ret_offset);
/* Removes the index files whose segment is gone. */
int audit_index_prune(int dir_fd);

static inline int audit_pwrite_all(int fd, const void *buf, size_t size, uint64_t offset) {
        const uint8_t *p = buf;

        while (size > 0) {
                ssize_t n = pwrite(fd, p, size, (off_t) offset);
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EIO;
                p += n;
                size -= (size_t) n;
                offset += (uint64_t) n;
        }
        return 0;
}

