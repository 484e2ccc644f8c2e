/* SPDX-License-Identifier: Apache-2.0 */
/* The server's instructions: each judged by the customer's policy, the verdict
 * and its reason audited (internal record "instruction"), then acted on and
 * its outcome reported with ReportResult. The report is a transaction of its
 * own: its outbound record ("instruction.result") is appended before it is
 * sent, the reply recorded and the transaction marked delivered; one not
 * delivered stays pending there and is tried again after the next check-in,
 * and after a restart (instruction_resume_pending()). Its id is
 * "SERIAL-iSEQ", SEQ the sequence number auditd gave the verdict record: auditd
 * never gives a number twice, and no id of the pushes ("SERIAL-EPOCH.COUNTER")
 * has a letter after the dash. Nothing is reported that was not audited. */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <time.h>

#include "bus-util.h"
#include "log.h"
#include "policyd-instruction.h"

static const char *const outcome_names[_OUTCOME_MAX] = {
        [OUTCOME_DONE] = "Done",
        [OUTCOME_REFUSED] = "Refused",
        [OUTCOME_AWAITING_CONSENT] = "AwaitingConsent",
        [OUTCOME_FAILED] = "Failed",
};

const char *outcome_to_string(Outcome o) {
        return o >= 0 && o < _OUTCOME_MAX ? outcome_names[o] : NULL;
}

/* --- transactions: ReportResult and SubmitDiagnostics ------------------------ */

typedef enum ExchangeStage {
        EXCHANGE_APPEND_OUT,
        EXCHANGE_CALL,
        EXCHANGE_APPEND_IN,
        EXCHANGE_MARK,
} ExchangeStage;

typedef struct Exchange {
        Instructions *in;
        struct Exchange *next;
        char *type, *txn, *content;
        sd_bus_message *call;           /* as built; copied for each attempt */
        ExchangeDone done;
        void *userdata;
        char *status;                   /* the server's, once it answered */
        ExchangeStage stage;
        unsigned attempts;
        bool parked;                    /* its tries ran out, or remote services are off: waits for a check-in */
        bool held;                      /* resumed or parked: counted in Instructions.n_held */
        uint64_t late_diagnostics;      /* diagnostics resumed or parked: the instruction reported Done on delivery */
        sd_bus_slot *slot;
        sd_event_source *timer;
        sd_bus_message *reply;
} Exchange;

static Exchange *exchange_free(Exchange *e) {
        if (!e)
                return NULL;
        sd_bus_slot_unref(e->slot);
        sd_event_source_disable_unref(e->timer);
        sd_bus_message_unref(e->call);
        sd_bus_message_unref(e->reply);
        free(e->type);
        free(e->txn);
        free(e->content);
        free(e->status);
        free(e);
        return NULL;
}

static void exchange_remove(Exchange *e) {
        Instructions *in = e->in;
        bool held = e->held;

        for (Exchange **p = &in->exchanges; *p; p = &(*p)->next)
                if (*p == e) {
                        *p = e->next;
                        break;
                }
        exchange_free(e);
        if (held) {
                in->n_held--;
                /* Room again: the flow reads on if it stopped at a record for want of it. */
                flow_pending_room(in->m);
        }
}

static int exchange_step(Exchange *e);

static void late_diagnostics_done(Instructions *in, uint64_t id, const char *status);
static uint64_t content_instruction(const char *content);

/* The exchange is over: `status` is the server's ("Accepted", "Duplicate"), or NULL and `error` says why not. */
static void exchange_end(Exchange *e, const char *status, const char *error) {
        if (e->done)
                e->done(e->userdata, status, error);
        if (status && e->late_diagnostics > 0)
                late_diagnostics_done(e->in, e->late_diagnostics, status);
        exchange_remove(e);
}

/* Not delivered now (its tries ran out, or remote services are off): it stays
 * in the audit log's outbox and, while fewer than EXCHANGES_HELD_MAX wait so,
 * in memory, tried again after the next check-in that reached the server
 * (instructions_checked_in()). `done` learns now that it was not delivered. */
static void exchange_park(Exchange *e, const char *why) {
        Instructions *in = e->in;
        ExchangeDone done = e->done;

        if (!e->held && in->n_held >= EXCHANGES_HELD_MAX) {
                log_error("%s %s: not delivered (%s); %u others wait already, so it stays in the audit log's outbox "
                          "until policyd starts again.", e->type, e->txn, why, EXCHANGES_HELD_MAX);
                exchange_end(e, NULL, why);
                return;
        }
        if (!e->held) {
                e->held = true;
                in->n_held++;
        }
        e->parked = true;
        e->attempts = 0;
        if (done && streq(e->type, "diagnostics"))
                /* `done` reports the instruction Failed now; a later delivery reports it Done. */
                e->late_diagnostics = content_instruction(e->content);
        e->done = NULL;
        (void) sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
        log_error("%s %s: not delivered (%s); it stays in the audit log's outbox and is tried again after the next "
                  "check-in.", e->type, e->txn, why);
        if (done)
                done(e->userdata, NULL, why);
}

static void exchange_end_errno(Exchange *e, int r, const char *what) {
        _cleanup_free_ char *error = NULL;

        log_error_errno(r, "%s %s: %s: %m", e->type, e->txn, what);
        exchange_end(e, NULL, asprintf(&error, "%s: %s", what, strerror(-r)) < 0 ? what : error);
}

static int on_exchange_step(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Exchange *e = userdata;
        const sd_bus_error *err = sd_bus_message_get_error(reply);
        int r;

        e->slot = sd_bus_slot_unref(e->slot);
        switch (e->stage) {
        case EXCHANGE_APPEND_OUT:
                if (err) {
                        log_error("Audit: the outbound record of %s %s could not be appended, not sent: %s", e->type,
                                  e->txn, err->message ?: err->name);
                        exchange_end(e, NULL, "the audit log could not record it, so it was not sent");
                        return 0;
                }
                e->stage = EXCHANGE_CALL;
                r = exchange_step(e);
                if (r < 0)
                        exchange_end_errno(e, r, "cannot send it");
                return 0;
        case EXCHANGE_CALL:
                if (err) {
                        bool busy = streq(err->name, NET_ERROR_BUSY);

                        if (!busy)
                                e->attempts++;
                        log_warning("%s %s: attempt %u failed: %s", e->type, e->txn, e->attempts, err->message ?: err->name);
                        if (e->attempts < REPORT_ATTEMPTS_MAX) {
                                Manager *m = e->in->m;
                                uint64_t now = 0, at;

                                (void) sd_event_now(m->event, CLOCK_BOOTTIME, &now);
                                at = retry_next(m->policy, MAX(e->attempts, 1U), now, 0, random_source_kernel, NULL);
                                r = sd_event_source_set_time(e->timer, at);
                                if (r >= 0)
                                        r = sd_event_source_set_enabled(e->timer, SD_EVENT_ONESHOT);
                                if (r >= 0)
                                        return 0;
                        }
                        exchange_park(e, err->message ?: err->name);
                        return 0;
                }
                e->reply = sd_bus_message_ref(reply);
                e->stage = EXCHANGE_APPEND_IN;
                r = exchange_step(e);
                if (r < 0)
                        exchange_end_errno(e, r, "the server's reply could not be recorded");
                return 0;
        case EXCHANGE_APPEND_IN:
                if (err)
                        log_error("Audit: the reply to %s %s could not be recorded: %s", e->type, e->txn,
                                  err->message ?: err->name);
                e->stage = EXCHANGE_MARK;
                r = exchange_step(e);
                if (r < 0)
                        exchange_end_errno(e, r, "cannot mark it delivered");
                return 0;
        case EXCHANGE_MARK:
                if (err)
                        log_error("Audit: %s %s could not be marked delivered: %s", e->type, e->txn, err->message ?: err->name);
                else
                        log_info("%s %s: delivered (%s).", e->type, e->txn, e->status);
                exchange_end(e, e->status, NULL);
                return 0;
        }
        return 0;
}

static int on_exchange_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Exchange *e = userdata;
        int r = exchange_step(e);

        if (r < 0)
                exchange_end_errno(e, r, "cannot try again; it stays in the audit log's outbox");
        return 0;
}

static int exchange_step(Exchange *e) {
        Manager *m = e->in->m;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        switch (e->stage) {
        case EXCHANGE_APPEND_OUT:
                r = sd_bus_message_new_method_call(m->bus, &msg, "org.callhome.Audit1", "/org/callhome/Audit1",
                                                   "org.callhome.Audit1", "Append");
                if (r >= 0)
                        r = sd_bus_message_append(msg, "sss", e->type, "outbound", e->txn);
                if (r >= 0)
                        r = sd_bus_message_append_array(msg, 'y', e->content, strlen(e->content));
                if (r >= 0)
                        r = sd_bus_message_append(msg, "a{ss}", 0);
                if (r < 0)
                        return r;
                return sd_bus_call_async(m->bus, &e->slot, msg, on_exchange_step, e, 0);
        case EXCHANGE_CALL:
                if (!m->policy->remote_services) {
                        exchange_park(e, "remote services are off");
                        return 0;
                }
                /* A sent message is sealed: each attempt is a fresh copy of the one built. */
                r = sd_bus_message_rewind(e->call, true);
                if (r >= 0)
                        r = sd_bus_message_new_method_call(m->bus, &msg, sd_bus_message_get_destination(e->call),
                                                           sd_bus_message_get_path(e->call),
                                                           sd_bus_message_get_interface(e->call),
                                                           sd_bus_message_get_member(e->call));
                if (r >= 0)
                        r = sd_bus_message_copy(msg, e->call, true);
                if (r < 0)
                        return r;
                log_info("%s %s: sending (attempt %u).", e->type, e->txn, e->attempts + 1);
                return flow_net_call(m, msg, on_exchange_step, e, &e->slot);
        case EXCHANGE_APPEND_IN: {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                const char *acked = NULL, *status = NULL, *text;

                r = sd_bus_message_read(e->reply, "ss", &acked, &status);
                if (r < 0 || !o)
                        return r < 0 ? r : -ENOMEM;
                e->status = strdup(status);
                if (!e->status)
                        return -ENOMEM;
                log_info("%s %s: the server answered %s.", e->type, e->txn, status);
                json_object_object_add(o, "transaction", json_object_new_string(acked));
                json_object_object_add(o, "status", json_object_new_string(status));
                text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
                r = sd_bus_message_new_method_call(m->bus, &msg, "org.callhome.Audit1", "/org/callhome/Audit1",
                                                   "org.callhome.Audit1", "Append");
                if (r >= 0)
                        r = sd_bus_message_append(msg, "sss", e->type, "inbound", e->txn);
                if (r >= 0)
                        r = sd_bus_message_append_array(msg, 'y', text, strlen(text));
                if (r >= 0)
                        r = sd_bus_message_append(msg, "a{ss}", 0);
                if (r < 0)
                        return r;
                return sd_bus_call_async(m->bus, &e->slot, msg, on_exchange_step, e, 0);
        }
        case EXCHANGE_MARK:
                return sd_bus_call_method_async(m->bus, &e->slot, "org.callhome.Audit1", "/org/callhome/Audit1",
                                                "org.callhome.Audit1", "MarkDelivered", on_exchange_step, e, "sa{ss}",
                                                e->txn, 0);
        }
        return -EINVAL;
}

/* A new exchange of `call` at `stage`, linked into the list, its timer off. */
static int exchange_new(Instructions *in, const char *type, const char *txn, const char *content, sd_bus_message *call,
                        ExchangeStage stage, Exchange **ret) {
        Exchange *e;
        int r;

        e = calloc(1, sizeof(Exchange));
        if (!e)
                return -ENOMEM;
        *e = (Exchange) { .in = in, .stage = stage, .call = sd_bus_message_ref(call) };
        e->type = strdup(type);
        e->txn = strdup(txn);
        e->content = strdup(content);
        if (!e->type || !e->txn || !e->content) {
                exchange_free(e);
                return -ENOMEM;
        }
        r = sd_bus_message_seal(call, 1, 0);
        if (r >= 0)
                r = sd_event_add_time(in->m->event, &e->timer, CLOCK_BOOTTIME, UINT64_MAX, 0, on_exchange_timer, e);
        if (r >= 0)
                r = sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
        if (r < 0) {
                exchange_free(e);
                return r;
        }
        e->next = in->exchanges;
        in->exchanges = e;
        *ret = e;
        return 0;
}

int instruction_exchange(Instructions *in, const char *type, const char *txn, json_object *content,
                         sd_bus_message *call, ExchangeDone done, void *userdata) {
        Exchange *e;
        int r;

        assert(in);
        assert(content);
        assert(call);
        r = exchange_new(in, type, txn, json_object_to_json_string_ext(content, JSON_C_TO_STRING_PLAIN) ?: "", call,
                         EXCHANGE_APPEND_OUT, &e);
        if (r < 0)
                return r;
        e->done = done;
        e->userdata = userdata;
        r = exchange_step(e);
        if (r < 0)
                exchange_remove(e);
        return r;
}

void instructions_checked_in(Manager *m) {
        Instructions *in = m->instructions;
        Exchange *next;
        int r;

        if (!in)
                return;
        for (Exchange *e = in->exchanges; e; e = next) {
                next = e->next;
                /* Being recorded, or on the wire: not waiting. */
                if (e->stage != EXCHANGE_CALL || e->slot)
                        continue;
                log_info("%s %s: the server was reached; trying again now.", e->type, e->txn);
                e->parked = false;
                (void) sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
                r = exchange_step(e);
                if (r < 0)
                        exchange_end_errno(e, r, "cannot try again; it stays in the audit log's outbox");
        }
}

/* --- ids, time ------------------------------------------------------------------ */

const char *instruction_device_id(Instructions *in) {
        return flow_device_id(in->m);
}

int instruction_txn_id(Instructions *in, uint64_t seq, char **ret) {
        const char *serial = instruction_device_id(in);

        if (!serial)
                return -EADDRNOTAVAIL;
        return asprintf(ret, "%s-i%" PRIu64, serial, seq) < 0 ? -ENOMEM : 0;
}

void instruction_time_now(char ret[static 21]) {
        struct timespec ts;
        struct tm tm;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        (void) gmtime_r(&ts.tv_sec, &tm);
        (void) strftime(ret, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* --- the verdict and its report --------------------------------------------------- */

typedef struct Verdict {
        Instructions *in;
        uint64_t id;
        Outcome outcome;
        char *detail;
        VerdictDone done;
        void *userdata;
} Verdict;

static void verdict_free(void *userdata) {
        Verdict *v = userdata;

        free(v->detail);
        free(v);
}

/* The Detail the protocol takes: at most 256 bytes, cut at a character boundary. */
static void detail_cut(char *s) {
        size_t n = strlen(s);

        if (n <= RESULT_DETAIL_MAX)
                return;
        n = RESULT_DETAIL_MAX;
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                n--;
        s[n] = 0;
}

typedef struct Report {
        uint64_t id, seq;
        Outcome outcome;
        char detail[RESULT_DETAIL_MAX + 1];
} Report;

/* The ReportResult call: its outbound record holds all it needs, so it is made again from that after a restart. */
static int report_call_new(Instructions *in, const char *device_id, const char *txn, uint64_t id, const char *outcome,
                           const char *detail, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        int r;

        r = flow_net_new_call(in->m, "ReportResult", &call);
        if (r >= 0)
                r = sd_bus_message_append(call, "sstss", device_id, txn, id, outcome, detail);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(call);
        return 0;
}

static void report_send(Manager *m, const char *device_id, const char *error, void *userdata) {
        _cleanup_free_ Report *rep = userdata;
        Instructions *in = m->instructions;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        _cleanup_free_ char *txn = NULL;
        int r;

        if (!device_id) {
                log_error("Instruction %" PRIu64 ": %s not reported: %s.", rep->id, outcome_to_string(rep->outcome),
                          error);
                return;
        }
        r = o ? instruction_txn_id(in, rep->seq, &txn) : -ENOMEM;
        if (r >= 0) {
                json_object_object_add(o, "instruction", json_object_new_uint64(rep->id));
                json_object_object_add(o, "outcome", json_object_new_string(outcome_to_string(rep->outcome)));
                json_object_object_add(o, "detail", json_object_new_string(rep->detail));
                r = report_call_new(in, device_id, txn, rep->id, outcome_to_string(rep->outcome), rep->detail, &call);
        }
        if (r >= 0)
                r = instruction_exchange(in, "instruction.result", txn, o, call, NULL, NULL);
        if (r < 0)
                log_error_errno(r, "Instruction %" PRIu64 ": cannot report %s: %m", rep->id, outcome_to_string(rep->outcome));
}

static int on_verdict_audited(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Verdict *v = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint64_t seq = 0;
        int r;

        if (e)
                log_error("Audit: the verdict on instruction %" PRIu64 " could not be recorded, so it is not reported: %s",
                          v->id, e->message ?: e->name);
        else if (sd_bus_message_read(reply, "t", &seq) < 0 || seq == 0)
                log_error("Audit: the reply to the verdict on instruction %" PRIu64 " is unreadable.", v->id);
        else if (v->outcome != OUTCOME_NONE) {
                Report *rep = malloc(sizeof(Report));

                if (rep) {
                        *rep = (Report) { .id = v->id, .seq = seq, .outcome = v->outcome };
                        strncpy(rep->detail, v->detail, RESULT_DETAIL_MAX);
                        rep->detail[RESULT_DETAIL_MAX] = 0;
                }
                r = rep ? flow_with_device_id(v->in->m, report_send, rep, NULL) : -ENOMEM;
                if (r < 0) {
                        free(rep);
                        log_error_errno(r, "Instruction %" PRIu64 ": cannot report %s: %m", v->id,
                                        outcome_to_string(v->outcome));
                }
        }
        if (v->done)
                v->done(v->in, e ? 0 : seq, v->userdata);
        return 0;
}

int instruction_verdict(Instructions *in, uint64_t id, const char *kind, const char *verdict, Outcome outcome,
                        const char *why, json_object *extra, VerdictDone done, void *userdata) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *x = extra;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        Verdict *v;
        int r;

        assert(in);
        if (!o)
                return -ENOMEM;
        log_info("Instruction %" PRIu64 " (%s): %s: %s", id, kind, verdict, why);
        json_object_object_add(o, "instruction", json_object_new_uint64(id));
        json_object_object_add(o, "kind", json_object_new_string(kind));
        json_object_object_add(o, "verdict", json_object_new_string(verdict));
        json_object_object_add(o, "why", json_object_new_string(why));
        if (x)
                json_object_object_add(o, "arguments", TAKE_PTR(x));
        v = calloc(1, sizeof(Verdict));
        if (!v)
                return -ENOMEM;
        *v = (Verdict) { .in = in, .id = id, .outcome = outcome, .done = done, .userdata = userdata,
                         .detail = strdup(why) };
        if (!v->detail) {
                verdict_free(v);
                return -ENOMEM;
        }
        detail_cut(v->detail);
        r = manager_audit_append(in->m, "instruction", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), NULL,
                                 on_verdict_audited, v, &slot);
        if (r < 0) {
                verdict_free(v);
                return r;
        }
        /* The verdict lives as long as its call: freed after the reply, or with the bus. */
        r = sd_bus_slot_set_destroy_callback(slot, verdict_free);
        if (r >= 0)
                r = sd_bus_slot_set_floating(slot, 1);
        return r;
}

/* --- pending since an earlier run ------------------------------------------------ */

DEFINE_TRIVIAL_CLEANUP_FUNC(json_tokener *, json_tokener_free);

/* The "instruction" an outbound record's content names; 0 if none. */
static uint64_t json_instruction(json_object *o) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, "instruction", &v) || !json_object_is_type(v, json_type_int))
                return 0;
        return json_object_get_uint64(v);
}

static uint64_t content_instruction(const char *content) {
        _cleanup_(json_object_putp) json_object *o = json_tokener_parse(content);

        return json_instruction(o);
}

static const char *content_string(json_object *o, const char *key) {
        json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ?
                json_object_get_string(v) : NULL;
}

static void late_diagnostics_done(Instructions *in, uint64_t id, const char *status) {
        _cleanup_free_ char *why = NULL;
        int r;

        if (asprintf(&why, "diagnostics sent (%s) on a later try", status) < 0)
                return (void) log_oom();
        r = instruction_verdict(in, id, "DiagnosticsRequested", "done", OUTCOME_DONE, why, NULL, NULL, NULL);
        if (r < 0)
                log_error_errno(r, "Instruction %" PRIu64 ": cannot record its outcome: %m", id);
}

/* SubmitDiagnostics again from its record: the entries and the time recorded (a
 * record without a time, from before it was recorded, goes with the time now). */
static int diagnostics_call_new(Instructions *in, const char *device_id, const char *txn, uint64_t id, json_object *o,
                                sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        const char *at = content_string(o, "time");
        json_object *entries;
        char now[21];
        int r;

        if (!json_object_object_get_ex(o, "entries", &entries) || !json_object_is_type(entries, json_type_object))
                return -EBADMSG;
        if (!at) {
                instruction_time_now(now);
                at = now;
        }
        r = flow_net_new_call(in->m, "SubmitDiagnostics", &call);
        if (r >= 0)
                r = sd_bus_message_append(call, "ssts", device_id, txn, id, at);
        if (r >= 0)
                r = sd_bus_message_open_container(call, 'a', "(ss)");
        json_object_object_foreach(entries, field, value) {
                if (r < 0)
                        break;
                if (!json_object_is_type(value, json_type_string))
                        return -EBADMSG;
                r = sd_bus_message_append(call, "(ss)", field, json_object_get_string(value));
        }
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(call);
        return 0;
}

/* The call a pending record of `type` (content `o`, transaction `txn`) was made
 * with: the device id is the one the id was made of ("SERIAL-iSEQ"). -EBADMSG:
 * the record is not one this policyd made. */
static int pending_call_new(Instructions *in, const char *type, const char *txn, json_object *o, sd_bus_message **ret) {
        _cleanup_free_ char *device_id = NULL;
        const char *dash = NULL, *outcome, *detail;
        uint64_t id;

        for (const char *p = strstr(txn, "-i"); p; p = strstr(p + 1, "-i"))
                dash = p;
        if (!dash || dash[2] < '1' || dash[2] > '9' || dash[2 + strspn(dash + 2, "0123456789")] != 0)
                return -EBADMSG;
        device_id = strndup(txn, dash - txn);
        if (!device_id)
                return -ENOMEM;
        if (!payload_device_id_valid(device_id))
                return -EBADMSG;
        id = json_instruction(o);
        if (id == 0)
                return -EBADMSG;
        if (streq(type, "diagnostics"))
                return diagnostics_call_new(in, device_id, txn, id, o, ret);
        outcome = content_string(o, "outcome");
        detail = content_string(o, "detail");
        if (!outcome || !detail)
                return -EBADMSG;
        return report_call_new(in, device_id, txn, id, outcome, detail, ret);
}

int instruction_resume_pending(Manager *m, const char *type, const char *txn, const void *payload, size_t size) {
        _cleanup_(json_tokener_freep) json_tokener *tok = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        Instructions *in = m->instructions;
        Exchange *e;
        int r;

        assert(in);
        if (!streq(type, "instruction.result") && !streq(type, "diagnostics"))
                return 0;
        for (e = in->exchanges; e; e = e->next)
                if (streq(e->txn, txn))
                        return 1;       /* under way already: never two at once */
        if (in->n_held >= EXCHANGES_HELD_MAX)
                return -ENOBUFS;
        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        if (size <= INT_MAX)
                o = json_tokener_parse_ex(tok, payload, (int) size);
        r = o && json_object_is_type(o, json_type_object) ? pending_call_new(in, type, txn, o, &call) : -EBADMSG;
        if (r == -EBADMSG) {
                log_error("%s %s: its outbound record is not one this policyd can send again; left in the outbox.",
                          type, txn);
                return 1;
        }
        if (r < 0)
                return r;
        r = exchange_new(in, type, txn, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) ?: "", call,
                         EXCHANGE_CALL, &e);
        if (r < 0)
                return r;
        e->held = true;
        in->n_held++;
        if (streq(type, "diagnostics"))
                e->late_diagnostics = json_instruction(o);
        log_info("%s %s: pending since an earlier run; sending it again with the same id.", type, txn);
        r = exchange_step(e);
        if (r < 0)
                exchange_end_errno(e, r, "cannot send it");
        return 1;
}

/* --- jobs ------------------------------------------------------------------------ */

Job *job_new(Instructions *in, uint64_t id, const char *kind) {
        Job *j;

        if (in->n_jobs >= INSTRUCTION_JOBS_MAX)
                return NULL;
        j = calloc(1, sizeof(Job));
        if (!j)
                return NULL;
        *j = (Job) { .owner = in, .id = id, .kind = kind, .staged_fd = -EBADF, .next = in->jobs };
        in->jobs = j;
        in->n_jobs++;
        return j;
}

void job_free(Job *j) {
        if (!j)
                return;
        for (Job **p = &j->owner->jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        j->owner->n_jobs--;
                        break;
                }
        software_job_clear(j);
        sd_bus_slot_unref(j->slot);
        sd_event_source_disable_unref(j->timer);
        if (j->approval)
                (void) sd_bus_reply_method_errorf(j->approval, SD_BUS_ERROR_FAILED, "The request was withdrawn.");
        sd_bus_message_unref(j->approval);
        free(j->reason);
        strv_free(j->items);
        free(j->package);
        free(j->version);
        free(j->sha256);
        free(j);
}

Job *job_find(Instructions *in, uint64_t id) {
        for (Job *j = in->jobs; j; j = j->next)
                if (j->id == id)
                        return j;
        return NULL;
}

/* --- the part's life ----------------------------------------------------------------- */

int instructions_new(Manager *m) {
        Instructions *in;
        int r;

        assert(m);
        in = calloc(1, sizeof(Instructions));
        if (!in)
                return -ENOMEM;
        *in = (Instructions) { .m = m, .staging_fd = -EBADF, .drop_fd = -EBADF };
        m->instructions = in;
        if (m->consent_timeout_usec == 0)
                m->consent_timeout_usec = CONSENT_TIMEOUT_DEFAULT_USEC;
        if (m->staging_dir) {
                _cleanup_free_ char *error = NULL;

                in->staging_fd = open(m->staging_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (in->staging_fd < 0)
                        return log_error_errno(errno, "Staging directory %s: cannot open it: %m", m->staging_dir);
                in->drop_fd = open(m->drop_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (in->drop_fd < 0)
                        return log_error_errno(errno, "Drop directory %s: cannot open it: %m", m->drop_dir);
                if (m->code_signing_anchor) {
                        r = software_anchor_load(m->code_signing_anchor, &in->anchor, &error);
                        if (r < 0)
                                return log_error_errno(r, "Software: %s", strna(error));
                }
        }
        return consent_register(in);
}

int instructions_start(Manager *m) {
        if (m->staging_dir && (!m->code_signing_anchor || !m->model))
                log_warning("Software: no --code-signing-anchor= or --model=: every offer will be refused.");
        return 0;
}

void instructions_free(Manager *m) {
        Instructions *in = m->instructions;

        if (!in)
                return;
        while (in->jobs)
                job_free(in->jobs);
        while (in->exchanges) {
                Exchange *e = in->exchanges;

                in->exchanges = e->next;
                exchange_free(e);
        }
        sd_bus_slot_unref(in->vtable_slot);
        X509_free(in->anchor);
        safe_close(in->staging_fd);
        safe_close(in->drop_fd);
        free(in);
        m->instructions = NULL;
}

/* --- judging one instruction -------------------------------------------------------------- */

static bool seen(Instructions *in, uint64_t id) {
        for (size_t i = 0; i < MIN(in->n_seen, (size_t) INSTRUCTIONS_SEEN_MAX); i++)
                if (in->seen[i] == id)
                        return true;
        return false;
}

void instruction_mark_seen(Instructions *in, uint64_t id) {
        in->seen[in->n_seen++ % INSTRUCTIONS_SEEN_MAX] = id;
}

const char *instruction_service_off(const Policy *p, PolicyService s) {
        if (!p->remote_services)
                return "remote services are off in the customer's policy";
        if (p->mode[s] == SERVICE_MODE_OFF)
                return "this service is off in the customer's policy";
        return NULL;
}

static int handle_send(Instructions *in, uint64_t id, const char *kind, SendKind what, PolicyService service) {
        _cleanup_free_ char *why = NULL;
        const char *off = instruction_service_off(in->m->policy, service);
        int r;

        if (off)
                return instruction_verdict(in, id, kind, "refused", OUTCOME_REFUSED, off, NULL, NULL, NULL);
        if (asprintf(&why, "instruction %" PRIu64, id) < 0)
                return -ENOMEM;
        r = flow_send_now(in->m, what, why);
        if (r >= 0 || r == -EBUSY)
                return instruction_verdict(in, id, kind, "done", OUTCOME_DONE,
                                           r >= 0 ? "sent now" : "a push of this kind was already under way", NULL,
                                           NULL, NULL);
        if (r == -EPERM)
                return instruction_verdict(in, id, kind, "refused", OUTCOME_REFUSED,
                                           "the customer's policy does not allow it now", NULL, NULL, NULL);
        free(why);
        if (asprintf(&why, "cannot send now: %s", strerror(-r)) < 0)
                return -ENOMEM;
        return instruction_verdict(in, id, kind, "failed", OUTCOME_FAILED, why, NULL, NULL, NULL);
}

static int read_seconds(sd_bus_message *msg, const char *key, void *userdata) {
        if (streq(key, "seconds"))
                return sd_bus_message_read(msg, "v", "u", (uint32_t *) userdata);
        return sd_bus_message_skip(msg, "v");
}

static int handle_interval(Instructions *in, uint64_t id, const char *kind, sd_bus_message *reply) {
        _cleanup_free_ char *why = NULL;
        const Policy *p = in->m->policy;
        uint32_t asked = 0, kept;
        json_object *args;
        int r;

        r = bus_message_read_dict(reply, read_seconds, &asked);
        if (r < 0)
                return r;
        args = json_object_new_object();
        if (!args)
                return -ENOMEM;
        json_object_object_add(args, "seconds", json_object_new_uint64(asked));
        if (asked == 0)
                return instruction_verdict(in, id, kind, "refused", OUTCOME_REFUSED, "no interval given", args, NULL,
                                           NULL);
        kept = checkin_set_interval(in->m, asked);
        if (asprintf(&why, "check-in interval %" PRIu32 " s (asked %" PRIu32 " s; the policy allows %" PRIu32 " to %" PRIu32 " s)",
                     kept, asked, p->check_in_min, p->check_in_max) < 0) {
                json_object_put(args);
                return -ENOMEM;
        }
        return instruction_verdict(in, id, kind, "done", OUTCOME_DONE, why, args, NULL, NULL);
}

static int handle_held(Instructions *in, uint64_t id, const char *kind, PolicyService service, sd_bus_message *reply) {
        const Policy *p = in->m->policy;
        const char *off;
        Job *j;
        int r;

        j = job_new(in, id, kind);
        if (!j) {
                r = sd_bus_message_skip(reply, "a{sv}");
                if (r < 0)
                        return r;
                return instruction_verdict(in, id, kind, "refused", OUTCOME_REFUSED,
                                           "too many instructions are waiting for consent or their window", NULL,
                                           NULL, NULL);
        }
        r = service == POLICY_SERVICE_DIAGNOSTICS ? diagnostics_read_args(j, reply) : software_read_args(j, reply);
        if (r < 0) {
                job_free(j);
                return r;
        }
        if (r == 0) {
                job_free(j);
                return instruction_verdict(in, id, kind, "refused", OUTCOME_REFUSED, "its arguments are incomplete",
                                           NULL, NULL, NULL);
        }
        off = instruction_service_off(p, service);
        if (!off && service == POLICY_SERVICE_SOFTWARE_UPDATES && in->staging_fd < 0)
                off = "this device has no staging and drop directory for software";
        /* One job per package: two would write one staging file. */
        for (Job *other = in->jobs; !off && j->package && other; other = other->next)
                if (other != j && other->package && streq(other->package, j->package))
                        off = "this package is already being handled for an earlier instruction";
        if (off) {
                job_free(j);
                return instruction_verdict(in, id, kind, "refused", OUTCOME_REFUSED, off, NULL, NULL, NULL);
        }
        /* Diagnostics are never automatic: the policy does not allow it, and they are held all the same. */
        if (service == POLICY_SERVICE_DIAGNOSTICS || p->mode[service] == SERVICE_MODE_ASK)
                r = consent_hold(j, service == POLICY_SERVICE_DIAGNOSTICS ? "diagnostics are never sent without consent"
                                                                           : "software updates are set to ask");
        else
                r = software_schedule(j);
        if (r < 0)
                job_free(j);
        return r;
}

int instruction_handle(Manager *m, uint64_t id, const char *kind, sd_bus_message *reply) {
        Instructions *in = m->instructions;
        int r;

        assert(in);
        assert(kind);
        assert(reply);
        if (seen(in, id)) {
                log_debug("Instruction %" PRIu64 " (%s) came again; it was judged already.", id, kind);
                return sd_bus_message_skip(reply, "a{sv}");
        }
        if (streq(kind, "SendMeterReads") || streq(kind, "SendSupplies")) {
                bool meters = streq(kind, "SendMeterReads");

                r = sd_bus_message_skip(reply, "a{sv}");
                if (r < 0)
                        return r;
                r = handle_send(in, id, kind, meters ? SEND_METER_READS : SEND_SUPPLIES,
                                meters ? POLICY_SERVICE_METER_READS : POLICY_SERVICE_SUPPLIES);
        } else if (streq(kind, "SetCheckInInterval"))
                r = handle_interval(in, id, kind, reply);
        else if (streq(kind, "SoftwareAvailable"))
                r = handle_held(in, id, "SoftwareAvailable", POLICY_SERVICE_SOFTWARE_UPDATES, reply);
        else if (streq(kind, "DiagnosticsRequested"))
                r = handle_held(in, id, "DiagnosticsRequested", POLICY_SERVICE_DIAGNOSTICS, reply);
        else {
                r = sd_bus_message_skip(reply, "a{sv}");
                if (r < 0)
                        return r;
                r = instruction_verdict(in, id, kind, "refused", OUTCOME_REFUSED, "unknown instruction", NULL, NULL,
                                        NULL);
        }
        if (r < 0)
                return log_error_errno(r, "Instruction %" PRIu64 " (%s): cannot judge it: %m", id, kind);
        /* Judged: if it comes again (its acknowledgement lost), it is not acted on twice. */
        instruction_mark_seen(in, id);
        return 0;
}
