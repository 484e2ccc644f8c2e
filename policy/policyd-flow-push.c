/* SPDX-License-Identifier: Apache-2.0 */
/* The producers: a push (snapshot → allowlist → payload.dropped → outbound record) and the schedule. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "bus-util.h"
#include "log.h"
#include "policyd-flow.h"
#include "retry.h"
#include "txnid.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

static const char *policy_mode_setting(SendKind kind) {
        return kind == SEND_METER_READS ? "MeterReads" : "Supplies";
}

static PolicyService service_of(SendKind kind) {
        return kind == SEND_METER_READS ? POLICY_SERVICE_METER_READS : POLICY_SERVICE_SUPPLIES;
}

static uint32_t interval_of(Flow *f, SendKind kind) {
        const Policy *p = f->m->policy;
        return kind == SEND_METER_READS ? p->meter_reads_interval : p->supplies_interval;
}

/* Whether `kind` may be sent at all now (the customer's own pushes), and automatically. */
const char *flow_why_not_send(Flow *f, SendKind kind, bool automatic) {
        const Policy *p = f->m->policy;
        ServiceMode mode = p->mode[service_of(kind)];

        if (!p->remote_services)
                return "remote services are off (RemoteServices=false)";
        if (mode == SERVICE_MODE_OFF)
                return kind == SEND_METER_READS ? "meter reads are off (MeterReads=off)" : "supplies are off (Supplies=off)";
        if (automatic && mode != SERVICE_MODE_AUTOMATIC)
                return kind == SEND_METER_READS ? "meter reads are not automatic (MeterReads=ask)"
                                                : "supplies are not automatic (Supplies=ask)";
        if (automatic && witness_fault(f->m))
                return "automatic sending is stopped until the customer acts on the witness fault";
        return NULL;
}

/* --- the producers -------------------------------------------------------------------- */

PushOp *flow_push_op_free(PushOp *op) {
        if (!op)
                return NULL;
        sd_bus_slot_unref(op->slot);
        sd_bus_message_unref(op->call);
        free(op->why);
        free(op->txn);
        free(op->xml);
        free(op);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(PushOp *, flow_push_op_free);

/* The push ends: the caller (if any) is answered; a scheduled one that failed comes back on the window. */
static void push_end(PushOp *op, const char *error_name, const char *format, ...) _printf_(3, 4);
static void push_end(PushOp *op, const char *error_name, const char *format, ...) {
        Flow *f = op->flow;
        Push *p = &f->push[op->kind];
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        assert(p->op == op);
        p->op = NULL;
        if (error_name) {
                va_start(ap, format);
                if (vasprintf(&msg, format, ap) < 0)
                        msg = NULL;
                va_end(ap);
                log_error("%s (%s): not recorded, nothing sent: %s", send_kind_words(op->kind), op->why, strna(msg));
                flow_set_error(f, "%s (%s) not recorded: %s", send_kind_words(op->kind), op->why, strna(msg));
                if (op->call)
                        (void) sd_bus_reply_method_errorf(op->call, error_name, "%s", strna(msg));
                if (streq(op->why, "schedule")) {
                        uint64_t now = flow_now_usec(CLOCK_BOOTTIME), at;

                        if (p->failures < UINT32_MAX)
                                p->failures++;
                        at = retry_next(f->m->policy, p->failures, now, 0, random_source_kernel, NULL);
                        p->interval = 0;        /* the regular interval resumes after the next success */
                        if (sd_event_source_set_time(p->timer, now + flow_scaled_wait(f, at - now)) >= 0)
                                (void) sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
                        log_info("%s: the scheduled push is tried again in %" PRIu64 " ms.", send_kind_words(op->kind),
                                 flow_scaled_wait(f, at - now) / 1000);
                }
        } else {
                if (op->call)
                        (void) sd_bus_reply_method_return(op->call, "s", op->txn);
                if (streq(op->why, "schedule"))
                        p->failures = 0;
        }
        flow_push_op_free(op);
        flow_bus_emit_status(f);
}

static int on_outbound_recorded(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(flow_txn_freep) FlowTxn *t = NULL;
        PushOp *op = userdata;
        Flow *f = op->flow;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint64_t seq = 0;

        op->slot = sd_bus_slot_unref(op->slot);
        if (e) {
                push_end(op, streq(e->name, "org.callhome.Audit1.Error.OutboxFull") ? POLICY_ERROR_OUTBOX_FULL
                                                                                   : POLICY_ERROR_AUDIT_UNAVAILABLE,
                         "the audit log did not record the outbound transaction: %s", e->message ?: e->name);
                return 0;
        }
        (void) sd_bus_message_read(reply, "t", &seq);
        t = calloc(1, sizeof(FlowTxn));
        if (!t) {
                /* It is in auditd's outbox: the next start sends it. */
                push_end(op, SD_BUS_ERROR_NO_MEMORY, "out of memory after recording %s", op->txn);
                return 0;
        }
        *t = (FlowTxn) { .kind = op->kind, .customer = streq(op->why, "customer") };
        t->txn = strdup(op->txn);
        t->xml = TAKE_PTR(op->xml);
        t->xml_len = op->xml_len;
        if (!t->txn) {
                push_end(op, SD_BUS_ERROR_NO_MEMORY, "out of memory after recording %s", op->txn);
                return 0;
        }
        log_info("%s %s (%s): outbound record %" PRIu64 " synced; queued to send.", send_kind_words(op->kind), op->txn,
                 op->why, seq);
        f->outbox[f->n_outbox++] = TAKE_PTR(t);
        push_end(op, NULL, NULL);
        flow_sender_kick(f);
        return 0;
}

static int record_outbound(PushOp *op) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        Manager *m = op->flow->m;
        int r;

        r = sd_bus_message_new_method_call(m->bus, &call, AUDIT_NAME, AUDIT_PATH, AUDIT_NAME, "Append");
        if (r >= 0)
                r = sd_bus_message_append(call, "sss", send_kind_record_type(op->kind), "outbound", op->txn);
        if (r >= 0)
                r = sd_bus_message_append_array(call, 'y', op->xml, op->xml_len);
        if (r >= 0)
                r = sd_bus_message_append(call, "a{ss}", 2, "operation", send_kind_operation(op->kind), "why", op->why);
        if (r >= 0)
                r = sd_bus_call_async(m->bus, &op->slot, call, on_outbound_recorded, op, 0);
        if (r >= 0)
                log_info("%s %s (%s): recording the outbound record.", send_kind_words(op->kind), op->txn, op->why);
        return r;
}

static int on_dropped_recorded(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PushOp *op = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        op->slot = sd_bus_slot_unref(op->slot);
        if (e) {
                push_end(op, POLICY_ERROR_AUDIT_UNAVAILABLE, "the dropped fields could not be recorded: %s",
                         e->message ?: e->name);
                return 0;
        }
        r = record_outbound(op);
        if (r < 0)
                push_end(op, POLICY_ERROR_AUDIT_UNAVAILABLE, "the outbound record could not be asked for: %s",
                         strerror(-r));
        return 0;
}

/* Every field the allowlist kept home, in one internal record before the outbound one. */
static int record_dropped(PushOp *op, const Payload *p) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *list = json_object_new_array();
        json_object *d;

        if (!o || !list)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_dropped; i++) {
                d = json_object_new_object();
                if (!d || json_object_array_add(list, d) < 0) {
                        json_object_put(d);
                        return -ENOMEM;
                }
                if (json_object_object_add(d, "field", json_object_new_string(p->dropped[i].field)) < 0 ||
                    json_object_object_add(d, "reason", json_object_new_string(p->dropped[i].reason)) < 0)
                        return -ENOMEM;
        }
        if (json_object_object_add(o, "txn", json_object_new_string(op->txn)) < 0 ||
            json_object_object_add(o, "service", json_object_new_string(send_kind_record_type(op->kind))) < 0 ||
            json_object_object_add(o, "dropped", json_object_get(list)) < 0)
                return -ENOMEM;
        log_info("%s %s: %zu field(s) not in the allowlist kept home (recorded).", send_kind_words(op->kind), op->txn,
                 p->n_dropped);
        return manager_audit_append(op->flow->m, "payload.dropped",
                                    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), NULL,
                                    on_dropped_recorded, op, &op->slot);
}

static int on_push_snapshot(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(policy_snapshot_freep) PolicySnapshot *s = NULL;
        _cleanup_(payload_freep) Payload *p = NULL;
        _cleanup_free_ char *error = NULL;
        PushOp *op = userdata;
        Flow *f = op->flow;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        op->slot = sd_bus_slot_unref(op->slot);
        if (e) {
                push_end(op, POLICY_ERROR_COLLECTOR_UNAVAILABLE, "no snapshot from the collector: %s",
                         e->message ?: e->name);
                return 0;
        }
        r = collector_snapshot_read(reply, &s);
        if (r < 0) {
                push_end(op, POLICY_ERROR_COLLECTOR_UNAVAILABLE, "the collector's snapshot could not be read: %s",
                         strerror(-r));
                return 0;
        }
        flow_set_device_id(f, s->serial);
        r = txn_id_format(s->serial, f->epoch, ++f->counter, &op->txn);
        if (r < 0) {
                push_end(op, POLICY_ERROR_NOTHING_TO_SEND, "no transaction id for the serial \"%.64s\": %s", s->serial,
                         strerror(-r));
                return 0;
        }
        r = payload_build(f->m->policy, s, service_of(op->kind), op->txn, &p, &error);
        if (r < 0) {
                push_end(op, r == -EBADMSG ? POLICY_ERROR_NOTHING_TO_SEND : SD_BUS_ERROR_FAILED, "%s",
                         error ?: strerror(-r));
                return 0;
        }
        op->xml = TAKE_PTR(p->xml);
        op->xml_len = p->xml_len;
        r = p->n_dropped > 0 ? record_dropped(op, p) : record_outbound(op);
        if (r < 0)
                push_end(op, POLICY_ERROR_AUDIT_UNAVAILABLE, "the audit log could not be asked: %s", strerror(-r));
        return 0;
}

int flow_push_begin(Flow *f, SendKind kind, const char *why, sd_bus_message *call, sd_bus_error *error) {
        _cleanup_(flow_push_op_freep) PushOp *op = NULL;
        _cleanup_free_ char *clock = NULL;
        const char *no;
        int r;

        assert(kind >= 0 && kind < _SEND_KIND_MAX);
        if (!f->ready)
                return sd_bus_error_setf(error, POLICY_ERROR_AUDIT_UNAVAILABLE,
                                         "Not ready to send: the audit log (org.callhome.Audit1) has not answered "
                                         "since policyd started%s%s.", f->last_error ? ": " : "",
                                         f->last_error ?: ""), -EAGAIN;
        if (!f->m->policy->remote_services)
                return sd_bus_error_setf(error, POLICY_ERROR_REMOTE_SERVICES_OFF,
                                         "Remote services are off: set RemoteServices to true to send anything."), -EPERM;
        no = flow_why_not_send(f, kind, false);
        if (no)
                return sd_bus_error_setf(error, POLICY_ERROR_SERVICE_OFF, "Not sent: %s; set %s to \"ask\" or "
                                         "\"automatic\" to send.", no, policy_mode_setting(kind)), -EPERM;
        /* Only the customer's own push goes while automatic sending is stopped. */
        if (!streq(why, "customer") && witness_fault(f->m))
                return sd_bus_error_setf(error, POLICY_ERROR_SERVICE_OFF, "Not sent: automatic sending is stopped: %s",
                                         witness_fault(f->m)), -EPERM;
        if (f->push[kind].op)
                return sd_bus_error_setf(error, POLICY_ERROR_BUSY, "%s are being recorded already; try again when "
                                         "that push is in the outbox.", send_kind_words(kind)), -EBUSY;
        if (f->n_outbox >= FLOW_OUTBOX_MAX)
                return sd_bus_error_setf(error, POLICY_ERROR_OUTBOX_FULL, "%u transactions wait to be sent already; "
                                         "the next push carries the counters once they are delivered.",
                                         FLOW_OUTBOX_MAX), -ENOBUFS;
        r = flow_clock_check(f, &clock);
        if (r == -ETIME)
                return sd_bus_error_setf(error, POLICY_ERROR_CLOCK_NOT_SET, "%s", clock), -ETIME;
        op = calloc(1, sizeof(PushOp));
        if (!op)
                return -ENOMEM;
        *op = (PushOp) { .flow = f, .kind = kind, .why = strdup(why), .call = sd_bus_message_ref(call) };
        if (!op->why)
                return -ENOMEM;
        r = sd_bus_call_method_async(f->m->bus, &op->slot, COLLECTOR_NAME, COLLECTOR_PATH, COLLECTOR_NAME,
                                     "GetSnapshot", on_push_snapshot, op, NULL);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot ask the collector for a snapshot: %s", strerror(-r));
        log_info("%s (%s): asking the collector for a snapshot.", send_kind_words(kind), why);
        f->push[kind].op = TAKE_PTR(op);
        return 0;
}

int flow_send_now(Manager *m, SendKind kind, const char *why) {
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        if (!m->flow)
                return -ENXIO;
        r = flow_push_begin(m->flow, kind, why, NULL, &e);
        if (r < 0)
                log_info("%s (%s) not sent: %s", send_kind_words(kind), why, e.message ?: strerror(-r));
        return r;
}

/* --- the schedule --------------------------------------------------------------------- */

int flow_on_schedule(sd_event_source *s, uint64_t usec, void *userdata) {
        Push *p = userdata;
        Flow *f = p->flow;
        SendKind kind = p->kind;
        const char *no = flow_why_not_send(f, kind, true);
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;

        flow_schedule(f, kind, true);
        if (no) {
                log_info("%s: scheduled time; not sent: %s.", send_kind_words(kind), no);
                return 0;
        }
        log_info("%s: scheduled time; pushing.", send_kind_words(kind));
        if (flow_push_begin(f, kind, "schedule", NULL, &e) < 0) {
                log_warning("%s: the scheduled push did not start: %s", send_kind_words(kind), e.message ?: e.name);
                flow_set_error(f, "%s (schedule) not started: %s", send_kind_words(kind), e.message ?: e.name);
                flow_bus_emit_status(f);
        }
        return 0;
}

/* Arms the next scheduled time of `kind` a jittered interval from now, unless one at
 * this interval is armed already and !fresh. NextX shows it if it would send. */
void flow_schedule(Flow *f, SendKind kind, bool fresh) {
        Push *p = &f->push[kind];
        uint32_t interval = interval_of(f, kind);
        uint64_t now, wait;
        int r;

        if (!fresh && p->interval == interval) {
                if (flow_why_not_send(f, kind, true))
                        p->next_usec = 0;
                else if (p->next_usec == 0) {
                        uint64_t at = 0;
                        if (sd_event_source_get_time(p->timer, &at) >= 0 && at > flow_now_usec(CLOCK_BOOTTIME))
                                p->next_usec = flow_now_usec(CLOCK_REALTIME) + (at - flow_now_usec(CLOCK_BOOTTIME));
                }
                return;
        }
        wait = random_uniform(random_source_kernel, NULL, (uint64_t) interval * USEC_PER_SEC,
                              (uint64_t) interval * USEC_PER_SEC / 1000 * (1000 + FLOW_JITTER_PERMILLE));
        wait = flow_scaled_wait(f, wait);
        now = flow_now_usec(CLOCK_BOOTTIME);
        r = sd_event_source_set_time(p->timer, now + wait);
        if (r >= 0)
                r = sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
        if (r < 0) {
                log_error_errno(r, "%s: cannot arm the schedule: %m", send_kind_words(kind));
                p->interval = 0;
                p->next_usec = 0;
                return;
        }
        p->interval = interval;
        p->next_usec = flow_why_not_send(f, kind, true) ? 0 : flow_now_usec(CLOCK_REALTIME) + wait;
        log_debug("%s: next scheduled time in %" PRIu64 " ms.", send_kind_words(kind), wait / 1000);
}

void flow_policy_changed(Manager *m) {
        Flow *f = m->flow;

        if (!f)
                return;
        f->net_configured = false;      /* the server or the proxy may be new */
        if (f->ready)
                for (SendKind k = 0; k < _SEND_KIND_MAX; k++)
                        flow_schedule(f, k, false);
        flow_sender_kick(f);
        flow_bus_emit_status(f);
}
