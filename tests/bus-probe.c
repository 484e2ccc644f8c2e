/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal service for the bus-policy tests: owns the given name and serves
 * one object on it, so the tests can show what the project's bus policy
 * allows and denies before the real daemons exist to stand behind a name.
 *
 *   bus-probe NAME [ADMIN-GROUP]
 *
 * Exits 13 when the bus refuses the name (the policy says this user may not own it).
 * Methods on /org/callhome/<X>1, interface NAME:
 *   Ping() → s "pong"                         anyone the bus policy lets through
 *   Whoami() → u                              the caller's uid, from bus credentials
 *                                             (cached by BusPeers, as the daemons do)
 *   Guarded() → s "granted"                   only root, or members of ADMIN-GROUP,
 *                                             checked by bus_check_caller() itself */
#include <signal.h>

#include "bus-peers.h"
#include "bus-util.h"
#include "confine.h"
#include "log.h"

static gid_t admin_gid = (gid_t) -1;

static int method_ping(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_reply_method_return(m, "s", "pong");
}

static int method_whoami(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uid_t uid;
        int r = bus_peers_sender_uid(bus_peers_of(sd_bus_message_get_bus(m)), m, &uid, error);

        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "u", (uint32_t) uid);
}

static int method_guarded(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int r = bus_check_caller(m, (uid_t) -1, admin_gid, error);

        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "s", "granted");
}

static const sd_bus_vtable probe_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Ping", "", "s", method_ping, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Whoami", "", "u", method_whoami, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Guarded", "", "s", method_guarded, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int main(int argc, char *argv[]) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(bus_peers_freep) BusPeers *peers = NULL;
        char path[256];
        const char *name;
        sigset_t ss;
        int r;

        log_setup("bus-probe");
        if (argc < 2 || argc > 3)
                return log_error("Usage: bus-probe NAME [ADMIN-GROUP]"), 2;
        name = argv[1];
        if (argc == 3) {
                r = confine_lookup_group(argv[2], &admin_gid);
                if (r < 0)
                        return log_error_errno(r, "Unknown group %s: %m", argv[2]), 2;
        }
        if (strncmp(name, "org.callhome.", 13) != 0 || strlen(name) > 100)
                return log_error("Name must be org.callhome.<Name>1"), 2;
        (void) snprintf(path, sizeof(path), "/org/callhome/%s", name + 13);

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        (void) sigprocmask(SIG_BLOCK, &ss, NULL);

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate event loop: %m"), 1;
        (void) sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        (void) sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);

        r = bus_open_system_attached(event, &bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the bus: %m"), 1;
        r = bus_peers_new(bus, path, 0, &peers);
        if (r < 0)
                return log_error_errno(r, "Failed to guard %s: %m", path), 1;
        r = sd_bus_add_object_vtable(bus, NULL, path, name, probe_vtable, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to add object: %m"), 1;
        r = bus_request_name_strict(bus, name);
        if (r == -EACCES)
                return log_error_errno(r, "The bus refused us %s: %m", name), 13;
        if (r < 0)
                return log_error_errno(r, "Failed to request %s: %m", name), 1;

        log_info("Serving %s at %s", name, path);
        r = sd_event_loop(event);
        return r < 0 ? 1 : 0;
}
