/* SPDX-License-Identifier: Apache-2.0 */
/* The witness. Placeholder: the interface is in policyd.h; check-ins carry none yet. */
#include "policyd.h"

int witness_new(Manager *m) {
        return 0;
}

void witness_free(Manager *m) {
}

int witness_prepare(Manager *m, WitnessReady ready, void *userdata) {
        ready(m, userdata);
        return 0;
}

int witness_append(Manager *m, sd_bus_message *call) {
        return sd_bus_message_append(call, "a{sv}", 0);
}

int witness_reply(Manager *m, sd_bus_message *reply) {
        return sd_bus_message_skip(reply, "a{sv}");
}

const char *witness_fault(Manager *m) {
        return NULL;
}
