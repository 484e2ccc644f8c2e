/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-net-worker: the one process with network access. Loads its
 * configuration, key, certificates and name-resolution data, locks itself
 * down, and serves org.callhome.NetWorker1 for policyd. See
 * callhome-net-worker(8) and ipc/org.callhome.NetWorker1.xml.
 *
 * One exchange at a time, driven by the event loop (libcurl's multi
 * interface on sd-event sources): a method starts it and returns, and its
 * answer goes out when it ends (bounded by ConnectTimeout=, StallTimeout= and
 * TotalTimeout=). A call meanwhile waits its turn (16 at most; beyond, Busy at
 * once), so a long Download holds nobody, and the loop keeps serving the bus
 * and the watchdog.
 * Only resolving a name not in the cache waits in place (at most 5 s per
 * query); the watchdog is fed from the resolver's progress callback then. */
#include <getopt.h>
#include <time.h>

#include "config.h"
#include "confine.h"
#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "nw-manager.h"

#define CONFIG_DEFAULT "/etc/callhome/net-worker.conf"
#define HOSTS_FILE "/etc/hosts"
#define RESOLV_CONF "/etc/resolv.conf"

static const char *arg_config = CONFIG_DEFAULT;

static void help(void) {
        printf("Usage: callhome-net-worker [--config=FILE]\n\n"
               "Sends the callhome SOAP protocol over mutual TLS for policyd, on org.callhome.NetWorker1.\n\n"
               "  --config=FILE           configuration (default " CONFIG_DEFAULT ")\n"
               "  --log-level=LEVEL       debug, info, notice, warning, err\n"
               "  --help, --version\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_CONFIG = 0x100, ARG_LOG_LEVEL, ARG_VERSION };
        static const struct option options[] = {
                { "config", required_argument, NULL, ARG_CONFIG },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        puts("callhome-net-worker " CALLHOME_VERSION);
                        return 0;
                case ARG_CONFIG:
                        arg_config = optarg;
                        break;
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
        return 1;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

/* While the resolver waits for a name server the event loop does not run: feed the
 * watchdog from here. */
static void on_progress(void *userdata) {
        NwManager *m = userdata;
        uint64_t now;

        if (m->watchdog_usec == 0)
                return;
        now = now_usec();
        if (now - m->watchdog_last < m->watchdog_usec / 4)
                return;
        m->watchdog_last = now;
        (void) notify_watchdog();
}

static int net_worker_setup(Daemon *d, void *userdata) {
        NwManager *m = userdata;
        int r;

        m->event = daemon_event(d);
        m->bus = daemon_bus(d);
        m->watchdog_usec = notify_watchdog_usec();
        r = nw_client_attach_event(m->client, m->event);
        if (r < 0)
                return log_error_errno(r, "HTTPS client: cannot attach to the event loop: %m");
        r = nw_bus_register(m);
        if (r < 0)
                return log_error_errno(r, "Bus: cannot register %s: %m", NW_BUS_PATH);
        return 0;
}

static void net_worker_ready(Daemon *d, void *userdata) {
        log_info("Serving %s.", NW_BUS_NAME);
        (void) notify_status("Serving %s", NW_BUS_NAME);
}

static void net_worker_stop(Daemon *d, void *userdata) {
        NwManager *m = userdata;

        nw_bus_unregister(m);
        m->peers = bus_peers_free(m->peers);
}

static const DaemonOps net_worker_ops = {
        .setup = net_worker_setup,
        .stop = net_worker_stop,
        .ready = net_worker_ready,
};

static int run(int argc, char *argv[]) {
        _cleanup_(nw_config_freep) NwConfig *config = NULL;
        _cleanup_(nw_resolver_freep) NwResolver *resolver = NULL;
        _cleanup_(nw_client_freep) NwClient *client = NULL;
        NwManager m = {};
        unsigned line = 0;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 1 : 0;

        r = confine_lookup_user(confine_profile_user(CONFINE_PROFILE_POLICYD), &m.policy_uid, NULL);
        if (r < 0) {
                log_warning_errno(r, "No user %s, only root may call: %m", confine_profile_user(CONFINE_PROFILE_POLICYD));
                m.policy_uid = (uid_t) -1;
        }

        /* Everything from files, now: after the lock-down nothing is opened. */
        r = nw_config_load(arg_config, &config, &line);
        if (r < 0) {
                if (line > 0)
                        return log_error_errno(r, "Configuration %s, line %u: %m", arg_config, line), 1;
                return log_error_errno(r, "Configuration %s: %m", arg_config), 1;
        }
        r = nw_resolver_load(HOSTS_FILE, RESOLV_CONF, config->dns_servers, &resolver);
        if (r < 0)
                return log_error_errno(r, "Name resolution: cannot read %s or %s: %m", HOSTS_FILE, RESOLV_CONF), 1;
        r = nw_client_new(config, &client);
        if (r < 0)
                return log_error_errno(r, "HTTPS client: cannot set it up: %m"), 1;
        nw_client_set_resolver(client, resolver);
        nw_resolver_set_progress(resolver, on_progress, &m);
        r = nw_client_set_progress(client, on_progress, &m);
        if (r < 0)
                return log_error_errno(r, "HTTPS client: cannot watch its progress: %m"), 1;
        m.config = config;
        m.resolver = resolver;
        m.client = client;

        return daemon_run(&(const DaemonConfig) {
                .profile = CONFINE_PROFILE_NET_WORKER,
                .bus_name = NW_BUS_NAME,
                .seccomp_mode = seccomp_mode_from_env(),
                .ops = &net_worker_ops,
                .userdata = &m,
        });
}

int main(int argc, char *argv[]) {
        log_setup("callhome-net-worker");
        return run(argc, argv);
}
