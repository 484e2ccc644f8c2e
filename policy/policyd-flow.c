/* SPDX-License-Identifier: Apache-2.0 */
/* The flow's sender (the outbox to the net-worker, its set-up, the retries), the wall clock, the life cycle. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bus-util.h"
#include "log.h"
#include "parse-util.h"
#include "policyd-flow.h"
#include "retry.h"
#include "wallclock.h"

#define NET_NAME "org.callhome.NetWorker1"
#define NET_PATH "/org/callhome/NetWorker1"
#define NET_ERROR_PREFIX "org.callhome.NetWorker1.Error."
/* An exchange is bounded by the net-worker's own timeouts; a call may wait behind another. */
#define FLOW_NET_TIMEOUT_USEC (300 * USEC_PER_SEC)

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

Flow *flow_of(Manager *m) {
        return m->flow;
}

uint64_t flow_now_usec(clockid_t clock) {
        struct timespec ts;

        if (clock_gettime(clock, &ts) < 0)
                abort();        /* CLOCK_REALTIME and CLOCK_BOOTTIME always exist */
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* A wait the policy asks for, as the event loop waits it (shortened only by a test's divisor). */
uint64_t flow_scaled_wait(Flow *f, uint64_t usec) {
        return usec / f->divisor;
}

void flow_set_error(Flow *f, const char *format, ...) {
        va_list ap;
        char *s = NULL;

        free(f->last_error);
        f->last_error = NULL;
        if (!format)
                return;
        va_start(ap, format);
        if (vasprintf(&s, format, ap) < 0)
                s = NULL;
        va_end(ap);
        f->last_error = s;
}

/* --- the wall clock ----------------------------------------------------------------- */

static int on_clock_set(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Flow *f = userdata;
        uint64_t expirations;

        /* A timerfd with TFD_TIMER_CANCEL_ON_SET reads ECANCELED once the clock is set. */
        if (read(fd, &expirations, sizeof(expirations)) < 0 && errno != ECANCELED && errno != EAGAIN)
                log_debug_errno(errno, "Reading the clock watch: %m");
        if (wallclock_check(flow_now_usec(CLOCK_REALTIME), NULL) < 0)
                return 0;
        log_notice("The wall clock is set now: sending again.");
        f->clock_watch = sd_event_source_disable_unref(f->clock_watch);
        if (f->last_error)
                flow_set_error(f, NULL);
        sd_event_source_set_enabled(f->retry_timer, SD_EVENT_OFF);
        f->retry_usec = 0;
        flow_sender_kick(f);
        flow_bus_emit_status(f);
        return 0;
}

/* 0 if the wall clock is believable; else -ETIME, the error set, and a watch for the clock being set. */
int flow_clock_check(Flow *f, char **ret_error) {
        _cleanup_free_ char *msg = NULL;
        struct itimerspec its = { .it_value.tv_sec = (time_t) INT32_MAX };
        int r, fd;

        r = wallclock_check(flow_now_usec(CLOCK_REALTIME), &msg);
        if (r >= 0)
                return 0;
        if (r != -ETIME)
                return r;
        if (!f->clock_watch) {
                fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
                if (fd < 0 || timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL) < 0 ||
                    sd_event_add_io(f->m->event, &f->clock_watch, fd, EPOLLIN, on_clock_set, f) < 0) {
                        log_warning_errno(errno, "Cannot watch for the wall clock being set: %m; sending is tried on the retry window.");
                        if (fd >= 0)
                                close(fd);
                } else
                        (void) sd_event_source_set_io_fd_own(f->clock_watch, true);
        }
        if (ret_error)
                *ret_error = TAKE_PTR(msg);
        return -ETIME;
}

/* --- the net-worker ------------------------------------------------------------------ */

static int on_net_setup(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Flow *f = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e) {
                /* The net-worker's errors never carry the proxy's credentials. */
                log_error("Net-worker: the policy's server or proxy was refused: %s", e->message ?: e->name);
                flow_set_error(f, "The net-worker refused the policy's server or proxy: %s", e->message ?: e->name);
                f->net_configured = false;
                flow_bus_emit_status(f);
        }
        return 0;
}

/* SetServer and SetProxy from the policy. The net-worker answers calls in order, so
 * the call that follows is served with them. */
static int net_configure(Flow *f) {
        const Policy *p = f->m->policy;
        int r;

        r = sd_bus_call_method_async(f->m->bus, NULL, NET_NAME, NET_PATH, NET_NAME, "SetServer", on_net_setup, f, "s",
                                     p->server_url);
        if (r < 0)
                return r;
        r = sd_bus_call_method_async(f->m->bus, NULL, NET_NAME, NET_PATH, NET_NAME, "SetProxy", on_net_setup, f, "sss",
                                     p->proxy_url, p->proxy_user, p->proxy_password);
        if (r < 0)
                return r;
        log_debug("Net-worker: given the server %s and %s.", p->server_url, *p->proxy_url ? "a proxy" : "no proxy");
        f->net_configured = true;
        return 0;
}

static int on_net_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Flow *f = userdata;

        /* A new net-worker knows no server: tell it again before the next call. */
        f->net_configured = false;
        return 0;
}

int flow_net_new_call(Manager *m, const char *member, sd_bus_message **ret) {
        return sd_bus_message_new_method_call(m->bus, ret, NET_NAME, NET_PATH, NET_NAME, member);
}

int flow_net_call(Manager *m, sd_bus_message *call, sd_bus_message_handler_t callback, void *userdata,
                  sd_bus_slot **ret_slot) {
        Flow *f = m->flow;
        int r;

        if (!f->net_configured) {
                r = net_configure(f);
                if (r < 0)
                        return r;
        }
        return sd_bus_call_async(m->bus, ret_slot, call, callback, userdata, FLOW_NET_TIMEOUT_USEC);
}

const char *flow_device_id(Manager *m) {
        return m->flow ? m->flow->device_id : NULL;
}

void flow_set_device_id(Flow *f, const char *serial) {
        char *s;

        if (!serial || !payload_device_id_valid(serial) || (f->device_id && streq(f->device_id, serial)))
                return;
        s = strdup(serial);
        if (!s)
                return;
        free(f->device_id);
        f->device_id = s;
}

void flow_learn_device_id(Manager *m, const char *serial) {
        if (m->flow)
                flow_set_device_id(m->flow, serial);
}

typedef struct DeviceIdLookup {
        Manager *m;
        FlowDeviceIdReady ready;
        void *userdata;
} DeviceIdLookup;

static int on_device_id_snapshot(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(policy_snapshot_freep) PolicySnapshot *s = NULL;
        DeviceIdLookup *l = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        _cleanup_free_ char *why = NULL;

        if (e) {
                if (asprintf(&why, "no snapshot from the collector (org.callhome.Collector1) to learn the printer's "
                             "serial: %s", e->message ?: e->name) < 0)
                        why = NULL;
        } else if (collector_snapshot_read(reply, &s) < 0)
                why = strdup("the collector's snapshot could not be read");
        else
                flow_learn_device_id(l->m, s->serial);
        if (flow_device_id(l->m))
                l->ready(l->m, flow_device_id(l->m), NULL, l->userdata);
        else
                l->ready(l->m, NULL, why ?: "the printer's serial is not known, or is not a device id the protocol "
                                            "allows (the collector's snapshot has none that is)", l->userdata);
        return 0;
}

int flow_with_device_id(Manager *m, FlowDeviceIdReady ready, void *userdata, sd_bus_slot **ret_slot) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        DeviceIdLookup *l;
        int r;

        if (flow_device_id(m)) {
                ready(m, flow_device_id(m), NULL, userdata);
                return 0;
        }
        l = malloc(sizeof(DeviceIdLookup));
        if (!l)
                return -ENOMEM;
        *l = (DeviceIdLookup) { .m = m, .ready = ready, .userdata = userdata };
        r = sd_bus_call_method_async(m->bus, &slot, "org.callhome.Collector1", "/org/callhome/Collector1",
                                     "org.callhome.Collector1", "GetSnapshot", on_device_id_snapshot, l, NULL);
        if (r < 0) {
                free(l);
                return r;
        }
        r = sd_bus_slot_set_destroy_callback(slot, free);
        if (r < 0)
                return r;
        if (ret_slot)
                *ret_slot = TAKE_PTR(slot);
        else
                r = sd_bus_slot_set_floating(slot, 1);
        return r < 0 ? r : 0;
}

/* --- the outbox -------------------------------------------------------------------- */

FlowTxn *flow_txn_free(FlowTxn *t) {
        if (!t)
                return NULL;
        free(t->txn);
        free(t->xml);
        free(t);
        return NULL;
}

bool flow_outbox_has(Flow *f, const char *txn) {
        for (size_t i = 0; i < f->n_outbox; i++)
                if (streq(f->outbox[i]->txn, txn))
                        return true;
        return false;
}

static void outbox_remove(Flow *f, FlowTxn *t) {
        for (size_t i = 0; i < f->n_outbox; i++)
                if (f->outbox[i] == t) {
                        memmove(f->outbox + i, f->outbox + i + 1, (f->n_outbox - i - 1) * sizeof(FlowTxn *));
                        f->n_outbox--;
                        break;
                }
        flow_txn_free(t);
}

/* --- the sender ---------------------------------------------------------------------- */

static void sender_done(Flow *f, const char *status) {
        FlowTxn *t = f->sending;

        log_info("%s %s: delivered (%s).", send_kind_words(t->kind), t->txn, status);
        f->push[t->kind].last_usec = flow_now_usec(CLOCK_REALTIME);
        f->sending = NULL;
        f->failures = 0;
        f->retry_usec = 0;
        flow_set_error(f, NULL);
        outbox_remove(f, t);
        if (f->pending_more)
                (void) flow_pending_next_page(f);
        flow_sender_kick(f);
        flow_bus_emit_status(f);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Flow *f = userdata;

        f->retry_usec = 0;
        flow_sender_kick(f);
        flow_bus_emit_status(f);
        return 0;
}

/* The attempt failed: wait for the retry window (or the server's Retry-After, if later). */
static void sender_failed(Flow *f, uint64_t retry_after_usec, const char *format, ...) _printf_(3, 4);
static void sender_failed(Flow *f, uint64_t retry_after_usec, const char *format, ...) {
        _cleanup_free_ char *what = NULL, *clock = NULL;
        FlowTxn *t = f->sending;
        uint64_t now, at, lo, hi, wait;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&what, format, ap) < 0)
                what = NULL;
        va_end(ap);
        f->sending = NULL;
        f->send_slot = sd_bus_slot_unref(f->send_slot);
        if (f->failures < UINT32_MAX)
                f->failures++;
        /* A certificate "not yet valid" on a device whose clock was never set is the clock's fault. */
        if (flow_clock_check(f, &clock) == -ETIME)
                flow_set_error(f, "%s %s not sent: %s", send_kind_words(t->kind), t->txn, clock);
        else
                flow_set_error(f, "%s %s not delivered: %s", send_kind_words(t->kind), t->txn, strna(what));
        now = flow_now_usec(CLOCK_BOOTTIME);
        at = retry_next(f->m->policy, f->failures, now, retry_after_usec, random_source_kernel, NULL);
        wait = flow_scaled_wait(f, at - now);
        retry_window(f->m->policy->retry_minimum_wait, f->m->policy->retry_interval_multiplier, f->failures, &lo, &hi);
        log_warning("%s; attempt %u failed, next in %" PRIu64 " ms (window %" PRIu64 "-%" PRIu64 " s%s%s).",
                    f->last_error, f->failures, wait / 1000, lo / USEC_PER_SEC, hi / USEC_PER_SEC,
                    retry_after_usec ? ", the server's Retry-After " : "",
                    retry_after_usec ? "honoured" : "");
        f->retry_usec = flow_now_usec(CLOCK_REALTIME) + wait;
        if (sd_event_source_set_time(f->retry_timer, now + wait) < 0 ||
            sd_event_source_set_enabled(f->retry_timer, SD_EVENT_ONESHOT) < 0)
                log_error("Cannot arm the retry timer: the outbox waits for the next push.");
        flow_bus_emit_status(f);
}

static int on_delivered(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Flow *f = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        f->send_slot = sd_bus_slot_unref(f->send_slot);
        if (e && !streq(e->name, "org.callhome.Audit1.Error.NotPending")) {
                sender_failed(f, 0, "the server has it, but the delivery could not be recorded: %s",
                              e->message ?: e->name);
                return 0;
        }
        sender_done(f, "recorded");
        return 0;
}

static int on_reply_recorded(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        Flow *f = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        f->send_slot = sd_bus_slot_unref(f->send_slot);
        if (e) {
                sender_failed(f, 0, "the server has it, but its reply could not be recorded: %s", e->message ?: e->name);
                return 0;
        }
        r = sd_bus_message_new_method_call(f->m->bus, &call, AUDIT_NAME, AUDIT_PATH, AUDIT_NAME, "MarkDelivered");
        if (r >= 0)
                r = sd_bus_message_append(call, "sa{ss}", f->sending->txn, 1, "operation",
                                          send_kind_operation(f->sending->kind));
        if (r >= 0)
                r = sd_bus_call_async(f->m->bus, &f->send_slot, call, on_delivered, f, 0);
        if (r < 0)
                sender_failed(f, 0, "the delivery could not be recorded: %s", strerror(-r));
        return 0;
}

/* The server's answer (or its refusal of the content) as an inbound record, then MarkDelivered. */
static void record_reply(Flow *f, const char *acked, const char *status) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_free_ char *op = NULL;
        const char *payload;
        int r = -ENOMEM;

        if (o && json_object_object_add(o, "transaction_id", json_object_new_string(acked)) == 0 &&
            json_object_object_add(o, "status", json_object_new_string(status)) == 0 &&
            asprintf(&op, "%sResponse", send_kind_operation(f->sending->kind)) >= 0) {
                payload = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
                r = sd_bus_message_new_method_call(f->m->bus, &call, AUDIT_NAME, AUDIT_PATH, AUDIT_NAME, "Append");
                if (r >= 0)
                        r = sd_bus_message_append(call, "sss", send_kind_record_type(f->sending->kind), "inbound",
                                                  f->sending->txn);
                if (r >= 0)
                        r = sd_bus_message_append_array(call, 'y', payload, strlen(payload));
                if (r >= 0)
                        r = sd_bus_message_append(call, "a{ss}", 2, "operation", op, "status", status);
                if (r >= 0)
                        r = sd_bus_call_async(f->m->bus, &f->send_slot, call, on_reply_recorded, f, 0);
        }
        if (r < 0)
                sender_failed(f, 0, "the server has it, but its reply could not be recorded: %s", strerror(-r));
}

typedef struct NetErrorDetails {
        uint32_t retry_after;
        const char *fault;
        const char *reason;
} NetErrorDetails;

static int read_detail(sd_bus_message *m, const char *key, void *userdata) {
        NetErrorDetails *d = userdata;

        if (streq(key, "retry_after"))
                return sd_bus_message_read(m, "v", "u", &d->retry_after);
        if (streq(key, "fault"))
                return sd_bus_message_read(m, "v", "s", &d->fault);
        if (streq(key, "reason"))
                return sd_bus_message_read(m, "v", "s", &d->reason);
        return sd_bus_message_skip(m, "v");
}

static int on_submit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Flow *f = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        NetErrorDetails d = {};
        const char *acked, *status, *msg;
        int r;

        f->send_slot = sd_bus_slot_unref(f->send_slot);
        if (e) {
                /* The body is (s a{sv}); an error from the bus itself has no details. */
                if (sd_bus_message_rewind(reply, true) >= 0 && sd_bus_message_skip(reply, "s") >= 0)
                        (void) bus_message_read_dict(reply, read_detail, &d);
                msg = e->message ?: e->name;
                if (streq(e->name, NET_ERROR_PREFIX "SoapFault") && d.fault && streq(d.fault, "BadRequest")) {
                        /* The server refuses this content for good: sending it again changes nothing.
                         * Recorded as its answer, and settled, so the outbox moves on. */
                        log_error("%s %s: the server refused it for good: %s", send_kind_words(f->sending->kind),
                                  f->sending->txn, d.reason ?: msg);
                        record_reply(f, f->sending->txn, "Refused");
                        return 0;
                }
                if (streq(e->name, NET_ERROR_PREFIX "InvalidRequest"))
                        f->net_configured = false;      /* e.g. a net-worker that lost its server */
                /* In words: the net-worker's own message, after the error's short name. */
                sender_failed(f, (uint64_t) d.retry_after * USEC_PER_SEC, "%s: %s",
                              strncmp(e->name, NET_ERROR_PREFIX, strlen(NET_ERROR_PREFIX)) == 0 ?
                              e->name + strlen(NET_ERROR_PREFIX) : e->name, msg);
                return 0;
        }
        r = sd_bus_message_read(reply, "ss", &acked, &status);
        if (r < 0) {
                sender_failed(f, 0, "the net-worker's answer could not be read: %s", strerror(-r));
                return 0;
        }
        log_info("%s %s: the server answered %s.", send_kind_words(f->sending->kind), f->sending->txn, status);
        record_reply(f, acked, status);
        return 0;
}

static bool sendable(Flow *f, const FlowTxn *t) {
        return !flow_why_not_send(f, t->kind, false) && (t->customer || !witness_fault(f->m));
}

void flow_sender_kick(Flow *f) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_free_ char *clock = NULL;
        FlowTxn *t = NULL;
        int r, enabled = SD_EVENT_OFF;

        if (!f->ready || f->sending)
                return;
        if (f->retry_timer && sd_event_source_get_enabled(f->retry_timer, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        for (size_t i = 0; i < f->n_outbox && !t; i++)
                if (sendable(f, f->outbox[i]))
                        t = f->outbox[i];
        if (!t)
                return;
        if (flow_clock_check(f, &clock) == -ETIME) {
                /* Tried again on the window, and at once when the clock is set (on_clock_set()). */
                f->sending = t;
                sender_failed(f, 0, "%s", clock);
                return;
        }
        r = flow_net_new_call(f->m, send_kind_operation(t->kind), &call);
        if (r >= 0)
                r = flow_request_append(call, t->kind, t->txn, t->xml, t->xml_len);
        if (r == -EBADMSG) {
                /* Not one of ours (a damaged record would have been listed as unreadable). */
                log_error("%s %s: the outbound record is not a request this policyd can send; left in the outbox.",
                          send_kind_words(t->kind), t->txn);
                flow_set_error(f, "%s %s: its outbound record cannot be sent (see the log)", send_kind_words(t->kind), t->txn);
                outbox_remove(f, t);
                flow_bus_emit_status(f);
                flow_sender_kick(f);
                return;
        }
        f->sending = t;
        if (r >= 0)
                r = flow_net_call(f->m, call, on_submit_reply, f, &f->send_slot);
        if (r < 0) {
                sender_failed(f, 0, "the call to the net-worker could not be made: %s", strerror(-r));
                return;
        }
        log_info("%s %s: sending (attempt %u).", send_kind_words(t->kind), t->txn, f->failures + 1);
}

/* --- life cycle ------------------------------------------------------------------------- */

int flow_new(Manager *m) {
        Flow *f;
        const char *e;
        unsigned d;
        int r;

        assert(m);
        f = calloc(1, sizeof(Flow));
        if (!f)
                return -ENOMEM;
        m->flow = f;            /* flow_free() takes it from here */
        f->m = m;
        f->divisor = 1;
        e = secure_getenv(FLOW_TIME_DIVISOR_ENV);
        if (e) {
                if (safe_atou(e, &d) < 0 || d < 1 || d > FLOW_TIME_DIVISOR_MAX)
                        return log_error_errno(EINVAL, "%s=%s: not a number from 1 to %u.", FLOW_TIME_DIVISOR_ENV, e,
                                               FLOW_TIME_DIVISOR_MAX);
                f->divisor = d;
                if (d > 1)
                        log_warning("%s=%u: every scheduled wait is %u times shorter (for tests only).",
                                    FLOW_TIME_DIVISOR_ENV, d, d);
        }
        for (SendKind k = 0; k < _SEND_KIND_MAX; k++) {
                f->push[k].flow = f;
                f->push[k].kind = k;
                r = sd_event_add_time(m->event, &f->push[k].timer, CLOCK_BOOTTIME, 0, 0, flow_on_schedule,
                                      &f->push[k]);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_enabled(f->push[k].timer, SD_EVENT_OFF);
        }
        r = sd_event_add_time(m->event, &f->retry_timer, CLOCK_BOOTTIME, 0, 0, on_retry, f);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(f->retry_timer, SD_EVENT_OFF);
        r = sd_bus_add_match_async(m->bus, &f->net_owner_slot,
                                   "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                   "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" NET_NAME "'",
                                   on_net_owner_changed, NULL, f);
        if (r < 0)
                return r;
        return flow_bus_register(f);
}

int flow_start(Manager *m) {
        return m->flow ? flow_start_begin(m->flow) : -ENXIO;
}

void flow_free(Manager *m) {
        Flow *f = m->flow;

        if (!f)
                return;
        for (SendKind k = 0; k < _SEND_KIND_MAX; k++) {
                sd_event_source_disable_unref(f->push[k].timer);
                flow_push_op_free(f->push[k].op);
        }
        for (size_t i = 0; i < f->n_outbox; i++)
                flow_txn_free(f->outbox[i]);
        sd_bus_slot_unref(f->send_slot);
        sd_bus_slot_unref(f->start_slot);
        sd_bus_slot_unref(f->net_owner_slot);
        sd_event_source_disable_unref(f->retry_timer);
        sd_event_source_disable_unref(f->start_timer);
        sd_event_source_disable_unref(f->clock_watch);
        free(f->shown.error);
        free(f->last_error);
        free(f->device_id);
        free(f);
        m->flow = NULL;
}

void flow_status(Flow *f, FlowStatus *ret) {
        for (SendKind k = 0; k < _SEND_KIND_MAX; k++) {
                ret->last[k] = f->push[k].last_usec;
                ret->next[k] = f->push[k].next_usec;
        }
        ret->retry = f->failures;
        ret->next_retry = f->retry_usec;
        ret->pending = (uint32_t) f->n_outbox;
        ret->error = f->last_error;
}
