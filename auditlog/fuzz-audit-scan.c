/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the whole verifying scan (log-scan.c) over one segment
 * file: chain, MACs, epochs, seal counts, the JSON of the log's own records
 * (start, seal, checkpoint, recovery, retention, delivery, witness), checkpoint
 * signatures with the key the start record names, the torn-tail rule.
 * Input: 32 bytes of epoch-0 sealing key, then a segment file as on disk. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "log-store.h"
#include "macro.h"
#include "seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/fuzz-audit-scan-XXXXXX";
static int dir_fd = -EBADF;
static char seg_name[AUDIT_FILE_NAME_MAX];

static void remove_dir(void) {
        if (seg_name[0])
                (void) unlinkat(dir_fd, seg_name, 0);
        (void) rmdir(dir);
}

static void scan(const uint8_t key[AUDIT_KEY_SIZE], bool torn_ok) {
        _cleanup_(audit_seal_key_freep) AuditSealKey *k = NULL;
        AuditScanOptions o = { .allow_torn_tail = torn_ok, .n_threads = 1 };
        AuditScanResult res;
        uint8_t ack_key[CHECKPOINT_ACK_SIZE];

        if (audit_seal_key_new(0, key, &k) < 0 || checkpoint_ack_key(key, ack_key) < 0)
                abort();
        o.key = k;
        o.ack_key = ack_key; /* the customer's acknowledgements in witness records are checked too */
        (void) audit_log_scan(dir_fd, &o, &res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        AuditSegmentHeader h;

        if (size < AUDIT_KEY_SIZE || size > (1U << 20))
                return 0;
        if (dir_fd < 0) {
                if (!mkdtemp(dir))
                        abort();
                dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dir_fd < 0)
                        abort();
                (void) atexit(remove_dir);
        }
        if (seg_name[0])
                (void) unlinkat(dir_fd, seg_name, 0);
        /* Named after the first sequence number its header claims, as the writer names it. */
        audit_segment_name(audit_segment_header_parse(data + AUDIT_KEY_SIZE, size - AUDIT_KEY_SIZE, &h, NULL) ==
                                           AUDIT_PARSE_OK && h.first_seq > 0
                                   ? h.first_seq
                                   : 1,
                           seg_name);
        fd = openat(dir_fd, seg_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write_full(fd, data + AUDIT_KEY_SIZE, size - AUDIT_KEY_SIZE) < 0)
                abort();
        scan(data, false);
        scan(data, true);
        return 0;
}
