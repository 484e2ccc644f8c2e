/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* org.callhome.Collector1 (ipc/org.callhome.Collector1.xml), served by collector-bus.c. */

#include <systemd/sd-bus.h>

#include "collector-manager.h"
#include "source.h"

#define COLLECTOR_BUS_NAME "org.callhome.Collector1"
#define COLLECTOR_BUS_PATH "/org/callhome/Collector1"
#define COLLECTOR_BUS_INTERFACE "org.callhome.Collector1"
#define COLLECTOR_ERROR_NOT_SIMULATOR "org.callhome.Collector1.Error.NotSimulator"

int collector_bus_register(Manager *m);
/* The snapshot structure (see ipc/org.callhome.Collector1.xml) appended to a message. */
int collector_bus_append_snapshot(sd_bus_message *m, const Snapshot *s, const char *source);
