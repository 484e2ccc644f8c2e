/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The collector's state (collector-manager.c); its D-Bus face is collector-bus.h. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-peers.h"
#include "highwater.h"
#include "source.h"

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        Source *source;
        HighWater *highwater;
        int state_fd;
        uid_t policy_uid; /* callhome-policy: the one non-root caller */
        uint64_t sequence;
        uint64_t last_snapshot_usec;
        BusPeers *peers; /* the callers' credentials (collector_bus_register()) */
} Manager;

/* Reads the source, judges it against the marks, persists raised marks.
 * Anomalies new since the last snapshot are marked in *ret_fresh. */
int manager_take_snapshot(Manager *m, Snapshot **ret, bool **ret_fresh);
