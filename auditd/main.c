/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-auditd: owns the audit log and serves org.callhome.Audit1. */
#include <getopt.h>

#include "audit-files.h"
#include "auditd-bus.h"
#include "auditd-manager.h"
#include "confine.h"
#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "parse-util.h"

static void help(void) {
        printf("callhome-auditd [OPTIONS]\n\n"
               "The append-only, hash-chained, sealed audit log of callhome, on org.callhome.Audit1.\n\n"
               "  --state-dir=DIR            log directory (default " AUDIT_DEFAULT_STATE_DIR ")\n"
               "  --segment-size=BYTES       start a new segment file beyond this (default 8M)\n"
               "  --retention-size=BYTES     remove the oldest segments beyond this total (default 256M, 0 keeps all)\n"
               "  --epoch-length=TIME        seal an epoch and move the key on this often (default 15min)\n"
               "  --checkpoint-interval=TIME write a signed checkpoint this often (default 1h)\n"
               "  --group-commit-max=N       at most N appends wait for one fdatasync (default 64)\n"
               "  --outbox-max=N             at most N outbound transactions await delivery (default 100000)\n"
               "  --witness-key=VKEY|FILE    the Communication Server's witness key: cosigned checkpoints it checks\n");
}

static int parse_count(const char *option, const char *s, unsigned max, unsigned *ret) {
        if (safe_atou(s, ret) < 0 || *ret == 0 || *ret > max)
                return log_error("%s must be 1..%u: %s", option, max, s), -EINVAL;
        return 0;
}

static int parse_argv(Manager *m, int argc, char *argv[]) {
        enum { ARG_STATE_DIR = 0x100, ARG_SEGMENT_SIZE, ARG_RETENTION_SIZE, ARG_EPOCH, ARG_CHECKPOINT, ARG_GROUP, ARG_OUTBOX, ARG_WITNESS_KEY };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "segment-size", required_argument, NULL, ARG_SEGMENT_SIZE },
                { "retention-size", required_argument, NULL, ARG_RETENTION_SIZE },
                { "epoch-length", required_argument, NULL, ARG_EPOCH },
                { "checkpoint-interval", required_argument, NULL, ARG_CHECKPOINT },
                { "group-commit-max", required_argument, NULL, ARG_GROUP },
                { "outbox-max", required_argument, NULL, ARG_OUTBOX },
                { "witness-key", required_argument, NULL, ARG_WITNESS_KEY },
                {}
        };
        const char *dir = AUDIT_DEFAULT_STATE_DIR;
        unsigned u;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_STATE_DIR:
                        if (optarg[0] != '/')
                                return log_error("--state-dir= must be an absolute path: %s", optarg), -EINVAL;
                        dir = optarg;
                        break;
                case ARG_SEGMENT_SIZE:
                        r = parse_size(optarg, &m->segment_size);
                        if (r < 0 || m->segment_size < 4096 || m->segment_size > (1ULL << 30))
                                return log_error("--segment-size must be 4K..1G: %s", optarg), -EINVAL;
                        break;
                case ARG_RETENTION_SIZE:
                        r = parse_size(optarg, &m->retention_size);
                        if (r < 0)
                                return log_error("Cannot parse --retention-size=%s", optarg), -EINVAL;
                        break;
                case ARG_EPOCH:
                        r = parse_duration_usec(optarg, &m->epoch_usec);
                        if (r < 0 || m->epoch_usec < 100000)
                                return log_error("--epoch-length must be at least 100ms: %s", optarg), -EINVAL;
                        break;
                case ARG_CHECKPOINT:
                        r = parse_duration_usec(optarg, &m->checkpoint_usec);
                        if (r < 0 || m->checkpoint_usec < 100000)
                                return log_error("--checkpoint-interval must be at least 100ms: %s", optarg), -EINVAL;
                        break;
                case ARG_GROUP:
                        r = parse_count("--group-commit-max", optarg, 4096, &u);
                        if (r < 0)
                                return r;
                        m->group_commit_max = u;
                        break;
                case ARG_OUTBOX:
                        r = parse_count("--outbox-max", optarg, 1000000, &u);
                        if (r < 0)
                                return r;
                        m->outbox_max = u;
                        break;
                case ARG_WITNESS_KEY:
                        r = audit_load_witness_key(optarg, &m->witness_key);
                        if (r < 0)
                                return log_error_errno(r, "--witness-key=%s is not a witness verifier key "
                                                          "(name+keyid+base64(0x04||key)), nor a file holding one: %m", optarg),
                                       -EINVAL;
                        m->have_witness_key = true;
                        break;
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc)
                return log_error("Unexpected argument: %s", argv[optind]), -EINVAL;
        m->state_dir = strdup(dir);
        return m->state_dir ? 1 : -ENOMEM;
}

static int auditd_open(Daemon *d, void *userdata) {
        /* As the audit user: the index and the first segment are its own from the start. */
        return manager_open_log(userdata);
}

static int auditd_setup(Daemon *d, void *userdata) {
        Manager *m = userdata;

        m->event = sd_event_ref(daemon_event(d));
        m->bus = sd_bus_ref(daemon_bus(d));
        return manager_start(m);
}

static void auditd_ready(Daemon *d, void *userdata) {
        Manager *m = userdata;

        (void) notify_status("%s", m->broken ? "Log damaged: appends refused" : "Serving the audit log");
}

static void auditd_stop(Daemon *d, void *userdata) {
        /* Anything still waiting is made durable and answered before we go. */
        (void) manager_flush(userdata);
}

static const DaemonOps auditd_ops = {
        .open = auditd_open,
        .setup = auditd_setup,
        .ready = auditd_ready,
        .stop = auditd_stop,
};

int main(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        log_setup("callhome-auditd");
        r = manager_new(&m);
        if (r < 0)
                return log_oom(), 1;
        r = parse_argv(m, argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        /* Who may call, looked up while /etc is still at hand. */
        r = confine_lookup_user(confine_profile_user(CONFINE_PROFILE_POLICYD), &m->policy_uid, NULL);
        if (r < 0)
                log_warning_errno(r, "No user %s: only root may append, ignoring.", confine_profile_user(CONFINE_PROFILE_POLICYD));
        r = confine_lookup_group("callhome-admin", &m->admin_gid);
        if (r < 0)
                log_warning_errno(r, "No group callhome-admin: only root and policyd may read, ignoring.");

        return daemon_run(&(const DaemonConfig) {
                .profile = CONFINE_PROFILE_AUDITD,
                .state_dir = m->state_dir,
                .bus_name = AUDIT_BUS_NAME,
                .seccomp_mode = seccomp_mode_from_env(),
                .ops = &auditd_ops,
                .userdata = m,
        });
}
