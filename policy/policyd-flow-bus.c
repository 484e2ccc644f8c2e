/* SPDX-License-Identifier: Apache-2.0 */
/* The pushes on org.callhome.Policy1: SendMeterReadsNow, SendSuppliesNow and
 * the status properties. A vtable of its own on the same object and
 * interface as policyd-bus.c's (sd-bus merges them: one interface when
 * introspected), with the Flow as its userdata. See ipc/org.callhome.Policy1.xml. */
#include <assert.h>
#include <stddef.h>

#include "bus-util.h"
#include "log.h"
#include "policyd-flow.h"

static int send_now(sd_bus_message *call, Flow *f, SendKind kind, sd_bus_error *error) {
        int r;

        r = policy_bus_check_caller(f->m, call, error);
        if (r < 0)
                return r;
        r = flow_push_begin(f, kind, "customer", call, error);
        if (r < 0)
                return sd_bus_error_is_set(error) ? r : sd_bus_error_set_errno(error, r);
        return 1;       /* answered once the outbound record is synced */
}

static int method_send_meter_reads_now(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return send_now(call, userdata, SEND_METER_READS, error);
}

static int method_send_supplies_now(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return send_now(call, userdata, SEND_SUPPLIES, error);
}

static int property_get_status(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Flow *f = userdata;
        FlowStatus s;
        int r;

        r = bus_check_property_caller(bus, (uid_t) -1, f->m->admin_gid, error);
        if (r < 0)
                return r;
        flow_status(f, &s);
        if (streq(property, "LastMeterReads"))
                return sd_bus_message_append(reply, "t", s.last[SEND_METER_READS]);
        if (streq(property, "NextMeterReads"))
                return sd_bus_message_append(reply, "t", s.next[SEND_METER_READS]);
        if (streq(property, "LastSupplies"))
                return sd_bus_message_append(reply, "t", s.last[SEND_SUPPLIES]);
        if (streq(property, "NextSupplies"))
                return sd_bus_message_append(reply, "t", s.next[SEND_SUPPLIES]);
        if (streq(property, "PushRetry"))
                return sd_bus_message_append(reply, "u", s.retry);
        if (streq(property, "NextPushRetry"))
                return sd_bus_message_append(reply, "t", s.next_retry);
        if (streq(property, "PendingPushes"))
                return sd_bus_message_append(reply, "u", s.pending);
        assert(streq(property, "LastPushError"));
        return sd_bus_message_append(reply, "s", s.error ?: "");
}

#define STATUS_PROPERTY(name, sig)                                                                                \
        SD_BUS_PROPERTY(name, sig, property_get_status, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE)

static const sd_bus_vtable flow_vtable[] = {
        SD_BUS_VTABLE_START(0),
        STATUS_PROPERTY("LastMeterReads", "t"),
        STATUS_PROPERTY("NextMeterReads", "t"),
        STATUS_PROPERTY("LastSupplies", "t"),
        STATUS_PROPERTY("NextSupplies", "t"),
        STATUS_PROPERTY("PendingPushes", "u"),
        STATUS_PROPERTY("PushRetry", "u"),
        STATUS_PROPERTY("NextPushRetry", "t"),
        STATUS_PROPERTY("LastPushError", "s"),
        SD_BUS_METHOD_WITH_ARGS("SendMeterReadsNow", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", transaction_id),
                                method_send_meter_reads_now, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SendSuppliesNow", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", transaction_id),
                                method_send_supplies_now, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int flow_bus_register(Flow *f) {
        return sd_bus_add_object_vtable(f->m->bus, NULL, POLICY_BUS_PATH, POLICY_BUS_INTERFACE, flow_vtable, f);
}

/* PropertiesChanged for what changed since it was last emitted. */
void flow_bus_emit_status(Flow *f) {
        const char *changed[12];
        size_t n = 0;
        FlowStatus s;

        flow_status(f, &s);
        if (s.last[SEND_METER_READS] != f->shown.last[SEND_METER_READS])
                changed[n++] = "LastMeterReads";
        if (s.next[SEND_METER_READS] != f->shown.next[SEND_METER_READS])
                changed[n++] = "NextMeterReads";
        if (s.last[SEND_SUPPLIES] != f->shown.last[SEND_SUPPLIES])
                changed[n++] = "LastSupplies";
        if (s.next[SEND_SUPPLIES] != f->shown.next[SEND_SUPPLIES])
                changed[n++] = "NextSupplies";
        if (s.pending != f->shown.pending)
                changed[n++] = "PendingPushes";
        if (s.retry != f->shown.retry)
                changed[n++] = "PushRetry";
        if (s.next_retry != f->shown.next_retry)
                changed[n++] = "NextPushRetry";
        if (!streq(s.error ?: "", f->shown.error ?: "")) {
                char *e = s.error ? strdup(s.error) : NULL;
                if (s.error && !e)
                        return;         /* shown again at the next change */
                free(f->shown.error);
                f->shown.error = e;
                changed[n++] = "LastPushError";
        }
        s.error = f->shown.error;
        f->shown = s;
        if (n == 0)
                return;
        changed[n] = NULL;
        if (sd_bus_emit_properties_changed_strv(f->m->bus, POLICY_BUS_PATH, POLICY_BUS_INTERFACE, (char **) changed) < 0)
                log_debug("Cannot signal the change of the push status.");
}
