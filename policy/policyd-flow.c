/* SPDX-License-Identifier: Apache-2.0 */
/* The durable flow, the schedule and the retries. Placeholder: the interface
 * is in policyd.h; nothing is sent yet. */
#include <errno.h>

#include "policyd.h"

int flow_new(Manager *m) {
        return 0;
}

int flow_start(Manager *m) {
        return 0;
}

void flow_free(Manager *m) {
}

void flow_policy_changed(Manager *m) {
}

int flow_send_now(Manager *m, SendKind kind, const char *why) {
        return -EOPNOTSUPP;
}

int flow_net_new_call(Manager *m, const char *member, sd_bus_message **ret) {
        return sd_bus_message_new_method_call(m->bus, ret, "org.callhome.NetWorker1", "/org/callhome/NetWorker1",
                                              "org.callhome.NetWorker1", member);
}

int flow_net_call(Manager *m, sd_bus_message *call, sd_bus_message_handler_t callback, void *userdata,
                  sd_bus_slot **ret_slot) {
        return sd_bus_call_async(m->bus, ret_slot, call, callback, userdata, 0);
}

const char *flow_device_id(Manager *m) {
        return NULL;
}
