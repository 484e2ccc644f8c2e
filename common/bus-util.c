/* SPDX-License-Identifier: Apache-2.0 */
#include "bus-util.h"

int bus_open_and_request_name(sd_event *event, const char *name, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = sd_bus_request_name(bus, name, 0);
        if (r == -EPERM || r == -EACCES)
                return -EACCES;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

int bus_sender_uid(sd_bus_message *m, uid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        int r;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        return sd_bus_creds_get_euid(creds, ret);
}

int bus_check_caller(sd_bus_message *m, uid_t uid, gid_t gid, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const gid_t *groups = NULL;
        uid_t euid;
        gid_t egid;
        int r, n;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID | SD_BUS_CREDS_SUPPLEMENTARY_GIDS,
                                      &creds);
        if (r < 0)
                goto denied;
        r = sd_bus_creds_get_euid(creds, &euid);
        if (r < 0)
                goto denied;
        if (euid == 0)
                return 0;
        if (uid != (uid_t) -1 && euid == uid)
                return 0;
        if (gid != (gid_t) -1) {
                if (sd_bus_creds_get_egid(creds, &egid) >= 0 && egid == gid)
                        return 0;
                n = sd_bus_creds_get_supplementary_gids(creds, &groups);
                for (int i = 0; i < n; i++)
                        if (groups[i] == gid)
                                return 0;
        }
denied:
        sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Caller is not permitted to use this method.");
        return -EACCES;
}
