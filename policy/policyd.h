/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "payload.h"
#include "policy.h"

#define POLICY_BUS_NAME "org.callhome.Policy1"
#define POLICY_BUS_PATH "/org/callhome/Policy1"
#define POLICY_BUS_INTERFACE "org.callhome.Policy1"
#define POLICY_ERROR_AUDIT_UNAVAILABLE "org.callhome.Policy1.Error.AuditUnavailable"
#define POLICY_ERROR_COLLECTOR_UNAVAILABLE "org.callhome.Policy1.Error.CollectorUnavailable"
#define POLICY_ERROR_NOTHING_TO_SEND "org.callhome.Policy1.Error.NothingToSend"

#define POLICY_FILE "policy.xml"
#define POLICY_LAST_GOOD_FILE "policy.last-good.xml"
#define POLICY_DEFAULT_STATE_DIR "/var/lib/callhome/policy"
/* Previews waiting for a snapshot at once: each costs the collector a read of the source. */
#define POLICY_PREVIEWS_MAX 8U
/* Changes waiting for the one being audited. */
#define POLICY_CHANGES_QUEUED_MAX 64U

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        char *state_dir;
        int state_fd;
        gid_t admin_gid;

        Policy *policy;
        char *load_error;               /* why policy.xml was not adopted at start; NULL if it was */

        /* Changes are made one at a time, each audited before it takes effect. */
        sd_bus_message *changes[POLICY_CHANGES_QUEUED_MAX];
        size_t n_changes;
        Policy *candidate;              /* the policy the head change would make */
        bool changed[_POLICY_SETTING_MAX];
        uid_t change_uid;
        sd_bus_slot *change_slot;       /* the uid look-up or the Append under way */

        unsigned n_previews;            /* Previews waiting for their snapshot */

        /* The unique name owning org.callhome.Collector1, NULL while none does. */
        char *collector_owner;

        /* The address of setting_ids[i] is the userdata of property i; it holds i. */
        uint8_t setting_ids[_POLICY_SETTING_MAX];
} Manager;

int manager_new(Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Loads STATE_DIR/policy.xml, else the last good copy, else the defaults
 * (logged, and kept in load_error). */
int manager_load(Manager *m);
/* Writes p as policy.xml and as the last good copy, each atomically; logs a failure. */
int manager_store(Manager *m, const Policy *p);

/* Asks auditd to append an internal record of `type` with `payload` (and the
 * metadata "uid" if given); `callback` gets the reply (NULL: failures logged). */
int manager_audit_append(Manager *m, const char *type, const char *payload, const char *uid,
                         sd_bus_message_handler_t callback, void *userdata, sd_bus_slot **ret_slot);

/* policyd-change.c: a call that changes settings (Properties.Set or Change),
 * answered once the change is audited and on disk. Returns 1: taken. */
int manager_queue_change(Manager *m, sd_bus_message *call);

/* policyd-collector.c: reads a GetSnapshot reply. */
int collector_snapshot_read(sd_bus_message *reply, PolicySnapshot **ret);
/* Follows the unique name owning org.callhome.Collector1 and takes its
 * CounterAnomaly signals (audited), and no one else's. */
int collector_watch_start(Manager *m);

/* policyd-bus.c */
int policy_bus_register(Manager *m);
int policy_bus_check_caller(Manager *m, sd_bus_message *call, sd_bus_error *error);
/* Reads a variant holding setting s into v; InvalidArgs naming it if the type is wrong. */
int policy_bus_read_setting(sd_bus_message *call, PolicySetting s, PolicyValue *v, char ***strv, sd_bus_error *error);
