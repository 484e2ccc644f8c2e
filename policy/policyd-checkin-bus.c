/* SPDX-License-Identifier: Apache-2.0 */
/* org.callhome.Policy1: the check-in and witness members (CheckInNow,
 * ClearForkFault, the status properties, ForkDetected), a vtable of their own
 * on the same object and interface. See ipc/org.callhome.Policy1.xml. */
#include <assert.h>

#include "bus-util.h"
#include "log.h"
#include "policyd-checkin.h"

static int method_check_in_now(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = policy_bus_check_caller(m, call, error);
        if (r < 0)
                return r;
        return checkin_now_for_call(m, call, error);
}

static int method_clear_fork_fault(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uid_t uid;
        int r;

        r = policy_bus_check_caller(m, call, error);
        if (r < 0)
                return r;
        r = policy_bus_sender_uid(m, call, &uid, error);
        if (r < 0)
                return r;
        return witness_clear_fault(m, call, uid, error);
}

static int property_get_status(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t size;
        uint32_t failures;
        const char *text;
        int r;

        r = bus_check_property_caller(bus, (uid_t) -1, m->admin_gid, error);
        if (r < 0)
                return r;
        if (streq(property, "LastCheckIn"))
                return sd_bus_message_append(reply, "t", checkin_last_usec(m));
        if (streq(property, "NextCheckIn"))
                return sd_bus_message_append(reply, "t", checkin_next_usec(m));
        if (streq(property, "LastError")) {
                /* A check-in that went through may still have had its cosignature refused. */
                text = checkin_last_error(m);
                return sd_bus_message_append(reply, "s", *text ? text : witness_refused(m) ?: "");
        }
        if (streq(property, "RetryState")) {
                checkin_retry_state(m, &failures, &text);
                return sd_bus_message_append(reply, "(us)", failures, text);
        }
        if (streq(property, "LastWitnessedCheckpoint")) {
                witness_last_cosigned(m, &size, &text);
                return sd_bus_message_append(reply, "(ts)", size, text);
        }
        assert(streq(property, "ForkFault"));
        return sd_bus_message_append(reply, "s", witness_fault(m) ?: "");
}

#define STATUS_PROPERTY(name, sig) \
        SD_BUS_PROPERTY(name, sig, property_get_status, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE)

static const sd_bus_vtable checkin_vtable[] = {
        SD_BUS_VTABLE_START(0),
        STATUS_PROPERTY("LastCheckIn", "t"),
        STATUS_PROPERTY("NextCheckIn", "t"),
        STATUS_PROPERTY("LastError", "s"),
        STATUS_PROPERTY("RetryState", "(us)"),
        STATUS_PROPERTY("LastWitnessedCheckpoint", "(ts)"),
        STATUS_PROPERTY("ForkFault", "s"),
        SD_BUS_METHOD_WITH_ARGS("CheckInNow", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_check_in_now,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ClearForkFault", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_clear_fork_fault,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("ForkDetected", SD_BUS_ARGS("s", message, "t", acked_size, "s", acked_root), 0),
        SD_BUS_VTABLE_END,
};

int checkin_bus_register(Manager *m) {
        assert(m);
        return sd_bus_add_object_vtable(m->bus, NULL, POLICY_BUS_PATH, POLICY_BUS_INTERFACE, checkin_vtable, m);
}

void checkin_bus_emit_status(Manager *m) {
        (void) sd_bus_emit_properties_changed(m->bus, POLICY_BUS_PATH, POLICY_BUS_INTERFACE, "LastCheckIn",
                                              "NextCheckIn", "LastError", "RetryState", "LastWitnessedCheckpoint", NULL);
}

void checkin_bus_emit_fork(Manager *m, const char *message, uint64_t acked_size, const char *acked_root) {
        if (message)
                (void) sd_bus_emit_signal(m->bus, POLICY_BUS_PATH, POLICY_BUS_INTERFACE, "ForkDetected", "sts", message,
                                          acked_size, acked_root);
        (void) sd_bus_emit_properties_changed(m->bus, POLICY_BUS_PATH, POLICY_BUS_INTERFACE, "ForkFault", NULL);
}
