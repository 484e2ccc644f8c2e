/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-audit: verify, read and set up the audit log, offline from its files.
 * Exit status: 0 intact / done, 1 integrity violation, 2 usage or I/O error. */
#include <assert.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit-files.h"
#include "cli-output.h"
#include "confine.h"
#include "log-store.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"

#define EXIT_VIOLATION 1
#define EXIT_USAGE 2

static const char *arg_dir = AUDIT_DEFAULT_STATE_DIR;
static const char *arg_key = NULL;
static const char *arg_key_file = NULL;
static const char *arg_checkpoint = NULL;
static const char *arg_checkpoint_key = NULL;
static const char *arg_witness_key = NULL;
static const char *arg_origin = NULL;
static const char *arg_type = NULL;
static const char *arg_txn = NULL;
static uint64_t arg_since = 0;
static bool arg_json = false;
static bool arg_follow = false;
static bool arg_journal = false;
static bool arg_quiet = false;
static int arg_progress = -1;
static unsigned arg_threads = 0; /* 0: one per online CPU, at most VERIFY_THREADS_DEFAULT_MAX */

#define VERIFY_THREADS_DEFAULT_MAX 8U
#define VERIFY_THREADS_MAX 64U

static void help(void) {
        printf("callhome-audit COMMAND [OPTIONS]\n\n"
               "Verify and read callhome's audit log, offline from its files.\n\n"
               "Commands:\n"
               "  verify      check chain, CRCs, MACs, seals, checkpoints (exit 0 intact, 1 violation)\n"
               "  show        list records (sequence, time, direction, type, transaction, size, summary)\n"
               "  export      every record with its full payload (--json, or --journal-export)\n"
               "  stats       number and bytes of records by type and by day\n"
               "  checkpoint  print the latest signed checkpoint found in the log\n"
               "  setup-keys  create the first sealing key and the checkpoint signing key\n"
               "  acknowledge verify with --key, then print the arguments of Acknowledge for the checkpoint\n"
               "              of --witness-checkpoint (size, root, tag), so retention may remove records 1..size\n\n"
               "Options:\n"
               "  --dir=DIR              state directory (default " AUDIT_DEFAULT_STATE_DIR ")\n"
               "  --key=HEX              verification key printed by setup-keys (checks MACs)\n"
               "  --key-file=FILE        the same, read from a file\n"
               "  --witness-checkpoint=FILE  a checkpoint held elsewhere (e.g. as the server cosigned it):\n"
               "                         the log must extend it (--checkpoint=FILE is the same)\n"
               "  --witness-key=VKEY     the server's witness key (text or file): checks its cosignatures\n"
               "  --checkpoint-key=VKEY  checkpoint verifier key (text or file); default DIR/checkpoint.pub\n"
               "  --since=TIME           show records from TIME (YYYY-MM-DD[ HH:MM[:SS]] local, or @UNIX)\n"
               "  --type=TYPE --txn=ID   show only records of this type / transaction\n"
               "  -o json                one JSON object per line\n"
               "  --follow               keep showing new records\n"
               "  --json                 export as JSON lines (default)\n"
               "  --journal-export       export in systemd's Journal Export Format\n"
               "  --origin=NAME          setup-keys: the checkpoint origin / key name\n"
               "  --threads=N            verify: segments checked on N threads (default: one per CPU, at most 8;\n"
               "                         1: one after the other)\n"
               "  --no-progress          never draw a progress bar\n"
               "  -q, --quiet            verify: print only violations\n");
}

static int parse_since(const char *s, uint64_t *ret) {
        struct tm tm = {};
        const char *end;
        uint64_t v;

        if (s[0] == '@') {
                if (safe_atou64(s + 1, &v) < 0 || v > UINT64_MAX / 1000000U)
                        return -EINVAL;
                *ret = v * 1000000U;
                return 0;
        }
        end = strptime(s, "%Y-%m-%d", &tm);
        if (!end)
                return -EINVAL;
        if (*end) {
                const char *e2 = strptime(end, " %H:%M:%S", &tm);
                if (!e2)
                        e2 = strptime(end, " %H:%M", &tm);
                if (!e2 || *e2)
                        return -EINVAL;
        }
        tm.tm_isdst = -1;
        time_t t = mktime(&tm);
        if (t < 0)
                return -EINVAL;
        *ret = (uint64_t) t * 1000000U;
        return 0;
}

static void format_time(uint64_t usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / 1000000U);
        struct tm tm;

        if (!localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                (void) snprintf(buf, size, "@%" PRIu64, usec / 1000000U);
}

static int open_dir(int *ret) {
        int fd = open(arg_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                log_error_errno(errno, "Cannot open the log directory %s: %m", arg_dir);
                return -EXIT_USAGE;
        }
        *ret = fd;
        return 0;
}

/* --checkpoint-key: verifier key text, or a file holding it; else DIR/checkpoint.pub if present.
 * Key text ("<name>+<key id>+<base64>") may hold '/' (in the name and in base64): whatever parses as
 * key text is taken as such, anything else names a file. */
static int load_vkey(int dir_fd, CheckpointVerifier *v, bool *have) {
        *have = false;
        if (arg_checkpoint_key) {
                _cleanup_free_ char *text = NULL;
                size_t len;
                int r;

                if (checkpoint_vkey_parse(arg_checkpoint_key, strlen(arg_checkpoint_key), v) >= 0) {
                        *have = true;
                        return 0;
                }
                r = read_small_file_at(AT_FDCWD, arg_checkpoint_key, 1024, &text, &len);
                if (r == -ENOENT && !strchr(arg_checkpoint_key, '/'))
                        return log_error("Not a checkpoint verifier key, nor a file: %s", arg_checkpoint_key), -EXIT_USAGE;
                if (r < 0)
                        return log_error_errno(r, "Cannot read %s: %m", arg_checkpoint_key), -EXIT_USAGE;
                if (checkpoint_vkey_parse(text, len, v) < 0)
                        return log_error("Not a checkpoint verifier key: %s", arg_checkpoint_key), -EXIT_USAGE;
                *have = true;
                return 0;
        }
        if (audit_load_vkey(dir_fd, v, NULL) >= 0)
                *have = true;
        return 0;
}

static int load_key(AuditSealKey **ret) {
        _cleanup_free_ char *text = NULL;
        uint8_t k[AUDIT_KEY_SIZE];
        int r;

        *ret = NULL;
        if (arg_key_file) {
                size_t len;
                r = read_small_file_at(AT_FDCWD, arg_key_file, 256, &text, &len);
                if (r < 0)
                        return log_error_errno(r, "Cannot read %s: %m", arg_key_file), -EXIT_USAGE;
                while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
                        text[--len] = '\0';
        } else if (arg_key) {
                text = strdup(arg_key);
                if (!text)
                        return log_oom(), -EXIT_USAGE;
        } else
                return 0;
        r = audit_unhex(text, k, sizeof(k));
        OPENSSL_cleanse(text, strlen(text));
        if (r < 0)
                return log_error("The verification key must be 64 hex digits."), -EXIT_USAGE;
        r = audit_seal_key_new(0, k, ret);
        OPENSSL_cleanse(k, sizeof(k));
        if (r < 0)
                return log_error_errno(r, "Cannot set up the key: %m"), -EXIT_USAGE;
        return 0;
}

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

static int cmd_verify(void) {
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

/* The customer's acknowledgement of a checkpoint the log extends (verified first, with --key). */
static int cmd_acknowledge(void) {
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

typedef struct ShowContext {
        FILE *out;
        uint64_t min_seq;
        uint64_t last_seq;
        bool export_payload;
        bool journal;
        /* stats */
        bool stats;
        json_object *by_type, *by_day, *by_direction;
        uint64_t count, bytes;
} ShowContext;

#define SUMMARY_MAX 60 /* bytes of text shown of a payload */

/* A one-line summary of the payload: its text, escaped, or what it is. */
static void summary(const AuditRecord *rec, char *buf, size_t size) {
        size_t done;

        assert(size > SUMMARY_MAX + 4);
        if (rec->payload_len == 0) {
                (void) snprintf(buf, size, "-");
                return;
        }
        if (!text_printable(rec->payload, rec->payload_len, true)) {
                (void) snprintf(buf, size, "<%zu bytes of binary data>", rec->payload_len);
                return;
        }
        done = cli_escape(rec->payload, rec->payload_len, CLI_ESCAPE_SPACES, buf, SUMMARY_MAX + 1);
        if (done < rec->payload_len)
                strcat(buf, "...");
}

/* A text field in JSON: as it is when it is valid UTF-8; else escaped (\xHH) and, with
 * b64_name, its exact bytes in base64 beside it. */
static void json_add_text(json_object *o, const char *name, const void *data, size_t len, const char *b64_name) {
        if (utf8_valid_strict(data, len)) {
                json_object_object_add(o, name, json_object_new_string_len(data, (int) len));
                return;
        }
        _cleanup_free_ char *e = cli_escape_dup(data, len);
        if (e)
                json_object_object_add(o, name, json_object_new_string(e));
        if (b64_name) {
                _cleanup_free_ char *b64 = malloc(4 * ((len + 2) / 3) + 1);
                if (b64) {
                        (void) EVP_EncodeBlock((unsigned char *) b64, data, (int) len);
                        json_object_object_add(o, b64_name, json_object_new_string(b64));
                }
        }
}

static int meta_to_json(const char *k, size_t kl, const char *v, size_t vl, void *userdata) {
        json_object *o = userdata;
        _cleanup_free_ char *key = NULL;

        key = utf8_valid_strict((const uint8_t *) k, kl) ? strndup(k, kl) : cli_escape_dup((const uint8_t *) k, kl);
        if (!key)
                return -ENOMEM;
        json_add_text(o, key, v, vl, NULL);
        return 0;
}

static json_object *record_json(const AuditRecord *rec, const AuditSegmentInfo *seg, uint64_t off, bool payload) {
        json_object *o = json_object_new_object(), *m = json_object_new_object();
        char hex[2 * AUDIT_HASH_SIZE + 1], t[64], sum[128];

        format_time(rec->realtime_usec, t, sizeof(t));
        json_object_object_add(o, "seq", json_object_new_int64((int64_t) rec->seq));
        json_object_object_add(o, "time", json_object_new_string(t));
        json_object_object_add(o, "realtime_usec", json_object_new_int64((int64_t) rec->realtime_usec));
        json_object_object_add(o, "monotonic_usec", json_object_new_int64((int64_t) rec->monotonic_usec));
        audit_hex(rec->boot_id, AUDIT_BOOT_ID_SIZE, hex);
        json_object_object_add(o, "boot_id", json_object_new_string(hex));
        json_object_object_add(o, "epoch", json_object_new_int64((int64_t) rec->epoch));
        json_object_object_add(o, "kind", json_object_new_string(audit_kind_to_string(rec->kind)));
        json_object_object_add(o, "direction", json_object_new_string(audit_direction_to_string(rec->direction)));
        json_add_text(o, "type", rec->type, rec->type_len, "type_base64");
        json_add_text(o, "txn", rec->txn, rec->txn_len, "txn_base64");
        json_object_object_add(o, "size", json_object_new_int64((int64_t) rec->payload_len));
        (void) audit_meta_foreach(rec->meta, rec->meta_len, meta_to_json, m);
        json_object_object_add(o, "metadata", m);
        audit_hex(rec->hash, AUDIT_HASH_SIZE, hex);
        json_object_object_add(o, "hash", json_object_new_string(hex));
        json_object_object_add(o, "segment", json_object_new_string(seg->name));
        json_object_object_add(o, "offset", json_object_new_int64((int64_t) off));
        json_object_object_add(o, "record_size", json_object_new_int64((int64_t) rec->size));
        if (payload) {
                size_t b64len = 4 * ((rec->payload_len + 2) / 3) + 1;
                char *b64 = malloc(b64len);
                if (b64) {
                        (void) EVP_EncodeBlock((unsigned char *) b64, rec->payload, (int) rec->payload_len);
                        json_object_object_add(o, "payload_base64", json_object_new_string(b64));
                        free(b64);
                }
                if (utf8_valid_strict(rec->payload, rec->payload_len))
                        json_object_object_add(o, "payload",
                                               json_object_new_string_len((const char *) rec->payload, (int) rec->payload_len));
        } else {
                summary(rec, sum, sizeof(sum));
                json_object_object_add(o, "summary", json_object_new_string(sum));
        }
        return o;
}

static void journal_field(FILE *f, const char *name, const void *data, size_t len) {
        /* Journal Export Format: text fields as NAME=value, binary ones length-prefixed. */
        if (text_printable(data, len, false)) {
                fprintf(f, "%s=", name);
                fwrite(data, 1, len, f);
                fputc('\n', f);
        } else {
                uint8_t le[8];
                audit_put_le64(le, len);
                fprintf(f, "%s\n", name);
                fwrite(le, 1, 8, f);
                fwrite(data, 1, len, f);
                fputc('\n', f);
        }
}

static void journal_record(FILE *f, const AuditRecord *rec) {
        char hex[2 * AUDIT_BOOT_ID_SIZE + 1], buf[64];

        fprintf(f, "__REALTIME_TIMESTAMP=%" PRIu64 "\n__MONOTONIC_TIMESTAMP=%" PRIu64 "\n", rec->realtime_usec,
                rec->monotonic_usec);
        audit_hex(rec->boot_id, AUDIT_BOOT_ID_SIZE, hex);
        fprintf(f, "_BOOT_ID=%s\n", hex);
        fprintf(f, "SYSLOG_IDENTIFIER=callhome-audit\n");
        (void) snprintf(buf, sizeof(buf), "%" PRIu64, rec->seq);
        journal_field(f, "AUDIT_SEQ", buf, strlen(buf));
        journal_field(f, "AUDIT_TYPE", rec->type, rec->type_len);
        journal_field(f, "AUDIT_DIRECTION", audit_direction_to_string(rec->direction),
                      strlen(audit_direction_to_string(rec->direction)));
        if (rec->txn_len)
                journal_field(f, "AUDIT_TXN", rec->txn, rec->txn_len);
        journal_field(f, "MESSAGE", rec->payload, rec->payload_len);
        fputc('\n', f);
}

static void stats_add(json_object *table, const char *key, uint64_t bytes) {
        json_object *e, *v;

        if (!json_object_object_get_ex(table, key, &e)) {
                e = json_object_new_object();
                json_object_object_add(e, "records", json_object_new_int64(0));
                json_object_object_add(e, "bytes", json_object_new_int64(0));
                json_object_object_add(table, key, e);
        }
        json_object_object_get_ex(e, "records", &v);
        json_object_set_int64(v, json_object_get_int64(v) + 1);
        json_object_object_get_ex(e, "bytes", &v);
        json_object_set_int64(v, json_object_get_int64(v) + (int64_t) bytes);
}

static int on_show_record(const AuditRecord *rec, const AuditSegmentInfo *seg, uint64_t off, void *userdata) {
        ShowContext *c = userdata;

        if (rec->seq < c->min_seq)
                return 0;
        c->last_seq = rec->seq;
        if (arg_since && rec->realtime_usec < arg_since)
                return 0;
        if (arg_type && (strlen(arg_type) != rec->type_len || memcmp(arg_type, rec->type, rec->type_len) != 0))
                return 0;
        if (arg_txn && (strlen(arg_txn) != rec->txn_len || memcmp(arg_txn, rec->txn, rec->txn_len) != 0))
                return 0;

        if (c->stats) {
                char type[4 * AUDIT_TYPE_MAX + 1], day[32];
                time_t t = (time_t) (rec->realtime_usec / 1000000U);
                struct tm tm;

                (void) cli_escape((const uint8_t *) rec->type, rec->type_len, 0, type, sizeof(type));
                if (!localtime_r(&t, &tm) || strftime(day, sizeof(day), "%Y-%m-%d", &tm) == 0)
                        (void) snprintf(day, sizeof(day), "?");
                stats_add(c->by_type, type, rec->payload_len);
                stats_add(c->by_day, day, rec->payload_len);
                stats_add(c->by_direction, audit_direction_to_string(rec->direction), rec->payload_len);
                c->count++;
                c->bytes += rec->payload_len;
                return 0;
        }
        if (c->journal) {
                journal_record(c->out, rec);
                return 0;
        }
        if (arg_json || c->export_payload) {
                json_object *o = record_json(rec, seg, off, c->export_payload);
                fprintf(c->out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
        } else {
                char t[64], sum[128], type[4 * AUDIT_TYPE_MAX + 1], txn[4 * AUDIT_TXN_MAX + 1];
                format_time(rec->realtime_usec, t, sizeof(t));
                summary(rec, sum, sizeof(sum));
                (void) cli_escape((const uint8_t *) rec->type, rec->type_len, 0, type, sizeof(type));
                (void) cli_escape((const uint8_t *) rec->txn, rec->txn_len, 0, txn, sizeof(txn));
                fprintf(c->out, "%8" PRIu64 "  %s  %-8s  %-24s  %-28s  %8zu  %s\n", rec->seq, t,
                        audit_direction_to_string(rec->direction), type, rec->txn_len ? txn : "-", rec->payload_len, sum);
        }
        return 0;
}

static int scan_for_reading(int dir_fd, ShowContext *c, bool warn) {
        CheckpointVerifier vkey;
        AuditScanOptions o = { .on_record = on_show_record, .userdata = c, .allow_torn_tail = true };
        AuditScanResult res;
        bool have_vkey;
        int r;

        r = load_vkey(dir_fd, &vkey, &have_vkey);
        if (r < 0)
                return r;
        o.vkey = have_vkey ? &vkey : NULL;
        r = audit_log_scan(dir_fd, &o, &res);
        if (r < 0)
                return log_error_errno(r, "Cannot read the log in %s: %m", arg_dir), -EXIT_USAGE;
        fflush(c->out);
        if (res.broken && warn) {
                fprintf(stderr, "WARNING: the log is damaged at seq %" PRIu64 " (file %s, offset %" PRIu64 "): %s; "
                        "records from there on are not shown. Run callhome-audit verify.\n",
                        res.violation.seq, res.violation.file, res.violation.offset, res.violation.what);
                return -EXIT_VIOLATION;
        }
        return 0;
}

/* What a scan would see, cheaply: the segments' names and sizes. --follow scans
 * (and verifies) the log again only when that changed. */
static uint64_t log_fingerprint(int dir_fd) {
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        uint64_t h = 1469598103934665603ULL; /* FNV-1a over (first seq, size) of each segment */
        size_t n = 0;

        if (audit_segments_list(dir_fd, &segs, &n) < 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                uint64_t v[2] = { segs[i].first_seq, segs[i].size };
                const uint8_t *p = (const uint8_t *) v;
                for (size_t j = 0; j < sizeof(v); j++)
                        h = (h ^ p[j]) * 1099511628211ULL;
        }
        return h;
}

static int cmd_show(bool export_payload) {
        _cleanup_close_ int dir_fd = -EBADF;
        ShowContext c = { .out = stdout, .min_seq = 1, .export_payload = export_payload, .journal = arg_journal };
        int r;

        r = open_dir(&dir_fd);
        if (r < 0)
                return -r;
        if (!export_payload && !arg_json && !arg_journal)
                printf("%8s  %-19s  %-8s  %-24s  %-28s  %8s  %s\n", "SEQ", "TIME", "DIR", "TYPE", "TRANSACTION", "SIZE",
                       "SUMMARY");
        uint64_t seen = log_fingerprint(dir_fd);
        r = scan_for_reading(dir_fd, &c, true);
        if (r < 0)
                return -r;
        while (arg_follow) {
                uint64_t now;

                (void) usleep(500000);
                now = log_fingerprint(dir_fd);
                if (now == seen)
                        continue;
                seen = now;
                c.min_seq = c.last_seq + 1;
                r = scan_for_reading(dir_fd, &c, true);
                if (r < 0)
                        return -r;
        }
        return 0;
}

static void print_stats_table(const char *title, json_object *t) {
        printf("%-24s %10s %14s\n", title, "RECORDS", "PAYLOAD BYTES");
        json_object_object_foreach(t, k, v) {
                json_object *n, *b;
                json_object_object_get_ex(v, "records", &n);
                json_object_object_get_ex(v, "bytes", &b);
                printf("%-24s %10" PRId64 " %14" PRId64 "\n", k, json_object_get_int64(n), json_object_get_int64(b));
        }
        printf("\n");
}

static int cmd_stats(void) {
        _cleanup_close_ int dir_fd = -EBADF;
        ShowContext c = { .out = stdout, .min_seq = 1, .stats = true };
        int r;

        r = open_dir(&dir_fd);
        if (r < 0)
                return -r;
        c.by_type = json_object_new_object();
        c.by_day = json_object_new_object();
        c.by_direction = json_object_new_object();
        r = scan_for_reading(dir_fd, &c, true);
        if (arg_json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "records", json_object_new_int64((int64_t) c.count));
                json_object_object_add(o, "bytes", json_object_new_int64((int64_t) c.bytes));
                json_object_object_add(o, "by_type", json_object_get(c.by_type));
                json_object_object_add(o, "by_day", json_object_get(c.by_day));
                json_object_object_add(o, "by_direction", json_object_get(c.by_direction));
                printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
        } else {
                printf("%" PRIu64 " records, %" PRIu64 " payload bytes\n\n", c.count, c.bytes);
                print_stats_table("TYPE", c.by_type);
                print_stats_table("DIRECTION", c.by_direction);
                print_stats_table("DAY", c.by_day);
        }
        json_object_put(c.by_type);
        json_object_put(c.by_day);
        json_object_put(c.by_direction);
        return r < 0 ? -r : 0;
}

typedef struct LatestCheckpoint {
        char *note;
} LatestCheckpoint;

static int on_checkpoint(const AuditRecord *rec, const AuditSegmentInfo *seg, uint64_t off, void *userdata) {
        LatestCheckpoint *l = userdata;

        if (rec->kind != AUDIT_KIND_CHECKPOINT)
                return 0;
        free(l->note);
        l->note = strndup((const char *) rec->payload, rec->payload_len);
        return l->note ? 0 : -ENOMEM;
}

/* Prints the lines of text escaped one by one (a line that is printable text goes out as it is). */
static int print_lines_escaped(const char *text, size_t len) {
        while (len > 0) {
                const char *eol = memchr(text, '\n', len);
                size_t n = eol ? (size_t) (eol - text) : len;
                _cleanup_free_ char *e = cli_escape_dup((const uint8_t *) text, n);

                if (!e)
                        return -ENOMEM;
                printf("%s\n", e);
                if (!eol)
                        break;
                text += n + 1;
                len -= n + 1;
        }
        return 0;
}

/* The note as a witness needs it: its body and only the signature lines that
 * verify under the log's checkpoint key; other lines are anyone's and unsigned. */
static int print_checkpoint_note(const char *note, const CheckpointVerifier *v) {
        const char *sep = strstr(note, "\n\n"), *p;
        size_t body_len, kept = 0;
        int r;

        if (!sep)
                return -EBADMSG;
        body_len = (size_t) (sep - note) + 1;
        r = print_lines_escaped(note, body_len);
        if (r < 0)
                return r;
        printf("\n");
        for (p = sep + 2; *p;) {
                const char *eol = strchrnul(p, '\n');
                size_t line_len = (size_t) (eol - p) + (*eol ? 1 : 0);
                _cleanup_free_ char *one = NULL;
                Checkpoint cp;

                if (asprintf(&one, "%.*s%.*s", (int) body_len + 1, note, (int) line_len, p) < 0)
                        return -ENOMEM;
                if (checkpoint_parse_verify(one, strlen(one), v, &cp) >= 0) {
                        fwrite(p, 1, line_len, stdout);
                        kept++;
                }
                p += line_len;
        }
        return kept > 0 ? 0 : -EPERM;
}

static int cmd_checkpoint(void) {
        _cleanup_close_ int dir_fd = -EBADF;
        LatestCheckpoint l = {};
        CheckpointVerifier vkey;
        AuditScanOptions o = { .on_record = on_checkpoint, .userdata = &l, .allow_torn_tail = true };
        AuditScanResult res;
        bool have_vkey;
        int r;

        r = open_dir(&dir_fd);
        if (r < 0)
                return -r;
        r = load_vkey(dir_fd, &vkey, &have_vkey);
        if (r < 0)
                return -r;
        o.vkey = have_vkey ? &vkey : NULL;
        r = audit_log_scan(dir_fd, &o, &res);
        if (r < 0) {
                free(l.note);
                return log_error_errno(r, "Cannot read the log: %m"), EXIT_USAGE;
        }
        if (!l.note) {
                log_error("The log holds no checkpoint yet.");
                return EXIT_USAGE;
        }
        r = res.have_vkey ? print_checkpoint_note(l.note, &res.vkey) : -EPERM;
        free(l.note);
        if (r < 0) /* the scan checked the note with this key: cannot be */
                return log_error_errno(r, "Cannot print the checkpoint: %m"), EXIT_USAGE;
        return res.broken ? EXIT_VIOLATION : 0;
}

static int write_new_file(int dir_fd, const char *name, const void *data, size_t len, mode_t mode) {
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();
        n = write(fd, data, len);
        if (n != (ssize_t) len)
                return n < 0 ? negative_errno() : -EIO;
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

static int cmd_setup_keys(void) {
        _cleanup_close_ int dir_fd = -EBADF;
        _cleanup_(audit_seal_key_freep) AuditSealKey *key = NULL;
        uint8_t k0[AUDIT_KEY_SIZE], priv[32], pub[32], rnd[8];
        char hex[2 * AUDIT_KEY_SIZE + 1], vkey[CHECKPOINT_NOTE_MAX], origin[CHECKPOINT_NAME_MAX + 1];
        uid_t uid = (uid_t) -1;
        gid_t gid = (gid_t) -1;
        bool new_ckey = false;
        int r;

        if (mkdir(arg_dir, 0750) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot create %s: %m", arg_dir), EXIT_USAGE;
        r = open_dir(&dir_fd);
        if (r < 0)
                return -r;
        if (faccessat(dir_fd, AUDIT_KEY_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return log_error("%s/%s exists: the keys are set up already. A new key would leave the existing log "
                                 "unverifiable; move the directory aside first if you mean to start a new log.",
                                 arg_dir, AUDIT_KEY_FILE),
                       EXIT_USAGE;
        if (geteuid() == 0 && confine_lookup_user(confine_profile_user(CONFINE_PROFILE_AUDITD), &uid, &gid) < 0)
                uid = (uid_t) -1;

        if (RAND_priv_bytes(k0, sizeof(k0)) != 1)
                return log_error("Cannot get random bytes."), EXIT_USAGE;
        r = audit_seal_key_new(0, k0, &key);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the key: %m"), EXIT_USAGE;

        if (faccessat(dir_fd, CHECKPOINT_KEY_FILE, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
                if (arg_origin) {
                        if (!checkpoint_name_valid(arg_origin))
                                return log_error("Invalid origin: %s", arg_origin), EXIT_USAGE;
                        (void) snprintf(origin, sizeof(origin), "%s", arg_origin);
                } else {
                        char h[17];
                        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
                                return log_error("Cannot get random bytes."), EXIT_USAGE;
                        audit_hex(rnd, sizeof(rnd), h);
                        (void) snprintf(origin, sizeof(origin), "callhome.audit/%s", h);
                }
                if (RAND_priv_bytes(priv, sizeof(priv)) != 1 || checkpoint_public_key(priv, pub) < 0 ||
                    checkpoint_vkey_format(origin, pub, vkey, sizeof(vkey)) < 0)
                        return log_error("Cannot create the checkpoint key."), EXIT_USAGE;
                r = write_new_file(dir_fd, CHECKPOINT_KEY_FILE, priv, sizeof(priv), 0600);
                OPENSSL_cleanse(priv, sizeof(priv));
                if (r < 0)
                        return log_error_errno(r, "Cannot write %s/%s: %m", arg_dir, CHECKPOINT_KEY_FILE), EXIT_USAGE;
                {
                        size_t l = strlen(vkey);
                        vkey[l] = '\n';
                        vkey[l + 1] = '\0';
                }
                r = write_new_file(dir_fd, CHECKPOINT_PUB_FILE, vkey, strlen(vkey), 0644);
                if (r < 0)
                        return log_error_errno(r, "Cannot write %s/%s: %m", arg_dir, CHECKPOINT_PUB_FILE), EXIT_USAGE;
                new_ckey = true;
        } else {
                _cleanup_free_ char *text = NULL;
                CheckpointVerifier v;
                if (audit_load_vkey(dir_fd, &v, &text) < 0)
                        return log_error("%s/%s is missing or damaged.", arg_dir, CHECKPOINT_PUB_FILE), EXIT_USAGE;
                (void) snprintf(vkey, sizeof(vkey), "%s\n", text);
        }

        {
                _cleanup_close_ int fd = openat(dir_fd, AUDIT_KEY_FILE, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return log_error_errno(errno, "Cannot create %s/%s: %m", arg_dir, AUDIT_KEY_FILE), EXIT_USAGE;
                r = audit_key_file_write(fd, key);
                if (r < 0)
                        return log_error_errno(r, "Cannot write %s/%s: %m", arg_dir, AUDIT_KEY_FILE), EXIT_USAGE;
                if (uid != (uid_t) -1 && fchown(fd, uid, gid) < 0)
                        return log_error_errno(errno, "Cannot hand %s to the audit user: %m", AUDIT_KEY_FILE), EXIT_USAGE;
        }
        if (uid != (uid_t) -1) {
                if (fchown(dir_fd, uid, gid) < 0 ||
                    (new_ckey && (fchownat(dir_fd, CHECKPOINT_KEY_FILE, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ||
                                  fchownat(dir_fd, CHECKPOINT_PUB_FILE, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)))
                        return log_error_errno(errno, "Cannot hand the keys to the audit user: %m"), EXIT_USAGE;
        }
        if (fsync(dir_fd) < 0)
                return log_error_errno(errno, "Cannot sync %s: %m", arg_dir), EXIT_USAGE;

        audit_hex(k0, sizeof(k0), hex);
        OPENSSL_cleanse(k0, sizeof(k0));
        printf("The sealing key is set up in %s.\n\n"
               "Verification key (shown only this once; keep it somewhere other than this device,\n"
               "and give it to 'callhome-audit verify --key=...'):\n\n    %s\n\n"
               "Checkpoint verifier key (public; give it to whoever witnesses checkpoints):\n\n    %s\n",
               arg_dir, hex, vkey);
        OPENSSL_cleanse(hex, sizeof(hex));
        return 0;
}

int main(int argc, char *argv[]) {
        enum {
                ARG_DIR = 0x100, ARG_KEY, ARG_KEY_FILE, ARG_CHECKPOINT, ARG_CHECKPOINT_KEY, ARG_SINCE, ARG_TYPE,
                ARG_TXN, ARG_FOLLOW, ARG_JSON, ARG_JOURNAL, ARG_ORIGIN, ARG_NO_PROGRESS, ARG_PROGRESS,
                ARG_THREADS, ARG_WITNESS_KEY,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "dir", required_argument, NULL, ARG_DIR },
                { "key", required_argument, NULL, ARG_KEY },
                { "key-file", required_argument, NULL, ARG_KEY_FILE },
                { "checkpoint", required_argument, NULL, ARG_CHECKPOINT },
                { "witness-checkpoint", required_argument, NULL, ARG_CHECKPOINT },
                { "witness-key", required_argument, NULL, ARG_WITNESS_KEY },
                { "checkpoint-key", required_argument, NULL, ARG_CHECKPOINT_KEY },
                { "since", required_argument, NULL, ARG_SINCE },
                { "type", required_argument, NULL, ARG_TYPE },
                { "txn", required_argument, NULL, ARG_TXN },
                { "follow", no_argument, NULL, ARG_FOLLOW },
                { "json", no_argument, NULL, ARG_JSON },
                { "journal-export", no_argument, NULL, ARG_JOURNAL },
                { "origin", required_argument, NULL, ARG_ORIGIN },
                { "no-progress", no_argument, NULL, ARG_NO_PROGRESS },
                { "progress", no_argument, NULL, ARG_PROGRESS },
                { "threads", required_argument, NULL, ARG_THREADS },
                { "output", required_argument, NULL, 'o' },
                { "quiet", no_argument, NULL, 'q' },
                {}
        };
        const char *cmd;
        int c, r;

        log_setup("callhome-audit");
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                help();
                return argc < 2 ? EXIT_USAGE : 0;
        }
        cmd = argv[1];
        argv++;
        argc--;
        while ((c = getopt_long(argc, argv, "ho:q", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_DIR:
                        arg_dir = optarg;
                        break;
                case ARG_KEY:
                        arg_key = optarg;
                        break;
                case ARG_KEY_FILE:
                        arg_key_file = optarg;
                        break;
                case ARG_CHECKPOINT:
                        arg_checkpoint = optarg;
                        break;
                case ARG_CHECKPOINT_KEY:
                        arg_checkpoint_key = optarg;
                        break;
                case ARG_WITNESS_KEY:
                        arg_witness_key = optarg;
                        break;
                case ARG_SINCE:
                        r = parse_since(optarg, &arg_since);
                        if (r < 0)
                                return log_error("Cannot parse --since=%s (YYYY-MM-DD[ HH:MM[:SS]] or @SECONDS).", optarg),
                                       EXIT_USAGE;
                        break;
                case ARG_TYPE:
                        arg_type = optarg;
                        break;
                case ARG_TXN:
                        arg_txn = optarg;
                        break;
                case ARG_FOLLOW:
                        arg_follow = true;
                        break;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case ARG_JOURNAL:
                        arg_journal = true;
                        break;
                case ARG_ORIGIN:
                        arg_origin = optarg;
                        break;
                case ARG_NO_PROGRESS:
                        arg_progress = 0;
                        break;
                case ARG_PROGRESS:
                        arg_progress = 1;
                        break;
                case ARG_THREADS: {
                        unsigned t;
                        if (safe_atou(optarg, &t) < 0 || t < 1 || t > VERIFY_THREADS_MAX)
                                return log_error("--threads= takes a number from 1 to %u: %s", VERIFY_THREADS_MAX, optarg),
                                       EXIT_USAGE;
                        arg_threads = t;
                        break;
                }
                case 'o':
                        if (streq(optarg, "json"))
                                arg_json = true;
                        else if (!streq(optarg, "table"))
                                return log_error("Unknown output format %s (table, json).", optarg), EXIT_USAGE;
                        break;
                case 'q':
                        arg_quiet = true;
                        break;
                default:
                        return EXIT_USAGE;
                }
        }
        if (optind < argc)
                return log_error("Unexpected argument: %s", argv[optind]), EXIT_USAGE;
        if (arg_key && arg_key_file)
                return log_error("Give --key or --key-file, not both."), EXIT_USAGE;

        if (streq(cmd, "verify"))
                return cmd_verify();
        if (streq(cmd, "show"))
                return cmd_show(false);
        if (streq(cmd, "export")) {
                arg_follow = false;
                return cmd_show(!arg_journal);
        }
        if (streq(cmd, "stats"))
                return cmd_stats();
        if (streq(cmd, "checkpoint"))
                return cmd_checkpoint();
        if (streq(cmd, "setup-keys"))
                return cmd_setup_keys();
        if (streq(cmd, "acknowledge"))
                return cmd_acknowledge();
        log_error("Unknown command %s; see callhome-audit --help.", cmd);
        return EXIT_USAGE;
}
