/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>

#include "bus-peers.h"
#include "bus-util.h"

int bus_open_system_attached(sd_event *event, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

int bus_request_name_strict(sd_bus *bus, const char *name) {
        int r = sd_bus_request_name(bus, name, 0);

        if (r == -EPERM || r == -EACCES)
                return -EACCES;
        if (r == -EEXIST || r == -EALREADY)
                return -EEXIST;
        return r < 0 ? r : 0;
}

int bus_message_read_dict(sd_bus_message *m, int (*fn)(sd_bus_message *m, const char *key, void *userdata),
                          void *userdata) {
        const char *key;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                r = fn(m, key, userdata);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int bus_check_caller(sd_bus_message *m, uid_t uid, gid_t gid, sd_bus_error *error) {
        BusPeers *peers;

        assert(m);
        /* Judged from the guard's cache: asking the bus from a handler would block the loop. */
        peers = bus_peers_of(sd_bus_message_get_bus(m));
        if (!peers) {
                /* A service without a guard (bus_peers_new()) is a bug: refused, never waited for. */
                sd_bus_error_set(error, SD_BUS_ERROR_FAILED, "The service does not know its callers' credentials.");
                return -ENXIO;
        }
        return bus_peers_check(peers, m, uid, gid, error);
}

int bus_check_property_caller(sd_bus *bus, uid_t uid, gid_t gid, sd_bus_error *error) {
        sd_bus_message *call = sd_bus_get_current_message(bus);

        if (!call || sd_bus_message_is_method_call(call, "org.freedesktop.DBus.Properties", NULL) <= 0)
                return 0;
        return bus_check_caller(call, uid, gid, error);
}
