/* SPDX-License-Identifier: Apache-2.0 */
/* org.callhome.Policy1: the vtable, and the filter that takes property
 * writes to the audited change path. See ipc/org.callhome.Policy1.xml. */
#include <assert.h>
#include <stddef.h>

#include "bus-peers.h"
#include "bus-util.h"
#include "log.h"
#include "policyd.h"

/* Calls a caller may have whose replies it has not been seen to read (bus-peers.h): the
 * largest replies (GetAll, a Preview's payload) are a few KiB, far below the bus' limit. */
#define POLICY_CALLS_UNREAD_MAX 64U

/* Readers and writers are the same: root and the group callhome-admin (the
 * printer's UI acts for the customer's admin as a member of it). */
int policy_bus_check_caller(Manager *m, sd_bus_message *call, sd_bus_error *error) {
        return bus_check_caller(call, (uid_t) -1, m->admin_gid, error);
}

int policy_bus_sender_uid(Manager *m, sd_bus_message *call, uid_t *ret, sd_bus_error *error) {
        BusPeers *peers = bus_peers_of(m->bus);

        if (!peers)
                return sd_bus_error_set(error, SD_BUS_ERROR_FAILED, "The caller's uid is not known; try again.");
        return bus_peers_sender_uid(peers, call, ret, error);
}

static Manager *manager_of_setting(void *userdata, PolicySetting *ret) {
        uint8_t *id = userdata;

        *ret = (PolicySetting) *id;
        return (Manager *) (void *) ((uint8_t *) userdata - *id - offsetof(Manager, setting_ids));
}

static int property_get_setting(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        PolicySetting s;
        Manager *m = manager_of_setting(userdata, &s);
        PolicyValue v;
        int r;

        r = bus_check_property_caller(bus, (uid_t) -1, m->admin_gid, error);
        if (r < 0)
                return r;
        assert(!policy_setting_is_secret(s));
        policy_get(m->policy, s, &v);
        switch (policy_setting_type(s)) {
        case 'b':
                return sd_bus_message_append(reply, "b", v.b);
        case 'u':
                return sd_bus_message_append(reply, "u", v.u);
        case 'a':
                return sd_bus_message_append_strv(reply, (char **) v.strv);
        default:
                return sd_bus_message_append(reply, "s", v.s);
        }
}

/* Never reached: property writes go through the filter, which answers them once audited. */
static int property_set_setting(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *value, void *userdata, sd_bus_error *error) {
        return sd_bus_error_set(error, SD_BUS_ERROR_FAILED, "Settings change through the audited path only.");
}

static int property_get_proxy_authentication(sd_bus *bus, const char *path, const char *interface,
                                             const char *property, sd_bus_message *reply, void *userdata,
                                             sd_bus_error *error) {
        Manager *m = userdata;
        int r = bus_check_property_caller(bus, (uid_t) -1, m->admin_gid, error);

        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "b", *m->policy->proxy_user || *m->policy->proxy_password);
}

static int property_get_load_error(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r = bus_check_property_caller(bus, (uid_t) -1, m->admin_gid, error);

        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "s", m->load_error ?: "");
}

int policy_bus_read_setting(sd_bus_message *call, PolicySetting s, PolicyValue *v, char ***strv, sd_bus_error *error) {
        char sig[3] = { policy_setting_type(s), 0, 0 };
        int r;

        assert(v);
        assert(strv);
        *v = (PolicyValue) {};
        if (sig[0] == 'a')
                sig[1] = 's';
        r = sd_bus_message_enter_container(call, 'v', sig);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s takes a value of type %s.",
                                         policy_setting_to_string(s), sig);
        switch (sig[0]) {
        case 'b': {
                int b;
                r = sd_bus_message_read(call, "b", &b);
                v->b = b;
                break;
        }
        case 'u':
                r = sd_bus_message_read(call, "u", &v->u);
                break;
        case 'a':
                r = sd_bus_message_read_strv(call, strv);
                v->strv = *strv;
                break;
        default:
                r = sd_bus_message_read(call, "s", &v->s);
        }
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s: the value could not be read.",
                                         policy_setting_to_string(s));
        return sd_bus_message_exit_container(call);
}

static int method_change(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = policy_bus_check_caller(m, call, error);
        if (r < 0)
                return r;
        return manager_queue_change(m, call);
}

/* Properties.Set on our interface: the caller is answered once the change is audited. */
static int on_message(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        Manager *m = userdata;
        const char *iface;
        int r;

        if (sd_bus_message_is_method_call(msg, "org.freedesktop.DBus.Properties", "Set") <= 0 ||
            !streq_ptr(sd_bus_message_get_path(msg), POLICY_BUS_PATH))
                return 0;
        r = sd_bus_message_read(msg, "s", &iface);
        (void) sd_bus_message_rewind(msg, true);
        if (r < 0 || !streq(iface, POLICY_BUS_INTERFACE))
                return 0;
        r = policy_bus_check_caller(m, msg, &e);
        if (r < 0) {
                (void) sd_bus_reply_method_error(msg, &e);
                return 1;
        }
        return manager_queue_change(m, msg);
}

/* --- Preview ------------------------------------------------------------------ */

typedef struct PreviewCall {
        Manager *m;
        sd_bus_message *call;
        PolicyService service;
} PreviewCall;

static int on_snapshot(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_free_ PreviewCall *pc = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = pc->call, *answer = NULL;
        _cleanup_(policy_snapshot_freep) PolicySnapshot *s = NULL;
        _cleanup_(payload_freep) Payload *p = NULL;
        _cleanup_free_ char *error = NULL;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        pc->m->n_previews--;
        if (e)
                return sd_bus_reply_method_errorf(call, POLICY_ERROR_COLLECTOR_UNAVAILABLE,
                                                  "No snapshot from the collector (org.callhome.Collector1): %s",
                                                  e->message ?: e->name), 0;
        r = collector_snapshot_read(reply, &s);
        if (r < 0)
                return sd_bus_reply_method_errorf(call, POLICY_ERROR_COLLECTOR_UNAVAILABLE,
                                                  "The collector's snapshot could not be read: %s", strerror(-r)), 0;
        /* The transaction id is given when a send records it; a preview takes none. */
        r = payload_build(pc->m->policy, s, pc->service, "preview", &p, &error);
        if (r == -EBADMSG)
                return sd_bus_reply_method_errorf(call, POLICY_ERROR_NOTHING_TO_SEND, "%s", strna(error)), 0;
        if (r < 0)
                return sd_bus_reply_method_errno(call, r, NULL), 0;
        r = sd_bus_message_new_method_return(call, &answer);
        if (r >= 0)
                r = sd_bus_message_append_array(answer, 'y', p->xml, p->xml_len);
        if (r >= 0)
                r = sd_bus_message_open_container(answer, 'a', "(ss)");
        for (size_t i = 0; r >= 0 && i < p->n_dropped; i++)
                r = sd_bus_message_append(answer, "(ss)", p->dropped[i].field, p->dropped[i].reason);
        if (r >= 0)
                r = sd_bus_message_close_container(answer);
        if (r >= 0)
                r = sd_bus_send(NULL, answer, NULL);
        if (r < 0)
                (void) sd_bus_reply_method_errno(call, r, NULL);
        return 0;
}

static int method_preview(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ PreviewCall *pc = NULL;
        const char *service;
        PolicyService svc;
        int r;

        r = policy_bus_check_caller(m, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "s", &service);
        if (r < 0)
                return r;
        svc = policy_service_from_string(service);
        if (svc != POLICY_SERVICE_METER_READS && svc != POLICY_SERVICE_SUPPLIES)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Preview takes \"meter-reads\" or \"supplies\", not \"%.40s\".", service);
        if (m->n_previews >= POLICY_PREVIEWS_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "%u previews are already waiting for a snapshot; try again when they are answered.",
                                         POLICY_PREVIEWS_MAX);
        pc = malloc(sizeof(PreviewCall));
        if (!pc)
                return -ENOMEM;
        *pc = (PreviewCall) { .m = m, .call = call, .service = svc };
        r = sd_bus_call_method_async(m->bus, NULL, "org.callhome.Collector1", "/org/callhome/Collector1",
                                     "org.callhome.Collector1", "GetSnapshot", on_snapshot, pc, NULL);
        if (r < 0)
                return r;
        sd_bus_message_ref(call);
        TAKE_PTR(pc);
        m->n_previews++;
        log_debug("Preview of %s: waiting for a snapshot (%u waiting).", service, m->n_previews);
        return 1;
}

#define SETTING_PROPERTY(name, sig, id)                                                                           \
        SD_BUS_WRITABLE_PROPERTY(name, sig, property_get_setting, property_set_setting,                           \
                                 offsetof(Manager, setting_ids) + (id),                                   \
                                 SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE | SD_BUS_VTABLE_UNPRIVILEGED)

static const sd_bus_vtable policy_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SETTING_PROPERTY("RemoteServices", "b", POLICY_SETTING_REMOTE_SERVICES),
        SETTING_PROPERTY("MeterReads", "s", POLICY_SETTING_METER_READS),
        SETTING_PROPERTY("MeterReadsInterval", "u", POLICY_SETTING_METER_READS_INTERVAL),
        SETTING_PROPERTY("Supplies", "s", POLICY_SETTING_SUPPLIES),
        SETTING_PROPERTY("SuppliesInterval", "u", POLICY_SETTING_SUPPLIES_INTERVAL),
        SETTING_PROPERTY("Diagnostics", "s", POLICY_SETTING_DIAGNOSTICS),
        SETTING_PROPERTY("SoftwareUpdates", "s", POLICY_SETTING_SOFTWARE_UPDATES),
        SETTING_PROPERTY("MaintenanceWindowStart", "s", POLICY_SETTING_MAINTENANCE_WINDOW_START),
        SETTING_PROPERTY("MaintenanceWindowMinutes", "u", POLICY_SETTING_MAINTENANCE_WINDOW_MINUTES),
        SETTING_PROPERTY("CheckInIntervalMin", "u", POLICY_SETTING_CHECK_IN_MIN),
        SETTING_PROPERTY("CheckInIntervalMax", "u", POLICY_SETTING_CHECK_IN_MAX),
        SETTING_PROPERTY("RetryMinimumWait", "u", POLICY_SETTING_RETRY_MINIMUM_WAIT),
        SETTING_PROPERTY("RetryIntervalMultiplier", "u", POLICY_SETTING_RETRY_INTERVAL_MULTIPLIER),
        SETTING_PROPERTY("ServerURL", "s", POLICY_SETTING_SERVER_URL),
        SETTING_PROPERTY("ProxyURL", "s", POLICY_SETTING_PROXY_URL),
        SETTING_PROPERTY("Allowlist", "as", POLICY_SETTING_ALLOWLIST),
        SETTING_PROPERTY("WitnessKey", "s", POLICY_SETTING_WITNESS_KEY),
        SD_BUS_PROPERTY("ProxyAuthentication", "b", property_get_proxy_authentication, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LoadError", "s", property_get_load_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Change", SD_BUS_ARGS("a{sv}", settings), SD_BUS_NO_RESULT, method_change,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Preview", SD_BUS_ARGS("s", service), SD_BUS_RESULT("ay", payload, "a(ss)", dropped),
                                method_preview, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int policy_bus_register(Manager *m) {
        int r;

        assert(m);
        for (PolicySetting s = 0; s < _POLICY_SETTING_MAX; s++)
                m->setting_ids[s] = (uint8_t) s;
        /* Caller checks go through bus_check_caller(), which the guard answers from its cache;
         * the Set filter runs behind the guard, so it too judges only known callers. */
        r = bus_peers_new(m->bus, POLICY_BUS_PATH, 0, &m->peers);
        if (r < 0)
                return r;
        bus_peers_limit_calls(m->peers, POLICY_CALLS_UNREAD_MAX);
        r = bus_peers_add_filter(m->peers, on_message, m);
        if (r < 0)
                return r;
        return sd_bus_add_object_vtable(m->bus, NULL, POLICY_BUS_PATH, POLICY_BUS_INTERFACE, policy_vtable, m);
}
