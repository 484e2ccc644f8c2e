/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-policyd: the customer's policy, enforced in one place, on
 * org.callhome.Policy1. See callhome-policyd(8) and callhome-policy.xml(5). */
#include <fcntl.h>
#include <getopt.h>

#include "config.h"
#include "confine.h"
#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "parse-util.h"
#include "policyd.h"
#include "retry.h"

static void help(void) {
        printf("Usage: callhome-policyd [OPTIONS]\n\n"
               "The customer's policy for callhome, on org.callhome.Policy1.\n\n"
               "  --state-dir=DIR         the policy file and the daemon's state (default " POLICY_DEFAULT_STATE_DIR ")\n"
               "  --staging-dir=DIR       where software is downloaded (default: none, no software is fetched)\n"
               "  --drop-dir=DIR          where verified software is installed, on the staging dir's file system\n"
               "  --code-signing-anchor=FILE  the pinned code-signing anchor, PEM\n"
               "  --model=MODEL           this device's model, as software manifests name it\n"
               "  --rauc                  install verified bundles with RAUC (de.pengutronix.rauc InstallBundle)\n"
               "  --consent-timeout=SEC   how long a consent request waits for an answer (default 604800)\n"
               "  --log-level=LEVEL       debug, info, notice, warning, err\n"
               "  --help, --version\n");
}

static int parse_argv(Manager *m, int argc, char *argv[]) {
        enum { ARG_STATE_DIR = 0x100, ARG_LOG_LEVEL, ARG_VERSION, ARG_STAGING_DIR, ARG_DROP_DIR, ARG_ANCHOR,
               ARG_MODEL, ARG_CONSENT_TIMEOUT, ARG_RAUC };
        static const struct option options[] = {
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "staging-dir", required_argument, NULL, ARG_STAGING_DIR },
                { "drop-dir", required_argument, NULL, ARG_DROP_DIR },
                { "code-signing-anchor", required_argument, NULL, ARG_ANCHOR },
                { "model", required_argument, NULL, ARG_MODEL },
                { "rauc", no_argument, NULL, ARG_RAUC },
                { "consent-timeout", required_argument, NULL, ARG_CONSENT_TIMEOUT },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        const char *dir = POLICY_DEFAULT_STATE_DIR;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        puts("callhome-policyd " CALLHOME_VERSION);
                        return 0;
                case ARG_STATE_DIR:
                        if (optarg[0] != '/')
                                return log_error_errno(EINVAL, "--state-dir= must be an absolute path.");
                        dir = optarg;
                        break;
                case ARG_STAGING_DIR:
                case ARG_DROP_DIR:
                case ARG_ANCHOR: {
                        char **dest = c == ARG_STAGING_DIR ? &m->staging_dir : c == ARG_DROP_DIR ? &m->drop_dir
                                                                                                 : &m->code_signing_anchor;
                        if (optarg[0] != '/')
                                return log_error_errno(EINVAL, "%s must be an absolute path.", argv[optind - 1]);
                        free(*dest);
                        *dest = strdup(optarg);
                        if (!*dest)
                                return log_oom();
                        break;
                }
                case ARG_MODEL:
                        free(m->model);
                        m->model = strdup(optarg);
                        if (!m->model)
                                return log_oom();
                        break;
                case ARG_RAUC:
                        m->rauc = true;
                        break;
                case ARG_CONSENT_TIMEOUT: {
                        uint64_t sec;

                        r = safe_atou64(optarg, &sec);
                        if (r < 0 || sec < 1 || sec > POLICY_INTERVAL_MAX)
                                return log_error_errno(EINVAL, "--consent-timeout= takes seconds, 1 to %u.",
                                                       POLICY_INTERVAL_MAX);
                        m->consent_timeout_usec = sec * USEC_PER_SEC;
                        break;
                }
                case ARG_LOG_LEVEL:
                        r = log_set_max_level_from_arg(optarg);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument %s.", argv[optind]);
        if (!m->staging_dir != !m->drop_dir)
                return log_error_errno(EINVAL, "--staging-dir= and --drop-dir= go together.");
        if (m->rauc && !m->drop_dir)
                return log_error_errno(EINVAL, "--rauc needs --staging-dir= and --drop-dir=: RAUC installs from the drop directory.");
        m->state_dir = strdup(dir);
        return m->state_dir ? 1 : log_oom();
}

static int policyd_open(Daemon *d, void *userdata) {
        Manager *m = userdata;

        /* As callhome-policy: the policy file is its own, and no one else's to read. */
        m->state_fd = open(m->state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (m->state_fd < 0)
                return log_error_errno(errno, "State directory %s: cannot open it: %m", m->state_dir);
        return manager_load(m);
}

static int policyd_setup(Daemon *d, void *userdata) {
        Manager *m = userdata;
        int r;

        m->event = sd_event_ref(daemon_event(d));
        m->bus = sd_bus_ref(daemon_bus(d));
        r = policy_bus_register(m);
        if (r < 0)
                return log_error_errno(r, "Bus: cannot register %s: %m", POLICY_BUS_PATH);
        r = collector_watch_start(m);
        if (r < 0)
                return log_error_errno(r, "Bus: cannot follow the owner of org.callhome.Collector1: %m");
        r = flow_new(m);
        if (r >= 0)
                r = checkin_new(m);
        if (r >= 0)
                r = witness_new(m);
        if (r >= 0)
                r = instructions_new(m);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the orchestration: %m");
        return 0;
}

static void policyd_ready(Daemon *d, void *userdata) {
        Manager *m = userdata;

        if (flow_start(m) < 0 || checkin_start(m) < 0 || instructions_start(m) < 0)
                log_error("The schedule could not be started: nothing will be sent until policyd restarts.");
        (void) notify_status("%s", m->load_error ? "Policy file rejected: the last good policy is in force"
                                                 : "Serving the policy");
}

static const DaemonOps policyd_ops = {
        .open = policyd_open,
        .setup = policyd_setup,
        .ready = policyd_ready,
};

int main(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        log_setup("callhome-policyd");
        r = manager_new(&m);
        if (r < 0)
                return log_oom(), 1;
        r = parse_argv(m, argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        r = confine_lookup_group("callhome-admin", &m->admin_gid);
        if (r < 0)
                log_warning_errno(r, "No group callhome-admin: only root may read or change the policy, ignoring.");

        return daemon_run(&(const DaemonConfig) {
                .profile = CONFINE_PROFILE_POLICYD,
                .state_dir = m->state_dir,
                .extra_writable_dirs = (const char *const[]) { m->staging_dir, m->drop_dir, NULL },
                .bus_name = POLICY_BUS_NAME,
                .seccomp_mode = seccomp_mode_from_env(),
                .ops = &policyd_ops,
                .userdata = m,
        });
}
