/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <errno.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <json-c/json.h>

#include "bus-peers.h"
#include "payload.h"
#include "policy.h"

#define POLICY_BUS_NAME "org.callhome.Policy1"
#define POLICY_BUS_PATH "/org/callhome/Policy1"
#define POLICY_BUS_INTERFACE "org.callhome.Policy1"
#define POLICY_ERROR_AUDIT_UNAVAILABLE "org.callhome.Policy1.Error.AuditUnavailable"
#define POLICY_ERROR_COLLECTOR_UNAVAILABLE "org.callhome.Policy1.Error.CollectorUnavailable"
#define POLICY_ERROR_NOTHING_TO_SEND "org.callhome.Policy1.Error.NothingToSend"
#define POLICY_ERROR_NO_SUCH_REQUEST "org.callhome.Policy1.Error.NoSuchRequest"

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
        BusPeers *peers;                /* the callers' credentials, without blocking (policyd-bus.c) */
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
        sd_bus_slot *change_slot;       /* the Append under way */

        unsigned n_previews;            /* Previews waiting for their snapshot */

        /* The unique name owning org.callhome.Collector1, NULL while none does. */
        char *collector_owner;

        /* The parts of the orchestration, each private to its file (see below). */
        struct Flow *flow;              /* policyd-flow*.c: pushes, their schedule and retries */
        struct CheckIn *checkin;        /* policyd-checkin.c: check-ins, their schedule, status */
        struct Witness *witness;        /* policyd-witness.c: checkpoints the server cosigns */
        struct Instructions *instructions; /* policyd-instruction*.c: instructions, consent, software */

        /* policyd-instruction*.c's settings, from the command line (callhome-policyd(8)). */
        char *staging_dir;              /* downloads in progress; NULL: no software is fetched */
        char *drop_dir;                 /* the installer's drop directory, on the staging dir's file system */
        char *code_signing_anchor;      /* PEM, the pinned code-signing anchor */
        char *model;                    /* this device's model, as manifests name it */
        uint64_t consent_timeout_usec;  /* how long a consent request waits for an answer */
        bool rauc;                      /* verified bundles go to RAUC's InstallBundle from the drop directory */

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

/* Reads STATE_DIR/name, a JSON object of `what`'s state: 0 with *ret NULL when there is
 * none, or when it is not a JSON object, larger than max or not a regular file (logged,
 * moved aside: `what` starts afresh); < 0 (logged) when it cannot be read. */
int manager_read_json_state(Manager *m, const char *what, const char *name, size_t max, json_object **ret);
/* Moves STATE_DIR/name aside to name.corrupt (replacing an older one) for the
 * administrator to look at, and logs that it `why` ("is not a JSON object"). */
int manager_set_aside_state(Manager *m, const char *what, const char *name, const char *why);

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
/* The caller's uid, from the cache of the callers' credentials (never a bus call). */
int policy_bus_sender_uid(Manager *m, sd_bus_message *call, uid_t *ret, sd_bus_error *error);
/* Reads a variant holding setting s into v; InvalidArgs naming it if the type is wrong. */
int policy_bus_read_setting(sd_bus_message *call, PolicySetting s, PolicyValue *v, char ***strv, sd_bus_error *error);

/* The orchestration (issue 11), one part per file, each with its own state
 * behind an opaque pointer in Manager. The parts call each other only through
 * these functions. Each part's *_new() runs in setup once the bus is up, its
 * *_start() once the daemon is ready; *_free() takes NULL. */

/* policyd-flow*.c: the durable flow of pushes (outbox in the audit log, resent
 * with the same id after a crash), their schedule and their retries. */
typedef enum SendKind {
        SEND_METER_READS,
        SEND_SUPPLIES,
        _SEND_KIND_MAX,
        _SEND_KIND_INVALID = -EINVAL,   /* keeps the type signed: "not a push" compares < 0 */
} SendKind;

int flow_new(Manager *m);
int flow_start(Manager *m);
void flow_free(Manager *m);
/* Called after every adopted policy change (the schedule and the server may follow it). */
void flow_policy_changed(Manager *m);
/* Pushes `kind` now if the policy allows it; `why` is audited ("schedule", "customer",
 * "instruction 7"). -EPERM: the policy does not allow it; -EBUSY: one is under way. */
int flow_send_now(Manager *m, SendKind kind, const char *why);
/* A call to org.callhome.NetWorker1 `member`; flow_net_call() hands the net-worker
 * the policy's server and proxy first if it does not have them yet. */
int flow_net_new_call(Manager *m, const char *member, sd_bus_message **ret);
int flow_net_call(Manager *m, sd_bus_message *call, sd_bus_message_handler_t callback, void *userdata,
                  sd_bus_slot **ret_slot);
/* The device id the server knows this printer by (its serial, which its client
 * certificate names), or NULL before the first snapshot. */
const char *flow_device_id(Manager *m);
/* A snapshot read by any part names the serial: kept if it is a valid device id. */
void flow_learn_device_id(Manager *m, const char *serial);
/* The device id, at once when known, else once the collector's snapshot has said it;
 * NULL and why not if it could not. With ret_slot the look-up is the caller's to
 * cancel; without, it lives until answered. */
typedef void (*FlowDeviceIdReady)(Manager *m, const char *device_id, const char *error, void *userdata);
int flow_with_device_id(Manager *m, FlowDeviceIdReady ready, void *userdata, sd_bus_slot **ret_slot);
/* A part that refused a pending record of an earlier run for want of room
 * (instruction_resume_pending() -ENOBUFS) has room again: the flow reads on
 * in the audit log's outbox from that record. */
void flow_pending_room(Manager *m);

/* policyd-checkin.c: check-ins on their schedule, with the witness, handing each
 * instruction of the reply to instruction_handle(); the status properties. */
int checkin_new(Manager *m);
int checkin_start(Manager *m);
void checkin_free(Manager *m);
void checkin_policy_changed(Manager *m);
/* -EPERM: remote services are off; -EBUSY: one is under way; -ETIME: the wall
 * clock is not set (the check-in follows once it is). */
int checkin_now(Manager *m, const char *why);
/* The check-in interval the server asked for, clamped to the policy's bounds: the value kept. */
uint32_t checkin_set_interval(Manager *m, uint32_t seconds);

/* policyd-witness.c: the log's checkpoint rides along with each check-in. */
typedef void (*WitnessReady)(Manager *m, void *userdata);
int witness_new(Manager *m);
void witness_free(Manager *m);
/* Gathers the latest checkpoint and a consistency proof from the last cosigned one,
 * then calls `ready` (also when it could not: the check-in then goes without). */
int witness_prepare(Manager *m, WitnessReady ready, void *userdata);
/* Appends the prepared witness (a{sv}, empty if none) to a CheckIn call. */
int witness_append(Manager *m, sd_bus_message *call);
/* Reads the witness a{sv} of a CheckIn reply: a cosignature is audited and handed to
 * auditd. Given the error reply of a CheckIn instead, raises a LogFork fault, which
 * stops automatic sending until the customer clears it. */
int witness_reply(Manager *m, sd_bus_message *reply);
/* Why automatic sending is stopped (a fork fault the customer has not cleared), or NULL. */
const char *witness_fault(Manager *m);

/* policyd-instruction*.c: the server's instructions, the customer's consent, software. */
int instructions_new(Manager *m);
int instructions_start(Manager *m);
void instructions_free(Manager *m);
/* Judges one instruction of a CheckIn reply (`reply` positioned at its a{sv}
 * arguments, which it reads), audits the verdict, acts and reports the outcome
 * with ReportResult. */
int instruction_handle(Manager *m, uint64_t id, const char *kind, sd_bus_message *reply);
/* An outbound record of an earlier run still pending that is not a push, handed
 * over by the flow as it reads the audit log's outbox at start: a report
 * ("instruction.result") or diagnostics ("diagnostics") is sent again with the
 * same transaction id and the call its record holds, tried and retried as a
 * fresh one, and marked delivered once the server answered. 1: taken (or under
 * way already, or unreadable: logged and left in the outbox); 0: of another
 * type; -ENOBUFS: too many wait in memory already, hand it over again after
 * flow_pending_room(). */
int instruction_resume_pending(Manager *m, const char *type, const char *txn, const void *payload, size_t size);
/* A check-in reached the server: every report and diagnostics waiting to try
 * again (their tries ran out, or their next one is not due yet) tries now. */
void instructions_checked_in(Manager *m);
