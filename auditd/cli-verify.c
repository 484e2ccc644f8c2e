/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-audit verify: every check the log allows, and what the result proves. */
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <unistd.h>

#include "audit-cli.h"
#include "audit-files.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

static void progress(uint64_t done, uint64_t total, void *userdata) {
        static int last = -1;
        int pct = total ? (int) (done * 100 / total) : 100;

        if (pct == last)
                return;
        last = pct;
        fprintf(stderr, "\rVerifying: [%-40.*s] %3d%% (%" PRIu64 " of %" PRIu64 " MiB)", pct * 40 / 100,
                "########################################", pct, done >> 20, total >> 20);
        if (done >= total)
                fputs("\r\033[K", stderr);
}

static const char *witness_by(const AuditWitnessInfo *w) {
        return w->by == AUDIT_WITNESS_SERVER ? "the server's cosignature" : "the customer's acknowledgement";
}

/* Where the protected part of the log ends: what is sealed, what a witness saw, and what neither covers. */
static void print_protection(const AuditScanResult *res, bool have_key) {
        const AuditWitnessInfo *w = &res->last_witness;
        uint64_t last = res->next_seq - 1;
        char t[64];

        if (res->last_seal_seq > 0) {
                format_time(res->last_seal_usec, t, sizeof(t));
                printf("Sealed: records up to seq %" PRIu64 " (epoch %" PRIu64 " ended %s)%s.\n", res->last_seal_seq,
                       res->epoch - 1, t, have_key ? "" : "; give --key to check the seals' MACs");
        } else
                printf("Sealed: nothing yet; every record can still be rewritten with the key on the device.\n");
        if (w->by == AUDIT_WITNESS_NONE) {
                printf("Witnessed: nothing; no outside witness has vouched for any record of this log.\n");
                printf("WARNING: none of the %" PRIu64 " record(s) is covered by a witness: whoever holds this device's "
                       "keys can cut the log back to a seal or replace it unseen.\n", res->n_records);
                return;
        }
        format_time(w->cosigned ? w->cosigned * 1000000U : w->usec, t, sizeof(t));
        printf("Witnessed: records 1..%" PRIu64 ", by %s (witness record seq %" PRIu64 ", %s %s)%s.\n", w->size,
               witness_by(w), w->seq, w->cosigned ? "cosigned" : "recorded", t,
               w->checked                       ? ", checked"
               : w->by == AUDIT_WITNESS_SERVER ? ", NOT checked: give --witness-key"
                                                : ", NOT checked: give --key");
        if (last > w->size)
                printf("WARNING: records %" PRIu64 "..%" PRIu64 " come after what a witness saw: whoever holds this "
                       "device's keys can remove them unseen%s.\n",
                       w->size + 1, last, res->last_seal_seq > w->size ? " (the seals stop rewriting, not cutting)" : "");
}

int cmd_verify(void) {
        _cleanup_close_ int dir_fd = -EBADF;
        _cleanup_(audit_seal_key_freep) AuditSealKey *key = NULL;
        CheckpointVerifier vkey, witness_key;
        Checkpoint witness;
        AuditScanResult res;
        AuditScanOptions o = {};
        uint8_t ack_key[CHECKPOINT_ACK_SIZE];
        bool have_vkey, have_witness = false;
        int r;

        r = open_dir(&dir_fd);
        if (r < 0)
                return -r;
        r = load_key(&key);
        if (r < 0)
                return -r;
        r = load_vkey(dir_fd, &vkey, &have_vkey);
        if (r < 0)
                return -r;
        if (arg_witness_key && audit_load_witness_key(arg_witness_key, &witness_key) < 0)
                return log_error("Not a witness verifier key (name+keyid+base64(0x04||key)), nor a file holding one: %s",
                                 arg_witness_key),
                       EXIT_USAGE;
        if (arg_checkpoint) {
                _cleanup_free_ char *note = NULL;
                size_t len;

                r = read_small_file_at(AT_FDCWD, arg_checkpoint, CHECKPOINT_NOTE_MAX, &note, &len);
                if (r < 0)
                        return log_error_errno(r, "Cannot read checkpoint %s: %m", arg_checkpoint), EXIT_USAGE;
                if (!have_vkey)
                        return log_error("No checkpoint key to check %s with: give --checkpoint-key.", arg_checkpoint),
                               EXIT_USAGE;
                r = checkpoint_parse_verify(note, len, &vkey, &witness);
                if (r == -EPERM) {
                        printf("FAIL: checkpoint %s: signature is not valid for key %s\n", arg_checkpoint, vkey.name);
                        return EXIT_VIOLATION;
                }
                if (r < 0)
                        return log_error("%s is not a checkpoint.", arg_checkpoint), EXIT_USAGE;
                if (arg_witness_key && checkpoint_cosignature_verify(note, len, &witness_key, NULL) < 0) {
                        printf("FAIL: checkpoint %s carries no valid cosignature by the witness %s\n", arg_checkpoint,
                               witness_key.name);
                        return EXIT_VIOLATION;
                }
                have_witness = true;
        }
        if (key) {
                /* The acknowledgement key comes from K_0, before the scan moves the key on. */
                uint8_t k0[AUDIT_KEY_SIZE];

                audit_seal_key_raw(key, k0);
                r = checkpoint_ack_key(k0, ack_key);
                OPENSSL_cleanse(k0, sizeof(k0));
                if (r < 0)
                        return log_error_errno(r, "Cannot derive the acknowledgement key: %m"), EXIT_USAGE;
                o.ack_key = ack_key;
        }

        o.key = key;
        o.vkey = have_vkey ? &vkey : NULL;
        o.witness_key = arg_witness_key ? &witness_key : NULL;
        o.n_threads = arg_threads;
        if (o.n_threads == 0) {
                long cpus = sysconf(_SC_NPROCESSORS_ONLN);
                o.n_threads = cpus < 1 ? 1U : (unsigned) MIN((unsigned long) cpus, (unsigned long) VERIFY_THREADS_DEFAULT_MAX);
        }
        o.witness = have_witness ? &witness : NULL;
        if (arg_progress != 0 && isatty(STDERR_FILENO)) {
                /* Only worth a bar for a large log. */
                _cleanup_free_ AuditSegmentInfo *segs = NULL;
                size_t n = 0;
                uint64_t total = 0;
                if (audit_segments_list(dir_fd, &segs, &n) >= 0)
                        for (size_t i = 0; i < n; i++)
                                total += segs[i].size;
                if (total >= (64U << 20) || arg_progress > 0)
                        o.on_progress = progress;
        }
        r = audit_log_scan(dir_fd, &o, &res);
        OPENSSL_cleanse(ack_key, sizeof(ack_key));
        if (r < 0)
                return log_error_errno(r, "Cannot read the log in %s: %m", arg_dir), EXIT_USAGE;
        if (res.broken) {
                printf("FAIL: integrity violation at record seq %" PRIu64 " (file %s, offset %" PRIu64 "): %s\n",
                       res.violation.seq, res.violation.file, res.violation.offset, res.violation.what);
                return EXIT_VIOLATION;
        }
        /* A start moved by retention is proven only by evidence checked with a key the device does not
         * hold; a trust anchor given that cannot check it is a failure, never "not comparable". */
        if (res.first_seq > 1 && (key || arg_witness_key) && !res.retention_evidence.checked) {
                printf("FAIL: the log starts at seq %" PRIu64 "; records 1..%" PRIu64 " were removed on the strength of "
                       "%s (witness record seq %" PRIu64 "), which the keys given cannot check: give %s\n",
                       res.first_seq, res.first_seq - 1, witness_by(&res.retention_evidence), res.retention_evidence.seq,
                       res.retention_evidence.by == AUDIT_WITNESS_SERVER ? "--witness-key" : "--key");
                return EXIT_VIOLATION;
        }
        if (arg_quiet)
                return 0;
        if (res.n_records == 0)
                printf("OK: the log is empty.\n");
        else
                printf("OK: %" PRIu64 " records (seq %" PRIu64 "..%" PRIu64 ") in %" PRIu64 " segment(s), %" PRIu64
                       " seal(s), %" PRIu64 " checkpoint(s), %" PRIu64 " recovery record(s).\n",
                       res.n_records, res.first_seq, res.next_seq - 1, res.n_segments, res.n_seals, res.n_checkpoints,
                       res.n_recoveries);
        if (res.first_seq > 1)
                printf("Records 1..%" PRIu64 " were removed by the retention cap; a retention record accounts for them, "
                       "resting on %s of records 1..%" PRIu64 " (witness record seq %" PRIu64 ", %s).\n",
                       res.first_seq - 1, witness_by(&res.retention_evidence), res.retention_evidence.size,
                       res.retention_evidence.seq, res.retention_evidence.checked ? "checked" : "NOT checked");
        if (res.retention_leftover > 0)
                printf("%zu segment(s) before seq %" PRIu64 " are left over from a removal the retention record "
                       "ordered and a crash interrupted; callhome-auditd removes them when it starts.\n",
                       res.retention_leftover, res.retention_first_kept);
        if (key)
                printf("MACs: %s with the verification key.\n", res.macs_checked ? "all checked" : "checked where the key reaches");
        else
                printf("MACs: NOT checked (no --key): the chain alone does not stop someone who rewrites the whole log.\n");
        if (res.unsealed > 0)
                printf("Unsealed: %" PRIu64 " record(s) at the tail after %s are not sealed yet.\n", res.unsealed,
                       res.last_seal_seq ? "the last seal" : "the start");
        else
                printf("Unsealed: none; the last record is a seal.\n");
        print_protection(&res, key);
        if (have_witness)
                printf("Checkpoint %s (size %" PRIu64 "): the log extends it%s.\n", arg_checkpoint, witness.size,
                       res.witness_checked ? ""
                                           : ", as a later checkpoint the witness cosigned vouches (its records were removed)");
        return 0;
}
