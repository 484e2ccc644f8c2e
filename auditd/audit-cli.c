/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-audit: verify, read and set up the audit log, offline from its files.
 * Exit status: 0 intact / done, 1 integrity violation, 2 usage or I/O error. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit-cli.h"
#include "audit-files.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"

const char *arg_dir = AUDIT_DEFAULT_STATE_DIR;
const char *arg_key = NULL;
const char *arg_key_file = NULL;
const char *arg_checkpoint = NULL;
const char *arg_checkpoint_key = NULL;
const char *arg_witness_key = NULL;
const char *arg_origin = NULL;
const char *arg_type = NULL;
const char *arg_txn = NULL;
uint64_t arg_since = 0;
bool arg_json = false;
bool arg_follow = false;
bool arg_journal = false;
bool arg_quiet = false;
int arg_progress = -1;
unsigned arg_threads = 0; /* 0: one per online CPU, at most VERIFY_THREADS_DEFAULT_MAX */

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

void format_time(uint64_t usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / 1000000U);
        struct tm tm;

        if (!localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                (void) snprintf(buf, size, "@%" PRIu64, usec / 1000000U);
}

int open_dir(int *ret) {
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
int load_vkey(int dir_fd, CheckpointVerifier *v, bool *have) {
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

int load_key(AuditSealKey **ret) {
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
