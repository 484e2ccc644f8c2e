/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>

#include "audit-cli.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

/* The customer's acknowledgement of a checkpoint the log extends (verified first, with --key). */
int cmd_acknowledge(void) {
        _cleanup_(audit_seal_key_freep) AuditSealKey *key = NULL;
        _cleanup_free_ char *note = NULL;
        uint8_t k0[AUDIT_KEY_SIZE], ack_key[CHECKPOINT_ACK_SIZE], tag[CHECKPOINT_ACK_SIZE];
        CheckpointVerifier vkey;
        Checkpoint cp;
        size_t len;
        int r;

        if (!arg_checkpoint || (!arg_key && !arg_key_file))
                return log_error("acknowledge needs --key (or --key-file) and --witness-checkpoint=FILE, a checkpoint of "
                                 "this log (callhome-audit checkpoint prints the latest)."),
                       EXIT_USAGE;
        arg_quiet = true;
        r = cmd_verify();
        if (r != 0)
                return r;
        r = load_key(&key);
        if (r < 0)
                return -r;
        {
                _cleanup_close_ int dir_fd = -EBADF;
                bool have_vkey;

                r = open_dir(&dir_fd);
                if (r < 0)
                        return -r;
                r = load_vkey(dir_fd, &vkey, &have_vkey);
                if (r < 0)
                        return -r;
        }
        r = read_small_file_at(AT_FDCWD, arg_checkpoint, CHECKPOINT_NOTE_MAX, &note, &len);
        if (r < 0 || checkpoint_parse_verify(note, len, &vkey, &cp) < 0)
                return log_error("Cannot read the checkpoint %s.", arg_checkpoint), EXIT_USAGE;
        audit_seal_key_raw(key, k0);
        r = checkpoint_ack_key(k0, ack_key);
        OPENSSL_cleanse(k0, sizeof(k0));
        if (r >= 0)
                r = checkpoint_ack_tag(ack_key, &cp, tag);
        OPENSSL_cleanse(ack_key, sizeof(ack_key));
        if (r < 0)
                return log_error_errno(r, "Cannot make the acknowledgement: %m"), EXIT_USAGE;
        /* Ready for busctl: Acknowledge(t size, ay root, ay tag). */
        printf("%" PRIu64 " %u", cp.size, AUDIT_HASH_SIZE);
        for (size_t i = 0; i < AUDIT_HASH_SIZE; i++)
                printf(" %u", cp.root[i]);
        printf(" %u", CHECKPOINT_ACK_SIZE);
        for (size_t i = 0; i < CHECKPOINT_ACK_SIZE; i++)
                printf(" %u", tag[i]);
        printf("\n");
        return 0;
}
