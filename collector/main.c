/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-collector: reads billing meters and supply levels from a counter
 * source and serves snapshots on org.callhome.Collector1. See
 * callhome-collector(8) and ipc/COUNTERS.md. */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sys/stat.h>

#include "bus-util.h"
#include "config.h"
#include "collector.h"
#include "confine.h"
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
                        r = log_level_from_string(optarg);
                        if (r < 0)
                                return log_error_errno(EINVAL, "Unknown log level %s.", optarg);
                        log_set_max_level(r);
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

/* Started as root outside systemd (no StateDirectory=): create the state
 * directory for the service user. An existing directory is used as it is. */
static int open_state_dir(const char *path) {
        int fd;

        if (geteuid() == 0 && mkdir(path, 0700) == 0) {
                uid_t uid;
                gid_t gid;
                int r = confine_lookup_user(confine_profile_user(CONFINE_PROFILE_COLLECTOR), &uid, &gid);
                if (r < 0)
                        return r;
                if (chown(path, uid, gid) < 0)
                        return negative_errno();
        }
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

static int run(int argc, char *argv[]) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(source_freep) Source *source = NULL;
        _cleanup_(highwater_freep) HighWater *hw = NULL;
        _cleanup_close_ int state_fd = -EBADF;
        Manager m = {};
        sigset_t ss;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;

        r = confine_lookup_user(confine_profile_user(CONFINE_PROFILE_POLICYD), &m.policy_uid, NULL);
        if (r < 0) {
                log_warning_errno(r, "No user %s, only root may call: %m", confine_profile_user(CONFINE_PROFILE_POLICYD));
                m.policy_uid = (uid_t) -1;
        }

        /* Open everything we need before confinement. */
        r = source_new(arg_source, &arg_limits, &source);
        if (r < 0)
                return log_error_errno(r, "Failed to open source %s: %m", arg_source);
        state_fd = open_state_dir(arg_state_dir);
        if (state_fd < 0)
                return log_error_errno(state_fd, "Failed to open state directory %s: %m", arg_state_dir);
        r = highwater_load(state_fd, &hw);
        if (r == -EBADMSG)
                return log_error_errno(r, "High-water marks in %s/" HIGHWATER_FILE " are corrupt; refusing to start "
                                       "without them (a decrease could go unnoticed): %m", arg_state_dir);
        if (r < 0)
                return log_error_errno(r, "Failed to load high-water marks from %s: %m", arg_state_dir);
        hw->max_rate = arg_max_rate;

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate event loop: %m");
        r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");
        (void) sd_event_set_watchdog(event, true);

        r = confine_apply(CONFINE_PROFILE_COLLECTOR, NULL, arg_state_dir, seccomp_mode_from_env());
        if (r < 0)
                return log_error_errno(r, "Failed to confine ourselves: %m");

        /* Each start is a new generation: (generation, sequence) orders every snapshot ever taken. */
        hw->generation++;
        hw->dirty = true;
        r = highwater_save(hw);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s/" HIGHWATER_FILE ": %m", arg_state_dir);

        /* Connect only now, so the bus knows us as the service user. */
        r = bus_open_system_attached(event, &bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        m.event = event;
        m.bus = bus;
        m.source = source;
        m.highwater = hw;
        m.state_fd = state_fd;
        r = collector_bus_register(&m);
        if (r < 0)
                return log_error_errno(r, "Failed to register the bus object: %m");
        r = bus_request_name_strict(bus, COLLECTOR_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire %s: %m", COLLECTOR_BUS_NAME);

        log_info("Serving %s from %s, generation %llu.", COLLECTOR_BUS_NAME, source->description,
                 (unsigned long long) hw->generation);
        (void) notify_ready();
        (void) notify_status("Serving snapshots from %s", source->description);
        r = sd_event_loop(event);
        (void) notify_stopping();
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        log_setup("callhome-collector");
        return run(argc, argv) < 0 ? 1 : 0;
}
