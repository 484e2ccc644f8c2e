/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The running net-worker: its configuration, resolver and HTTPS client, and
 * the bus they are served on. */

#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-peers.h"
#include "nw-client.h"
#include "nw-config.h"
#include "nw-resolve.h"

#define NW_BUS_NAME "org.callhome.NetWorker1"
#define NW_BUS_PATH "/org/callhome/NetWorker1"
#define NW_BUS_INTERFACE NW_BUS_NAME

typedef struct NwManager {
        sd_event *event;
        sd_bus *bus;
        BusPeers *peers;           /* the callers' credentials, without blocking (nw-bus.c) */
        NwConfig *config;
        NwResolver *resolver;
        NwClient *client;
        uid_t policy_uid;          /* callhome-policy; (uid_t) -1 if there is none: root only */
        uint64_t watchdog_usec;    /* 0: no watchdog */
        uint64_t watchdog_last;    /* CLOCK_MONOTONIC of the last ping made during an exchange */

        /* Calls that wait for the exchange under way, served in order once it ends (nw-bus.c). */
        sd_bus_message *waiting[16];
        unsigned n_waiting;
        bool dispatching;
        sd_event_source *dispatch_source;
} NwManager;

/* The object and its vtable (nw-bus.c). */
int nw_bus_register(NwManager *m);
/* Drops the calls still waiting (the daemon stops: their callers see the name leave). */
void nw_bus_unregister(NwManager *m);
