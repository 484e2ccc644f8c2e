/* SPDX-License-Identifier: Apache-2.0 */
/* Check-ins, their schedule and the status. Placeholder: the interface is in policyd.h. */
#include <errno.h>

#include "policyd.h"

int checkin_new(Manager *m) {
        return 0;
}

int checkin_start(Manager *m) {
        return 0;
}

void checkin_free(Manager *m) {
}

void checkin_policy_changed(Manager *m) {
}

int checkin_now(Manager *m, const char *why) {
        return -EOPNOTSUPP;
}

uint32_t checkin_set_interval(Manager *m, uint32_t seconds) {
        return seconds;
}
