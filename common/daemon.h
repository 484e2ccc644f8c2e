/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "confine.h"

/* The start-up, lock-down and life of every callhome daemon, in this order:
 *   1. connect to $NOTIFY_SOCKET (once, reused: see notify.h);
 *   2. block SIGTERM/SIGINT and make the event loop, which stops on either;
 *   3. make the state directory ready for the service user, or refuse an unsafe one;
 *   4. drop to the service user (confine_drop_privileges());
 *   5. connect to the system bus, as the service user: the bus policy knows us by it;
 *   6. ops->open(): open and create what the daemon needs, as the service user;
 *   7. lock down: resource limits, no_new_privs, Landlock on the state directory,
 *      the profile's seccomp allowlist, which for every profile but the
 *      net-worker's holds no socket() and no connect(): the bus and the notify
 *      socket are the only ones it will ever have;
 *   8. ops->setup(): bus objects and timers, confined;
 *   9. own the bus name, then READY=1, then ops->ready() (STATUS=, a log line);
 *  10. run the loop, with WATCHDOG=1 at half of $WATCHDOG_USEC when it is set;
 *  11. STOPPING=1, ops->stop() (make what waits durable), flush the bus.
 * A start-up failure is logged once, naming the step and the path. */

typedef struct Daemon Daemon;

typedef struct DaemonOps {
        /* Step 6: as the service user, not yet confined. May be NULL. */
        int (*open)(Daemon *d, void *userdata);
        /* Step 8: confined, before the name is owned. May be NULL. */
        int (*setup)(Daemon *d, void *userdata);
        /* Step 9, after READY=1. May be NULL. */
        void (*ready)(Daemon *d, void *userdata);
        /* Step 11, the loop over, the bus still connected. May be NULL. */
        void (*stop)(Daemon *d, void *userdata);
} DaemonOps;

typedef struct DaemonConfig {
        ConfineProfile profile;
        const char *user;      /* NULL: the profile's service user */
        const char *state_dir; /* absolute; the only place it may write (Landlock). NULL: none */
        const char *const *extra_writable_dirs; /* NULL-terminated, may be NULL: writable too (policyd's staging
                                                 * and drop directories); prepared by whoever configures them */
        const char *bus_name;  /* owned once ops->setup() has put the objects in place */
        SeccompMode seccomp_mode;
        const DaemonOps *ops;
        void *userdata;
} DaemonConfig;

/* Runs the daemon to its end and returns main()'s exit status: 0 after
 * SIGTERM or SIGINT, 1 when a start-up step failed, the loop failed, or the
 * bus connection went away (dbus-daemon gone, or it dropped us), so that the
 * service manager's Restart=on-failure brings it back with its name. */
int daemon_run(const DaemonConfig *c);

sd_event *daemon_event(Daemon *d);
sd_bus *daemon_bus(Daemon *d);

/* Step 3, exported for its test. A directory is safe when nobody but the
 * service user (and root) can change what is in it, and nothing in it leads
 * elsewhere: owned by the user (or by root, when root starts us: then it is
 * handed over), not writable by group or others, and holding only regular
 * files with one link each (a hard link or symlink placed there would make
 * root, or the daemon, write through to a file somewhere else). Started as
 * root: a missing directory is created for the user, and a root-owned one is
 * handed over with its files, as systemd's StateDirectory= does; root never
 * changes anything in a directory the user can already write. Logs why it
 * refuses, naming the path; returns a negative errno then. */
int daemon_prepare_state_dir(const char *path, const char *user);
