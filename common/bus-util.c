/* SPDX-License-Identifier: Apache-2.0 */
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

int bus_sender_uid(sd_bus_message *m, uid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        int r;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        return sd_bus_creds_get_euid(creds, ret);
}

/* dbus-daemon records each peer's groups (SO_PEERGROUPS) when it connects and
 * hands them out as "UnixGroupIDs"; sd-bus does not ask for them, so we do. */
static int bus_sender_in_group(sd_bus_message *m, gid_t gid) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ gid_t *gids = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(sd_bus_message_get_bus(m), "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetConnectionCredentials", &error, &reply, "s",
                               sd_bus_message_get_sender(m));
        if (r < 0)
                return r;
        r = bus_credentials_read(reply, NULL, &gids, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (gids[i] == gid)
                        return 1;
        return 0;
}

int bus_check_caller(sd_bus_message *m, uid_t uid, gid_t gid, sd_bus_error *error) {
        BusPeers *peers = bus_peers_of(sd_bus_message_get_bus(m));
        uid_t euid;
        int r;

        /* A service that guards its object with BusPeers judges from their cache, never by a bus call. */
        if (peers)
                return bus_peers_check(peers, m, uid, gid, error);
        r = bus_sender_uid(m, &euid);
        if (r < 0) {
                /* Not a denial: the caller may be rightful, we could not tell. */
                sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Cannot learn the caller's credentials (%s); try again.",
                                  strerror(-r));
                return r;
        }
        if (euid == 0)
                return 0;
        if (uid != (uid_t) -1 && euid == uid)
                return 0;
        r = gid != (gid_t) -1 ? bus_sender_in_group(m, gid) : 0;
        if (r < 0) {
                sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Cannot learn the caller's groups (%s); try again.",
                                  strerror(-r));
                return r;
        }
        if (r > 0)
                return 0;
        sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Caller is not permitted to use this method.");
        return -EACCES;
}

int bus_check_property_caller(sd_bus *bus, uid_t uid, gid_t gid, sd_bus_error *error) {
        sd_bus_message *call = sd_bus_get_current_message(bus);

        if (!call || sd_bus_message_is_method_call(call, "org.freedesktop.DBus.Properties", NULL) <= 0)
                return 0;
        return bus_check_caller(call, uid, gid, error);
}
