/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-collector: reads billing meters and supply levels from a counter
 * source and serves snapshots on org.callhome.Collector1. See
 * callhome-collector(8) and ipc/COUNTERS.md. */
#include <fcntl.h>
#include <getopt.h>

#include "bus-util.h"
#include "config.h"
#include "collector-bus.h"
#include "collector-manager.h"
#include "confine.h"
#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "parse-util.h"

#define STATE_DIR_DEFAULT "/var/lib/callhome/collector"

static const char *arg_source = NULL;
static const char *arg_state_dir = STATE_DIR_DEFAULT;
static SourceLimits arg_limits = { SOURCE_FILE_SIZE_DEFAULT, SOURCE_FILES_DEFAULT };
static uint64_t arg_max_rate = HIGHWATER_MAX_RATE_DEFAULT;

static void help(void) {
        printf("Usage: callhome-collector --source=sysfs:DIR|sim:SEED [OPTIONS]\n\n"
               "Reads billing counters and supply levels and serves them on org.callhome.Collector1.\n\n"
               "  --source=sysfs:DIR      read a sysfs-style tree rooted at DIR (absolute)\n"
               "  --source=sim:SEED       a deterministic simulated printer\n"
               "  --state-dir=DIR         high-water marks (default " STATE_DIR_DEFAULT ")\n"
               "  --max-file-size=BYTES   largest value file read (default %u, at most %u)\n"
               "  --max-files=N           files and entries per snapshot (default %u, at most %u)\n"
               "  --max-rate=N            the engine's maximum impressions per minute (default %u)\n"
               "  --log-level=LEVEL       debug, info, notice, warning, err\n"
               "  --help, --version\n",
               SOURCE_FILE_SIZE_DEFAULT, SOURCE_FILE_SIZE_MAX, SOURCE_FILES_DEFAULT, SOURCE_FILES_MAX,
               HIGHWATER_MAX_RATE_DEFAULT);
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_SOURCE = 0x100, ARG_STATE_DIR, ARG_MAX_FILE_SIZE, ARG_MAX_FILES, ARG_MAX_RATE, ARG_LOG_LEVEL, ARG_VERSION };
        static const struct option options[] = {
                { "source", required_argument, NULL, ARG_SOURCE },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "max-file-size", required_argument, NULL, ARG_MAX_FILE_SIZE },
                { "max-files", required_argument, NULL, ARG_MAX_FILES },
                { "max-rate", required_argument, NULL, ARG_MAX_RATE },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        uint64_t v;
        unsigned u;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        puts("callhome-collector " CALLHOME_VERSION);
                        return 0;
                case ARG_SOURCE:
                        arg_source = optarg;
                        break;
                case ARG_STATE_DIR:
                        if (optarg[0] != '/')
                                return log_error_errno(EINVAL, "--state-dir= must be an absolute path.");
                        arg_state_dir = optarg;
                        break;
                case ARG_MAX_FILE_SIZE:
                        r = parse_size(optarg, &v);
                        if (r < 0 || v == 0 || v > SOURCE_FILE_SIZE_MAX)
                                return log_error_errno(EINVAL, "--max-file-size= must be 1…%u bytes.", SOURCE_FILE_SIZE_MAX);
                        arg_limits.max_file_size = (size_t) v;
                        break;
                case ARG_MAX_FILES:
                        r = safe_atou(optarg, &u);
                        if (r < 0 || u == 0 || u > SOURCE_FILES_MAX)
                                return log_error_errno(EINVAL, "--max-files= must be 1…%u.", SOURCE_FILES_MAX);
                        arg_limits.max_files = u;
                        break;
                case ARG_MAX_RATE:
                        r = safe_atou64(optarg, &v);
                        if (r < 0 || v == 0 || v > HIGHWATER_MAX_RATE_MAX)
                                return log_error_errno(EINVAL, "--max-rate= must be 1…%u impressions per minute.",
                                                       HIGHWATER_MAX_RATE_MAX);
                        arg_max_rate = v;
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
        if (!arg_source)
                return log_error_errno(EINVAL, "--source= is required (sysfs:DIR or sim:SEED).");
        return 1;
}

typedef struct Collector {
        Manager m;
        Source *source;
        HighWater *highwater;
        int state_fd;
} Collector;

static int collector_open(Daemon *d, void *userdata) {
        Collector *c = userdata;
        int r;

        /* As the collector's user: what it reads and writes here is its own. */
        c->state_fd = open(arg_state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (c->state_fd < 0)
                return log_error_errno(errno, "State directory %s: cannot open it: %m", arg_state_dir);
        r = highwater_load(c->state_fd, &c->highwater);
        if (r == -EBADMSG)
                return log_error_errno(r, "High-water marks in %s/" HIGHWATER_FILE " are corrupt; refusing to start "
                                       "without them (a decrease could go unnoticed): %m", arg_state_dir);
        if (r < 0)
                return log_error_errno(r, "High-water marks: cannot load them from %s: %m", arg_state_dir);
        c->highwater->max_rate = arg_max_rate;
        return 0;
}

static int collector_setup(Daemon *d, void *userdata) {
        Collector *c = userdata;
        int r;

        /* Each start is a new generation: (generation, sequence) orders every snapshot ever taken. */
        c->highwater->generation++;
        c->highwater->dirty = true;
        r = highwater_save(c->highwater);
        if (r < 0)
                return log_error_errno(r, "High-water marks: cannot write %s/" HIGHWATER_FILE ": %m", arg_state_dir);

        c->m.event = daemon_event(d);
        c->m.bus = daemon_bus(d);
        c->m.source = c->source;
        c->m.highwater = c->highwater;
        c->m.state_fd = c->state_fd;
        r = collector_bus_register(&c->m);
        if (r < 0)
                return log_error_errno(r, "Bus: cannot register %s: %m", COLLECTOR_BUS_PATH);
        return 0;
}

static void collector_ready(Daemon *d, void *userdata) {
        Collector *c = userdata;

        log_info("Serving %s from %s, generation %llu.", COLLECTOR_BUS_NAME, c->source->description,
                 (unsigned long long) c->highwater->generation);
        (void) notify_status("Serving snapshots from %s", c->source->description);
}

static const DaemonOps collector_ops = {
        .open = collector_open,
        .setup = collector_setup,
        .ready = collector_ready,
};

static int run(int argc, char *argv[]) {
        Collector c = { .state_fd = -EBADF };
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 1 : 0;

        r = confine_lookup_user(confine_profile_user(CONFINE_PROFILE_POLICYD), &c.m.policy_uid, NULL);
        if (r < 0) {
                log_warning_errno(r, "No user %s, only root may call: %m", confine_profile_user(CONFINE_PROFILE_POLICYD));
                c.m.policy_uid = (uid_t) -1;
        }

        /* The counter source is read with the rights we were started with: a driver's files may be root's. */
        r = source_new(arg_source, &arg_limits, &c.source);
        if (r < 0)
                return log_error_errno(r, "Source %s: cannot open it: %m", arg_source), 1;

        r = daemon_run(&(const DaemonConfig) {
                .profile = CONFINE_PROFILE_COLLECTOR,
                .state_dir = arg_state_dir,
                .bus_name = COLLECTOR_BUS_NAME,
                .seccomp_mode = seccomp_mode_from_env(),
                .ops = &collector_ops,
                .userdata = &c,
        });
        bus_peers_free(c.m.peers);
        highwater_free(c.highwater);
        source_free(c.source);
        safe_close(c.state_fd);
        return r;
}

int main(int argc, char *argv[]) {
        log_setup("callhome-collector");
        return run(argc, argv);
}
