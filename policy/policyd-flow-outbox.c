/* SPDX-License-Identifier: Apache-2.0 */
/* The flow's start: the run's first record gives the transaction id epoch, then the outbox is read from auditd. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-util.h"
#include "log.h"
#include "policyd-flow.h"
#include "retry.h"
#include "txnid.h"

/* --- start: the epoch, then the outbox ------------------------------------------------- */

static int on_start_retry(sd_event_source *s, uint64_t usec, void *userdata);

static void start_failed(Flow *f, const char *format, ...) _printf_(2, 3);
static void start_failed(Flow *f, const char *format, ...) {
        _cleanup_free_ char *msg = NULL;
        uint64_t now = flow_now_usec(CLOCK_BOOTTIME), at;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&msg, format, ap) < 0)
                msg = NULL;
        va_end(ap);
        f->start_slot = sd_bus_slot_unref(f->start_slot);
        if (f->start_failures < UINT32_MAX)
                f->start_failures++;
        at = retry_next(f->m->policy, f->start_failures, now, 0, random_source_kernel, NULL);
        flow_set_error(f, "Not ready to send: %s", strna(msg));
        log_error("%s; trying again in %" PRIu64 " ms.", f->last_error, flow_scaled_wait(f, at - now) / 1000);
        if (!f->start_timer)
                (void) sd_event_add_time(f->m->event, &f->start_timer, CLOCK_BOOTTIME, 0, 0, on_start_retry, f);
        if (f->start_timer && sd_event_source_set_time(f->start_timer, now + flow_scaled_wait(f, at - now)) >= 0)
                (void) sd_event_source_set_enabled(f->start_timer, SD_EVENT_ONESHOT);
        flow_bus_emit_status(f);
}

static int on_start_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Flow *f = userdata;

        /* Without an epoch the start record is asked for again; with one, the outbox page that failed. */
        (void) (f->epoch ? flow_pending_next_page(f) : flow_start_begin(f));
        return 0;
}

static int on_device_snapshot(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(policy_snapshot_freep) PolicySnapshot *s = NULL;
        Flow *f = userdata;

        if (!sd_bus_message_is_method_error(reply, NULL) && collector_snapshot_read(reply, &s) >= 0)
                flow_set_device_id(f, s->serial);
        return 0;
}

static void flow_ready(Flow *f) {
        if (f->ready)
                return;
        f->ready = true;
        f->start_failures = 0;
        flow_set_error(f, NULL);
        log_info("Flow: ready; transaction ids of this run are SERIAL-%" PRIu64 ".N; %zu pending transaction(s) to send "
                 "again.", f->epoch, f->n_outbox);
        /* The device id, for the check-ins that may come before any push. */
        if (!f->device_id)
                (void) sd_bus_call_method_async(f->m->bus, NULL, COLLECTOR_NAME, COLLECTOR_PATH, COLLECTOR_NAME,
                                                "GetSnapshot", on_device_snapshot, f, NULL);
        for (SendKind k = 0; k < _SEND_KIND_MAX; k++)
                flow_schedule(f, k, true);
        flow_sender_kick(f);
        flow_bus_emit_status(f);
}

/* One record of the outbox, its strings and payload pointing into the reply. */
typedef struct PendingRecord {
        uint64_t seq;
        const char *kind, *direction, *type, *txn;
        const void *payload;
        size_t payload_len;
        bool customer;
} PendingRecord;

/* Reads one record (ttssssa{ss}ayay) of the outbox; 0 at the end of the array. */
static int read_pending(sd_bus_message *reply, PendingRecord *ret) {
        const char *key, *value;
        const void *hash;
        size_t hash_len;
        uint64_t realtime;
        int r;

        *ret = (PendingRecord) {};
        r = sd_bus_message_enter_container(reply, 'r', "ttssssa{ss}ayay");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(reply, "ttssss", &ret->seq, &realtime, &ret->kind, &ret->direction, &ret->type,
                                &ret->txn);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{ss}", &key, &value)) > 0)
                if (streq(key, "why") && streq(value, "customer"))
                        ret->customer = true;
                else if (streq(key, "error") && streq(ret->kind, "unreadable"))
                        log_error("Outbox: record %" PRIu64 " (%s) cannot be read: %s; it cannot be sent again.",
                                  ret->seq, ret->txn, value);
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'y', &ret->payload, &ret->payload_len);
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'y', &hash, &hash_len);
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;
        return 1;
}

/* A pending push of an earlier run, into the outbox in memory (the caller checked there is room). */
static int load_push(Flow *f, const PendingRecord *p) {
        _cleanup_(flow_txn_freep) FlowTxn *t = NULL;

        t = calloc(1, sizeof(FlowTxn));
        if (!t)
                return -ENOMEM;
        *t = (FlowTxn) { .kind = send_kind_from_record_type(p->type), .customer = p->customer, .xml_len = p->payload_len };
        t->txn = strdup(p->txn);
        t->xml = malloc(p->payload_len + 1);
        if (t->xml) {
                if (p->payload_len > 0)
                        memcpy(t->xml, p->payload, p->payload_len);
                t->xml[p->payload_len] = 0;
        }
        if (!t->txn || !t->xml)
                return -ENOMEM;
        log_info("%s %s: pending since an earlier run; sending it again with the same id.", send_kind_words(t->kind),
                 t->txn);
        f->outbox[f->n_outbox++] = TAKE_PTR(t);
        return 1;
}

/* One record of an earlier run: a push into the outbox, anything else outbound to
 * its owner (the instructions' reports and diagnostics). 1: taken or passed over;
 * -ENOBUFS: no room for it now (the page stops before it); another error: the
 * page is read again later (what was taken is not taken twice). */
static int take_pending(Flow *f, const PendingRecord *p) {
        int r;

        if (streq(p->kind, "unreadable")) {
                flow_set_error(f, "The outbound record %" PRIu64 " (%s) cannot be read from the audit log; it cannot be "
                          "sent again (see the log)", p->seq, p->txn);
                return 1;
        }
        if (!streq(p->direction, "outbound"))
                return 1;
        if (send_kind_from_record_type(p->type) < 0) {
                r = instruction_resume_pending(f->m, p->type, p->txn, p->payload, p->payload_len);
                if (r == 0)
                        log_warning("Outbox: record %" PRIu64 " (%s, %s) is of a kind no part of policyd sends; left "
                                    "in the outbox.", p->seq, p->type, p->txn);
                return r < 0 ? r : 1;
        }
        if (flow_outbox_has(f, p->txn) || (f->sending && streq(f->sending->txn, p->txn)))
                return 1;
        if (f->n_outbox >= FLOW_OUTBOX_MAX)
                return -ENOBUFS;
        r = load_push(f, p);
        return r < 0 ? r : 1;
}

static int on_pending_page(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Flow *f = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint64_t next = 0, last = f->pending_cursor;
        size_t taken = 0;
        bool full = false, past = false;
        int r;

        f->start_slot = sd_bus_slot_unref(f->start_slot);
        if (e) {
                start_failed(f, "the audit log's outbox could not be read: %s", e->message ?: e->name);
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(ttssssa{ss}ayay)");
        while (r >= 0) {
                PendingRecord p;

                r = read_pending(reply, &p);
                if (r <= 0)
                        break;
                if (p.seq >= f->start_seq) {
                        /* This run's own: already in memory. */
                        past = true;
                        break;
                }
                r = take_pending(f, &p);
                if (r == -ENOBUFS) {
                        full = true;
                        last = p.seq - 1;
                        break;
                }
                if (r < 0)
                        break;
                last = p.seq;
                taken++;
        }
        if (r < 0 && !full && !past) {
                start_failed(f, "the audit log's outbox could not be read: %s", strerror(-r));
                return 0;
        }
        /* The whole page was read: the cursor of the next one follows the array. */
        if (!full && !past && (sd_bus_message_exit_container(reply) < 0 || sd_bus_message_read(reply, "t", &next) < 0))
                next = 0;
        f->pending_more = full;
        f->pending_cursor = full ? last : (past ? 0 : next);
        log_debug("Outbox: %zu pending record(s) read%s.", taken, full ? "; more once there is room" : "");
        if (f->pending_cursor && !full)
                (void) flow_pending_next_page(f);
        flow_ready(f);
        flow_sender_kick(f);
        return 0;
}

void flow_pending_room(Manager *m) {
        Flow *f = m->flow;

        if (f && f->pending_more)
                (void) flow_pending_next_page(f);
}

int flow_pending_next_page(Flow *f) {
        uint32_t room = (uint32_t) (FLOW_OUTBOX_MAX - f->n_outbox);
        int r;

        if (f->start_slot || room == 0)
                return 0;
        f->pending_more = false;
        r = sd_bus_call_method_async(f->m->bus, &f->start_slot, AUDIT_NAME, AUDIT_PATH, AUDIT_NAME, "ListPendingPage",
                                     on_pending_page, f, "tu", f->pending_cursor, MIN(room, FLOW_PENDING_PAGE));
        if (r < 0)
                start_failed(f, "the audit log's outbox could not be asked for: %s", strerror(-r));
        return r;
}

static int on_start_recorded(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Flow *f = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint64_t seq;
        int r;

        f->start_slot = sd_bus_slot_unref(f->start_slot);
        if (e) {
                start_failed(f, "the audit log did not record the start: %s", e->message ?: e->name);
                return 0;
        }
        r = sd_bus_message_read(reply, "t", &seq);
        if (r >= 0)
                r = txn_epoch_next(f->m->state_fd, seq, &f->epoch);
        if (r < 0) {
                f->epoch = 0;
                start_failed(f, "no transaction id epoch could be stored in %s/%s: %s", f->m->state_dir, TXN_EPOCH_FILE,
                             strerror(-r));
                return 0;
        }
        if (r == 1)
                log_notice("Flow: %s/%s was missing or unreadable; the epoch comes from the audit log (%" PRIu64 ").",
                           f->m->state_dir, TXN_EPOCH_FILE, f->epoch);
        f->start_seq = seq;
        f->counter = 0;
        f->pending_cursor = 0;
        return flow_pending_next_page(f), 0;
}

int flow_start_begin(Flow *f) {
        int r;

        if (f->start_slot)
                return 0;
        r = manager_audit_append(f->m, "flow.start", "{\"event\":\"start\"}", NULL, on_start_recorded, f,
                                 &f->start_slot);
        if (r < 0)
                start_failed(f, "the audit log could not be asked: %s", strerror(-r));
        return 0;
}
