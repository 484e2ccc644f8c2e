/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Private to policyd-flow*.c: the durable flow of pushes (DESIGN.md, "Durable
 * flow"). The other parts of policyd see only the flow_* functions of policyd.h.
 *
 *   producer (one per kind)                     sender (one)
 *   policyd-flow-push.c                         policyd-flow.c
 *   timer / SendNow / instruction               the outbox, oldest first
 *     → GetSnapshot (collector)                   → SetServer/SetProxy if needed
 *     → payload_build (allowlist)                 → Submit* (net-worker), same id
 *     → Append "payload.dropped" (if any)         → Append inbound reply
 *     → Append outbound (synced): the outbox      → MarkDelivered
 *     → into the outbox                           failure: retry window, Retry-After
 *
 * Everything is an asynchronous bus call; the event loop never waits. The
 * outbox in memory mirrors auditd's (ListPendingPage at start) and is bounded:
 * a push while it is full is refused (OutboxFull), the counters it would have
 * carried go with the next one. policyd-flow-outbox.c reads it at start;
 * policyd-flow-request.c turns an outbound record into the Submit* call;
 * policyd-flow-bus.c holds the D-Bus members. */

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "policyd.h"

#define FLOW_OUTBOX_MAX 64U             /* transactions waiting to be sent, in memory */
#define FLOW_PENDING_PAGE 64U           /* records asked of auditd per ListPendingPage */
#define FLOW_TIME_DIVISOR_ENV "CALLHOME_POLICYD_TIME_DIVISOR"   /* tests only: see callhome-policyd(8) */
#define FLOW_TIME_DIVISOR_MAX 1000U
#define FLOW_JITTER_PERMILLE 100U       /* a scheduled push comes up to 10% after its interval */

#define AUDIT_NAME "org.callhome.Audit1"
#define AUDIT_PATH "/org/callhome/Audit1"
#define COLLECTOR_NAME "org.callhome.Collector1"
#define COLLECTOR_PATH "/org/callhome/Collector1"

#define POLICY_ERROR_REMOTE_SERVICES_OFF "org.callhome.Policy1.Error.RemoteServicesOff"
#define POLICY_ERROR_SERVICE_OFF "org.callhome.Policy1.Error.ServiceOff"
#define POLICY_ERROR_BUSY "org.callhome.Policy1.Error.Busy"
#define POLICY_ERROR_OUTBOX_FULL "org.callhome.Policy1.Error.OutboxFull"
#define POLICY_ERROR_CLOCK_NOT_SET "org.callhome.Policy1.Error.ClockNotSet"

typedef struct FlowTxn {
        SendKind kind;
        bool customer;          /* asked for by the customer: goes even while automatic sending is stopped */
        char *txn;
        char *xml;              /* the outbound record's payload: the exact request element */
        size_t xml_len;
} FlowTxn;

typedef struct Flow Flow;

/* One push being made: snapshot → payload → records → outbox. */
typedef struct PushOp {
        Flow *flow;
        SendKind kind;
        char *why;
        sd_bus_message *call;   /* SendMeterReadsNow/SendSuppliesNow to answer, or NULL */
        sd_bus_slot *slot;
        char *txn;
        char *xml;
        size_t xml_len;
} PushOp;

typedef struct Push {
        Flow *flow;
        SendKind kind;
        sd_event_source *timer; /* the next scheduled push, CLOCK_BOOTTIME */
        uint32_t interval;      /* seconds, of the armed timer (0: none armed) */
        uint64_t next_usec;     /* wall clock of the next scheduled push that would send; 0: none */
        uint64_t last_usec;     /* wall clock of the last delivery; 0: none since start */
        unsigned failures;      /* consecutive scheduled pushes that could not be recorded */
        PushOp *op;             /* the push under way, or NULL */
} Push;

/* What the status properties show; emitted when it changes. */
typedef struct FlowStatus {
        uint64_t last[_SEND_KIND_MAX], next[_SEND_KIND_MAX];
        uint32_t retry;
        uint64_t next_retry;
        uint32_t pending;
        char *error;
} FlowStatus;

struct Flow {
        Manager *m;
        unsigned divisor;       /* 1, or a test's CALLHOME_POLICYD_TIME_DIVISOR */

        /* Start: the run's first record gives the epoch of its transaction ids, then the outbox is read. */
        bool ready;
        uint64_t epoch, counter;
        uint64_t start_seq;             /* this run's first record: older pending records are earlier runs' */
        sd_bus_slot *start_slot;
        sd_event_source *start_timer;
        unsigned start_failures;
        uint64_t pending_cursor;        /* ListPendingPage cursor; 0 once the outbox was read to its end */
        bool pending_more;              /* auditd holds more than fitted in memory */
        char *device_id;

        Push push[_SEND_KIND_MAX];

        FlowTxn *outbox[FLOW_OUTBOX_MAX];
        size_t n_outbox;
        FlowTxn *sending;               /* the one with the net-worker or being recorded, or NULL */
        sd_bus_slot *send_slot;
        sd_event_source *retry_timer;
        unsigned failures;              /* consecutive failed attempts of the sender */
        uint64_t retry_usec;            /* wall clock of the next attempt, 0: none waiting */
        char *last_error;

        /* The wall clock before the build date: watch for it being set. */
        sd_event_source *clock_watch;

        bool net_configured;            /* the net-worker has the policy's server and proxy */
        sd_bus_slot *net_owner_slot;

        FlowStatus shown;               /* as last emitted */
};

/* policyd-flow.c: the sender, the wall clock, the life cycle. */
Flow *flow_of(Manager *m);
void flow_status(Flow *f, FlowStatus *ret);     /* ret->error is borrowed */
uint64_t flow_now_usec(clockid_t clock);
uint64_t flow_scaled_wait(Flow *f, uint64_t usec);   /* a policy's wait as the event loop waits it */
void flow_set_error(Flow *f, const char *format, ...) _printf_(2, 3);
void flow_set_device_id(Flow *f, const char *serial);
FlowTxn *flow_txn_free(FlowTxn *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(FlowTxn *, flow_txn_free);
bool flow_outbox_has(Flow *f, const char *txn);
void flow_sender_kick(Flow *f);
int flow_clock_check(Flow *f, char **ret_error);

/* policyd-flow-push.c: the producers (a push: snapshot → allowlist → records → outbox) and the schedule. */
int flow_push_begin(Flow *f, SendKind kind, const char *why, sd_bus_message *call, sd_bus_error *error);
PushOp *flow_push_op_free(PushOp *op);
/* Why `kind` may not be sent now (NULL: it may): at all (the customer's own pushes), or automatically. */
const char *flow_why_not_send(Flow *f, SendKind kind, bool automatic);
void flow_schedule(Flow *f, SendKind kind, bool fresh);
int flow_on_schedule(sd_event_source *s, uint64_t usec, void *userdata);       /* a Push's timer */

/* policyd-flow-outbox.c: the start (the epoch, then the outbox read from auditd). */
int flow_start_begin(Flow *f);
int flow_pending_next_page(Flow *f);

/* policyd-flow-bus.c: SendMeterReadsNow, SendSuppliesNow and the status properties. */
int flow_bus_register(Flow *f);
void flow_bus_emit_status(Flow *f);

/* policyd-flow-request.c: the outbound record's request element as the net-worker's
 * Submit* call. The element must be one payload_build() made for `kind`, with
 * transaction id `txn`; -EBADMSG otherwise. */
int flow_request_append(sd_bus_message *call, SendKind kind, const char *txn, const char *xml, size_t xml_len);
/* "meter-reads" or "supplies" (the record type), "SubmitMeterReads" or "SubmitSupplies". */
const char *send_kind_record_type(SendKind k);
const char *send_kind_operation(SendKind k);
const char *send_kind_words(SendKind k);        /* "Meter reads", "Supplies" */
SendKind send_kind_from_record_type(const char *s);
