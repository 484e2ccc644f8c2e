/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* libsystemd defines sd_bus_unrefp(), sd_bus_message_unrefp(), sd_event_unrefp() … */
#define _cleanup_bus_error_ _cleanup_(sd_bus_error_free)

/* The object path of a callhome service: "org.callhome.Audit1" → "/org/callhome/Audit1". */
#define CALLHOME_BUS_PATH(name) "/org/callhome/" name

/* Open the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured, as the tests use a
 * private one) and attach it to the event loop. */
int bus_open_system_attached(sd_event *event, sd_bus **ret);

/* Request `name` once the objects are in place, so no caller ever finds the
 * name without its objects. A refused name (wrong user, per the bus policy)
 * is -EACCES. */
int bus_request_name_strict(sd_bus *bus, const char *name);

/* Who may call: root always; `uid` if valid; members of `gid` (primary or
 * supplementary) if valid. Judged from the credentials dbus-daemon recorded
 * for the sender, as the BusPeers guarding the bus (bus-peers.h) cached them,
 * never by a bus call (it would block the event loop), in addition to the bus
 * policy file: defence in depth. On refusal sets an
 * org.freedesktop.DBus.Error.AccessDenied error and returns -EACCES; when the
 * credentials are not known, a Failed error (never a denial) and a negative
 * errno (-ENXIO: no BusPeers guard the bus). */
int bus_check_caller(sd_bus_message *m, uid_t uid, gid_t gid, sd_bus_error *error);

/* The same for a property getter: judges the org.freedesktop.DBus.Properties
 * call being answered. A getter that runs to signal a change answers no such
 * call and passes; those signals are kept to the readers by the bus policy. */
int bus_check_property_caller(sd_bus *bus, uid_t uid, gid_t gid, sd_bus_error *error);

/* Reads the a{sv} at m's read position: fn is called for each entry with its key
 * and reads the variant itself (fn's negative return ends the reading with it). */
int bus_message_read_dict(sd_bus_message *m, int (*fn)(sd_bus_message *m, const char *key, void *userdata),
                          void *userdata);
