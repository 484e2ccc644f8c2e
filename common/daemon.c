/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "bus-util.h"
#include "daemon.h"
#include "fileio.h"
#include "log.h"
#include "notify.h"

struct Daemon {
        const DaemonConfig *config;
        const char *user;
        sd_event *event;
        sd_bus *bus;
        sd_event_source *watchdog;
        uint64_t watchdog_usec;
};

sd_event *daemon_event(Daemon *d) {
        assert(d);
        return d->event;
}

sd_bus *daemon_bus(Daemon *d) {
        assert(d);
        return d->bus;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

/* --- the state directory --------------------------------------------------- */

typedef struct StateDir {
        int fd;
        const char *path;
        const char *user;
        uid_t uid;
        gid_t gid;
} StateDir;

/* Calls fn for each entry of the directory but "." and "..", stopping at the first error. */
static int state_dir_for_each(const StateDir *sd, int (*fn)(const StateDir *sd, const char *name)) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r;

        r = opendir_at(sd->fd, &d);
        if (r < 0)
                return log_error_errno(r, "State directory %s: cannot list it: %m", sd->path);
        while ((errno = 0, de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                r = fn(sd, de->d_name);
                if (r < 0)
                        return r;
        }
        if (errno != 0)
                return log_error_errno(errno, "State directory %s: cannot list it: %m", sd->path);
        return 0;
}

/* A regular file with one link; owned by the user unless root is about to hand it over. */
static int state_dir_check_entry(const StateDir *sd, const char *name) {
        struct stat st;

        if (fstatat(sd->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return log_error_errno(errno, "State directory %s: cannot stat %s: %m", sd->path, name);
        if (S_ISLNK(st.st_mode))
                return log_error_errno(ELOOP, "State directory %s is unsafe: %s is a symbolic link; "
                                       "refusing to start. Remove it.", sd->path, name);
        if (!S_ISREG(st.st_mode))
                return log_error_errno(EBADFD, "State directory %s is unsafe: %s is not a regular file; "
                                       "refusing to start. Move it away.", sd->path, name);
        if (st.st_nlink != 1)
                return log_error_errno(EMLINK, "State directory %s is unsafe: %s has %ju hard links, so it "
                                       "is also a file elsewhere; refusing to start. Remove it.",
                                       sd->path, name, (uintmax_t) st.st_nlink);
        if (sd->uid != (uid_t) -1 && st.st_uid != sd->uid)
                return log_error_errno(EPERM, "State directory %s: %s is owned by uid %u, not %s; refusing "
                                       "to start. Give it to %s or move it away.",
                                       sd->path, name, (unsigned) st.st_uid, sd->user, sd->user);
        return 0;
}

/* Only root could write in the directory, and every entry passed the check: no race, no trap. */
static int state_dir_hand_over_entry(const StateDir *sd, const char *name) {
        if (fchownat(sd->fd, name, sd->uid, sd->gid, AT_SYMLINK_NOFOLLOW) < 0)
                return log_error_errno(errno, "State directory %s: cannot hand %s to %s: %m", sd->path, name, sd->user);
        return 0;
}

int daemon_prepare_state_dir(const char *path, const char *user) {
        _cleanup_close_ int fd = -EBADF;
        bool root = geteuid() == 0;
        StateDir sd = { .path = path, .user = user };
        struct stat st;
        int r;

        assert(path);
        assert(user);

        if (path[0] != '/')
                return log_error_errno(EINVAL, "State directory %s: not an absolute path.", path);
        if (root) {
                r = confine_lookup_user(user, &sd.uid, &sd.gid);
                if (r < 0)
                        return log_error_errno(r, "State directory %s: cannot find its user %s: %m", path, user);
        } else {
                sd.uid = geteuid();
                sd.gid = getegid();
        }

        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "State directory %s: cannot create it: %m", path);
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "State directory %s: cannot open it%s: %m", path,
                                       errno == ELOOP || errno == ENOTDIR ? " (a symbolic link, or not a directory)" : "");
        sd.fd = fd;
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "State directory %s: cannot stat it: %m", path);
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return log_error_errno(EPERM, "State directory %s is unsafe: writable by group or others (mode %04o); "
                                       "refusing to start.", path, (unsigned) (st.st_mode & 07777));

        if (st.st_uid == sd.uid)
                /* The user's own (systemd's StateDirectory=, or an earlier start): as root, touch nothing. */
                return state_dir_for_each(&sd, state_dir_check_entry);
        if (!root || st.st_uid != 0)
                return log_error_errno(EPERM, "State directory %s is unsafe: owned by uid %u, not %s%s; refusing to start.",
                                       path, (unsigned) st.st_uid, user, root ? " or root" : "");

        /* Root's, and only root could write in it: hand it over, once nothing in it leads elsewhere. */
        r = state_dir_for_each(&(StateDir) { .fd = fd, .path = path, .user = user, .uid = (uid_t) -1 },
                               state_dir_check_entry);
        if (r < 0)
                return r;
        r = state_dir_for_each(&sd, state_dir_hand_over_entry);
        if (r < 0)
                return r;
        if (fchown(fd, sd.uid, sd.gid) < 0)
                return log_error_errno(errno, "State directory %s: cannot hand it to %s: %m", path, user);
        return 0;
}

/* --- the life of a daemon -------------------------------------------------- */

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        log_info("Received %s, stopping.", strsignal((int) si->ssi_signo));
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

/* Without its bus a daemon serves nobody and holds no name: exit non-zero so
 * that Restart=on-failure brings it back. sd-bus synthesises this signal when
 * the connection ends, however it ends. */
static int on_bus_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Daemon *d = userdata;

        if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", "Disconnected") <= 0)
                return 0;
        log_error("Lost the connection to the bus, exiting.");
        (void) sd_event_exit(d->event, EXIT_FAILURE);
        return 1;
}

static int on_watchdog(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;

        (void) notify_watchdog();
        (void) sd_event_source_set_time(s, usec + d->watchdog_usec / 2);
        return 0;
}

static int daemon_start_loop(Daemon *d) {
        sigset_t ss;
        int r;

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
                return log_error_errno(errno, "Event loop: cannot block SIGTERM and SIGINT: %m");
        r = sd_event_default(&d->event);
        if (r < 0)
                return log_error_errno(r, "Event loop: cannot make it: %m");
        r = sd_event_add_signal(d->event, NULL, SIGTERM, on_signal, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGINT, on_signal, d);
        if (r < 0)
                return log_error_errno(r, "Event loop: cannot watch SIGTERM and SIGINT: %m");
        return 0;
}

static const char *bus_address(void) {
        return secure_getenv("DBUS_SYSTEM_BUS_ADDRESS") ?: "the system bus";
}

static int daemon_connect_bus(Daemon *d) {
        int r;

        r = bus_open_system_attached(d->event, &d->bus);
        if (r < 0)
                return log_error_errno(r, "Bus: cannot connect to %s: %m", bus_address());
        r = sd_bus_add_filter(d->bus, NULL, on_bus_message, d);
        if (r < 0)
                return log_error_errno(r, "Bus: cannot watch the connection to %s: %m", bus_address());
        return 0;
}

/* Steps 2 to 5 of confine_apply(), the drop (step 1) having come before the bus. */
static int daemon_lock_down(Daemon *d) {
        const DaemonConfig *c = d->config;
        const char *dirs[8] = { c->state_dir };
        size_t n = 1;

        for (size_t i = 0; c->extra_writable_dirs && c->extra_writable_dirs[i]; i++) {
                if (n + 1 >= ELEMENTSOF(dirs))
                        return log_error_errno(E2BIG, "Landlock: more writable directories than %zu.", ELEMENTSOF(dirs) - 2);
                dirs[n++] = c->extra_writable_dirs[i];
        }
        return confine_lock_down_dirs(c->profile, c->state_dir ? dirs : dirs + 1, c->seccomp_mode);
}

static int daemon_start(Daemon *d) {
        const DaemonConfig *c = d->config;
        void *u = c->userdata;
        int r;

        r = notify_open();
        if (r < 0)
                return log_error_errno(r, "Notify: cannot connect to NOTIFY_SOCKET %s: %m", notify_socket_path());
        r = daemon_start_loop(d);
        if (r < 0)
                return r;
        if (c->state_dir) {
                r = daemon_prepare_state_dir(c->state_dir, d->user);
                if (r < 0)
                        return r;
        }
        r = confine_drop_privileges(d->user);
        if (r < 0)
                return log_error_errno(r, "Privileges: cannot drop to the user %s, or something is still held: %m", d->user);
        if (c->state_dir) {
                /* Root made it ready; say so plainly if the user cannot get to it (a tree under a 0700 home). */
                _cleanup_close_ int fd = open(c->state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

                if (fd < 0)
                        return log_error_errno(errno, "State directory %s: the user %s cannot reach it: %m%s", c->state_dir,
                                               d->user, errno == EACCES ? " (every directory above it must let others search it, o+x)" : "");
        }
        r = daemon_connect_bus(d);
        if (r < 0)
                return r;
        if (c->ops->open) {
                r = c->ops->open(d, u);
                if (r < 0)
                        return r;
        }
        r = daemon_lock_down(d);
        if (r < 0)
                return r;
        if (c->ops->setup) {
                r = c->ops->setup(d, u);
                if (r < 0)
                        return r;
        }
        r = bus_request_name_strict(d->bus, c->bus_name);
        if (r < 0)
                return log_error_errno(r, "Bus: cannot own %s on %s: %m", c->bus_name, bus_address());

        d->watchdog_usec = notify_watchdog_usec();
        if (d->watchdog_usec > 0) {
                r = sd_event_add_time_relative(d->event, &d->watchdog, CLOCK_MONOTONIC, d->watchdog_usec / 2, 0,
                                               on_watchdog, d);
                if (r < 0)
                        return log_error_errno(r, "Watchdog: cannot add its timer: %m");
                r = sd_event_source_set_enabled(d->watchdog, SD_EVENT_ON);
                if (r < 0)
                        return log_error_errno(r, "Watchdog: cannot enable its timer: %m");
        }
        (void) notify_ready();
        if (c->ops->ready)
                c->ops->ready(d, u);
        return 0;
}

int daemon_run(const DaemonConfig *c) {
        Daemon d = { .config = c };
        int r, status;

        assert(c);
        assert(c->ops);
        assert(c->bus_name);

        d.user = c->user ?: confine_profile_user(c->profile);
        if (!d.user)
                return log_error_errno(EINVAL, "No service user for profile %d.", (int) c->profile), 1;

        r = daemon_start(&d);
        if (r < 0)
                status = 1;
        else {
                r = sd_event_loop(d.event);
                if (r < 0)
                        log_error_errno(r, "Event loop failed: %m");
                status = r == 0 ? 0 : 1;
                (void) notify_stopping();
                if (c->ops->stop)
                        c->ops->stop(&d, c->userdata);
        }
        sd_event_source_disable_unref(d.watchdog);
        sd_bus_flush_close_unref(d.bus);
        sd_event_unref(d.event);
        notify_close();
        return status;
}
