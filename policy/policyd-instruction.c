/* SPDX-License-Identifier: Apache-2.0 */
/* The server's instructions, consent and software. Placeholder: the interface
 * is in policyd.h; every instruction is skipped. */
#include <inttypes.h>

#include "log.h"
#include "policyd.h"

int instructions_new(Manager *m) {
        return 0;
}

int instructions_start(Manager *m) {
        return 0;
}

void instructions_free(Manager *m) {
}

int instruction_handle(Manager *m, uint64_t id, const char *kind, sd_bus_message *reply) {
        log_notice("Instruction %" PRIu64 " (%s) not handled yet.", id, kind);
        return sd_bus_message_skip(reply, "a{sv}");
}
