/* SPDX-License-Identifier: Apache-2.0 */
/* org.callhome.NetWorker1 (ipc/org.callhome.NetWorker1.xml): the vtable,
 * D-Bus arguments to SOAP requests, SOAP replies and NwErrors to D-Bus.
 * Exchanges run in the event loop: a method starts one and returns; its
 * answer is sent when it ends. A call that needs the connection meanwhile
 * waits, and is served in order once the exchange ends; only beyond
 * NW_CALLS_WAITING_MAX waiting calls is one answered Busy at once. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "bus-util.h"
#include "log.h"
#include "nw-manager.h"

/* Calls a caller may have whose replies it has not been seen to read (bus-peers.h): policyd
 * has a few under way; a GetSoftware reply is at most a range of the package. */
#define NW_CALLS_UNREAD_MAX 16U

#define NW_CALLS_WAITING_MAX ELEMENTSOF(((NwManager *) NULL)->waiting)

static sd_bus_message_handler_t method_handler(const char *member);
static int reply_nw_error(sd_bus_message *call, const NwError *e, int r);

/* Every member: policyd's user or root (the bus policy says the same). */
static int check_caller(NwManager *m, sd_bus_message *call, sd_bus_error *error) {
        return bus_check_caller(call, m->policy_uid, (gid_t) -1, error);
}

/* The caller's check, then the call's turn on the connection: 0, go on now; 1, the
 * call waits for the exchange under way (or, too many waiting, was answered Busy). */
static int check_caller_and_turn(NwManager *m, sd_bus_message *call, sd_bus_error *error) {
        _cleanup_(nw_error_done) NwError e = {};
        int r;

        r = check_caller(m, call, error);
        if (r < 0)
                return r;
        if (m->dispatching || (!nw_client_busy(m->client) && m->n_waiting == 0))
                return 0;
        if (m->n_waiting >= NW_CALLS_WAITING_MAX)
                return reply_nw_error(call, &e, nw_error_set(&e, -EBUSY, NW_ERROR_BUSY,
                                                             "Another exchange is under way and %u calls wait for it",
                                                             m->n_waiting));
        m->waiting[m->n_waiting++] = sd_bus_message_ref(call);
        log_debug("%s from %s waits for the exchange under way (%u waiting).", sd_bus_message_get_member(call), strna(sd_bus_message_get_sender(call)), m->n_waiting);
        return 1;
}

/* Serves the waiting calls, in order, until one starts an exchange. */
static int on_dispatch(sd_event_source *s, void *userdata) {
        NwManager *m = userdata;

        m->dispatch_source = sd_event_source_disable_unref(m->dispatch_source);
        m->dispatching = true;
        while (m->n_waiting > 0 && !nw_client_busy(m->client)) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = m->waiting[0];
                sd_bus_message_handler_t fn;
                int r;

                memmove(m->waiting, m->waiting + 1, --m->n_waiting * sizeof(m->waiting[0]));
                fn = method_handler(sd_bus_message_get_member(call));
                r = fn ? sd_bus_message_rewind(call, true) : -EBADR;
                if (r >= 0)
                        r = fn(call, m, &error);
                if (r < 0)
                        (void) (sd_bus_error_is_set(&error) ? sd_bus_reply_method_error(call, &error)
                                                            : sd_bus_reply_method_errno(call, r, NULL));
        }
        m->dispatching = false;
        return 0;
}

/* An exchange ended: the calls waiting for it are served from the event loop, not from within curl. */
static void exchange_ended(NwManager *m) {
        if (m->n_waiting == 0 || m->dispatch_source)
                return;
        if (sd_event_add_defer(m->event, &m->dispatch_source, on_dispatch, m) < 0)
                log_error("Out of memory: %u calls wait until the next exchange ends.", m->n_waiting);
}

void nw_bus_unregister(NwManager *m) {
        m->dispatch_source = sd_event_source_disable_unref(m->dispatch_source);
        for (unsigned i = 0; i < m->n_waiting; i++)
                sd_bus_message_unref(m->waiting[i]);
        m->n_waiting = 0;
}

static int append_sv_string(sd_bus_message *reply, const char *key, const char *value) {
        return value ? sd_bus_message_append(reply, "{sv}", key, "s", value) : 0;
}

/* A typed error whose body is (s a{sv}): curl's, OpenSSL's or libxml2's text and the details. */
static int reply_nw_error(sd_bus_message *call, const NwError *e, int r) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name = nw_error_kind_to_dbus_name(e->kind);
        const NwFault *f = &e->fault;
        int k;

        if (e->kind == NW_ERROR_NONE || !name)
                return r; /* out of memory and the like: sd-bus answers with the errno */
        k = sd_bus_message_new_method_error(call, &reply, &SD_BUS_ERROR_MAKE_CONST(name, e->message));
        if (k < 0)
                return k;
        k = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (k >= 0 && e->http_status > 0)
                k = sd_bus_message_append(reply, "{sv}", "http_status", "x", (int64_t) e->http_status);
        if (k >= 0 && e->kind == NW_ERROR_RETRY_AFTER)
                k = sd_bus_message_append(reply, "{sv}", "retry_after", "u",
                                          e->has_fault ? f->seconds : e->retry_after);
        if (k >= 0 && e->has_fault) {
                k = sd_bus_message_append(reply, "{sv}{sv}", "fault", "s", nw_fault_detail_to_string(f->detail),
                                          "fault_code", "s", f->server ? "Server" : "Client");
                if (k >= 0)
                        k = append_sv_string(reply, "fault_string", f->string);
                if (k >= 0)
                        k = append_sv_string(reply, "reason", f->reason);
                if (k >= 0 && f->detail == NW_FAULT_LOG_FORK)
                        k = sd_bus_message_append(reply, "{sv}", "acked_size", "t", f->acked_size);
                if (k >= 0)
                        k = append_sv_string(reply, "acked_root", f->acked_root);
        }
        if (k >= 0)
                k = sd_bus_message_close_container(reply);
        if (k >= 0)
                k = sd_bus_send(NULL, reply, NULL);
        return k < 0 ? k : 1;
}

static int invalid(sd_bus_message *call, NwError *e, const char *what) {
        return reply_nw_error(call, e, nw_error_set(e, -EINVAL, NW_ERROR_INVALID_REQUEST, "%s", what));
}

/* "" stands for an absent optional element. */
static const char *empty_to_null(const char *s) {
        return s && s[0] ? s : NULL;
}

/* ---- exchanges: started here, answered from the event loop when they end ---- */

typedef int (*ReplyFunc)(sd_bus_message *call, const SoapReply *reply);

typedef struct Pending {
        NwManager *m;
        sd_bus_message *call;
        ReplyFunc reply;
} Pending;

static void pending_free(Pending *p) {
        sd_bus_message_unref(p->call);
        free(p);
}

/* An answer that cannot be sent (out of memory) leaves the caller to its timeout. */
static void pending_answer(Pending *p, int k) {
        NwManager *m = p->m;

        if (k < 0)
                (void) sd_bus_reply_method_errno(p->call, k, NULL);
        pending_free(p);
        exchange_ended(m);
}

static void on_call_done(NwClient *c, int r, const SoapReply *reply, NwError *e, void *userdata) {
        Pending *p = userdata;

        pending_answer(p, r < 0 ? reply_nw_error(p->call, e, r) : p->reply(p->call, reply));
}

/* Starts the exchange req (its strings may be borrowed from call: the message is
 * built before this returns); fn answers call when it ends. A call that arrives
 * while another exchange is under way is answered Busy at once. */
static int start_call(NwManager *m, sd_bus_message *call, const SoapRequest *req, ReplyFunc fn) {
        _cleanup_(nw_error_done) NwError e = {};
        Pending *p;
        int r;

        p = calloc(1, sizeof(Pending));
        if (!p)
                return -ENOMEM;
        p->m = m;
        p->call = sd_bus_message_ref(call);
        p->reply = fn;
        r = nw_client_call_start(m->client, req, on_call_done, p, &e);
        if (r < 0) {
                pending_free(p);
                return reply_nw_error(call, &e, r);
        }
        return 1;
}

/* ---- SetServer, SetProxy ---- */

static int method_set_server(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_(nw_error_done) NwError e = {};
        NwManager *m = userdata;
        const char *url;
        int r;

        r = check_caller_and_turn(m, call, error);
        if (r != 0)
                return r;
        r = sd_bus_message_read(call, "s", &url);
        if (r < 0)
                return r;
        r = nw_client_set_server(m->client, url, &e);
        if (r < 0)
                return reply_nw_error(call, &e, r);
        return sd_bus_reply_method_return(call, NULL);
}

static int method_set_proxy(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_(nw_error_done) NwError e = {};
        NwManager *m = userdata;
        const char *url, *user, *password;
        int r;

        r = check_caller_and_turn(m, call, error);
        if (r != 0)
                return r;
        r = sd_bus_message_read(call, "sss", &url, &user, &password);
        if (r < 0)
                return r;
        r = nw_client_set_proxy(m->client, empty_to_null(url), empty_to_null(user), empty_to_null(password), &e);
        if (r < 0)
                return reply_nw_error(call, &e, r);
        return sd_bus_reply_method_return(call, NULL);
}

/* ---- CheckIn ---- */

typedef struct WitnessRead {
        SoapWitnessRequest w;
        char **hashes;
        bool present;
        const char *bad;  /* the key being read when reading failed */
} WitnessRead;

static int read_witness_entry(sd_bus_message *call, const char *key, void *userdata) {
        WitnessRead *wr = userdata;
        int r;

        wr->bad = key;
        wr->present = true;
        if (streq(key, "checkpoint"))
                r = sd_bus_message_read(call, "v", "s", &wr->w.checkpoint);
        else if (streq(key, "log_key"))
                r = sd_bus_message_read(call, "v", "s", &wr->w.log_key);
        else if (streq(key, "proof_from"))
                r = sd_bus_message_read(call, "v", "t", &wr->w.proof_from);
        else if (streq(key, "proof_hashes")) {
                if (wr->hashes)
                        return -EINVAL;
                r = sd_bus_message_enter_container(call, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_read_strv(call, &wr->hashes);
                if (r >= 0)
                        r = sd_bus_message_exit_container(call);
        } else
                return -ENOKEY;
        if (r >= 0)
                wr->bad = NULL;
        return r;
}

/* The witness dictionary; wr->present false when it is empty. Strings are borrowed from call. */
static int read_witness(sd_bus_message *call, WitnessRead *wr) {
        int r = bus_message_read_dict(call, read_witness_entry, wr);

        if (r < 0)
                return r;
        if (wr->hashes) {
                wr->w.proof_hashes = (const char *const *) wr->hashes;
                while (wr->w.proof_hashes[wr->w.n_proof_hashes])
                        wr->w.n_proof_hashes++;
        }
        return 0;
}

static void strv_free(char **l) {
        if (!l)
                return;
        for (char **p = l; *p; p++)
                free(*p);
        free(l);
}

static void witness_read_done(WitnessRead *wr) {
        strv_free(wr->hashes);
}

static int append_instruction(sd_bus_message *reply, const SoapInstruction *in) {
        int r;

        r = sd_bus_message_open_container(reply, 'r', "tsa{sv}");
        if (r >= 0)
                r = sd_bus_message_append(reply, "ts", in->id, soap_instruction_kind_to_string(in->kind));
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        switch (in->kind) {
        case SOAP_INSTRUCTION_SET_CHECK_IN_INTERVAL:
                r = sd_bus_message_append(reply, "{sv}", "seconds", "u", in->seconds);
                break;
        case SOAP_INSTRUCTION_SOFTWARE_AVAILABLE:
                r = sd_bus_message_append(reply, "{sv}{sv}{sv}{sv}", "package", "s", in->package_id, "version", "s",
                                          in->version, "size", "t", in->size, "sha256", "s", in->sha256);
                break;
        case SOAP_INSTRUCTION_DIAGNOSTICS_REQUESTED:
                r = sd_bus_message_append(reply, "{sv}", "reason", "s", in->reason ?: "");
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "s", "items");
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "s");
                for (size_t i = 0; r >= 0 && i < in->n_items; i++)
                        r = sd_bus_message_append(reply, "s", in->items[i]);
                for (int i = 0; r >= 0 && i < 3; i++)
                        r = sd_bus_message_close_container(reply);
                break;
        default:
                break;
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int reply_check_in(sd_bus_message *call, const SoapReply *soap) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const SoapCheckInReply *ci = &soap->check_in;
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(tsa{sv})");
        for (size_t i = 0; r >= 0 && i < ci->n_instructions; i++)
                r = append_instruction(reply, &ci->instructions[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r >= 0 && ci->has_witness) {
                r = sd_bus_message_append(reply, "{sv}", "acked_size", "t", ci->acked_size);
                if (r >= 0)
                        r = append_sv_string(reply, "acked_root", ci->acked_root);
                if (r >= 0)
                        r = append_sv_string(reply, "cosignature", ci->cosignature);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_check_in(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_(nw_error_done) NwError e = {};
        _cleanup_(witness_read_done) WitnessRead wr = {};
        NwManager *m = userdata;
        SoapCheckIn ci = {};
        char msg[128];
        int r;

        r = check_caller_and_turn(m, call, error);
        if (r != 0)
                return r;
        r = sd_bus_message_read(call, "sst", &ci.device_id, &ci.agent_version, &ci.last_instruction);
        if (r < 0)
                return r;
        r = read_witness(call, &wr);
        if (r < 0 && wr.bad) {
                (void) snprintf(msg, sizeof(msg), "witness: %s \"%.40s\"",
                                r == -ENOKEY ? "unknown key" : "wrong type or repeated", wr.bad);
                return invalid(call, &e, msg);
        }
        if (r < 0)
                return r;
        if (wr.present) {
                if (!wr.w.checkpoint)
                        return invalid(call, &e, "witness: \"checkpoint\" is required when any key is given");
                ci.witness = &wr.w;
        }
        return start_call(m, call, &(SoapRequest) { .op = SOAP_CHECK_IN, .check_in = &ci }, reply_check_in);
}

/* ---- the four acknowledged submissions ---- */

static int reply_ack(sd_bus_message *call, const SoapReply *reply) {
        return sd_bus_reply_method_return(call, "ss", reply->ack.transaction_id,
                                          soap_ack_status_to_string(reply->ack.status));
}

static int call_and_reply_ack(NwManager *m, sd_bus_message *call, const SoapRequest *req) {
        return start_call(m, call, req, reply_ack);
}

/* Reads an array of at most max structs of signature sig with fn. */
static int read_items(sd_bus_message *call, const char *sig, size_t max, size_t size, void **ret, size_t *ret_n,
                      int (*fn)(sd_bus_message *call, void *item)) {
        _cleanup_free_ void *items = NULL;
        size_t n = 0;
        int r;

        items = calloc(max, size);
        if (!items)
                return -ENOMEM;
        r = sd_bus_message_enter_container(call, 'a', sig);
        if (r < 0)
                return r;
        while (!sd_bus_message_at_end(call, false)) {
                if (n >= max)
                        return -E2BIG;
                r = fn(call, (uint8_t *) items + n * size);
                if (r < 0)
                        return r;
                n++;
        }
        r = sd_bus_message_exit_container(call);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(items);
        *ret_n = n;
        return 0;
}

static int read_meter(sd_bus_message *call, void *item) {
        SoapMeter *x = item;
        int decreased, r;

        r = sd_bus_message_read(call, "(stsb)", &x->name, &x->value, &x->unit, &decreased);
        x->unit = empty_to_null(x->unit);
        x->decreased = decreased;
        return r;
}

static int read_supply(sd_bus_message *call, void *item) {
        SoapSupply *x = item;
        int r;

        r = sd_bus_message_read(call, "(ssiis)", &x->name, &x->type, &x->level, &x->max_capacity, &x->unit);
        x->type = empty_to_null(x->type);
        x->unit = empty_to_null(x->unit);
        return r;
}

static int read_diag_entry(sd_bus_message *call, void *item) {
        SoapDiagEntry *x = item;

        return sd_bus_message_read(call, "(ss)", &x->name, &x->value);
}

static int too_many(sd_bus_message *call, int r, const char *what, size_t max) {
        _cleanup_(nw_error_done) NwError e = {};

        if (r != -E2BIG)
                return r;
        return reply_nw_error(call, &e, nw_error_set(&e, -EINVAL, NW_ERROR_INVALID_REQUEST,
                                                    "More than %zu %s", max, what));
}

static int method_submit_meter_reads(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_free_ SoapMeter *meters = NULL;
        NwManager *m = userdata;
        SoapMeterReads mr = {};
        int r;

        r = check_caller_and_turn(m, call, error);
        if (r != 0)
                return r;
        r = sd_bus_message_read(call, "sss", &mr.device_id, &mr.transaction_id, &mr.time);
        if (r < 0)
                return r;
        r = read_items(call, "(stsb)", SOAP_MAX_METERS, sizeof(SoapMeter), (void **) &meters, &mr.n_meters, read_meter);
        if (r < 0)
                return too_many(call, r, "meters", SOAP_MAX_METERS);
        mr.meters = meters;
        return call_and_reply_ack(m, call, &(SoapRequest) { .op = SOAP_SUBMIT_METER_READS, .meter_reads = &mr });
}

static int method_submit_supplies(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_free_ SoapSupply *supplies = NULL;
        NwManager *m = userdata;
        SoapSupplies s = {};
        int r;

        r = check_caller_and_turn(m, call, error);
        if (r != 0)
                return r;
        r = sd_bus_message_read(call, "sss", &s.device_id, &s.transaction_id, &s.time);
        if (r < 0)
                return r;
        r = read_items(call, "(ssiis)", SOAP_MAX_SUPPLIES, sizeof(SoapSupply), (void **) &supplies, &s.n_supplies,
                       read_supply);
        if (r < 0)
                return too_many(call, r, "supplies", SOAP_MAX_SUPPLIES);
        s.supplies = supplies;
        return call_and_reply_ack(m, call, &(SoapRequest) { .op = SOAP_SUBMIT_SUPPLIES, .supplies = &s });
}

static int method_submit_diagnostics(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_free_ SoapDiagEntry *entries = NULL;
        NwManager *m = userdata;
        SoapDiagnostics d = {};
        int r;

        r = check_caller_and_turn(m, call, error);
        if (r != 0)
                return r;
        r = sd_bus_message_read(call, "ssts", &d.device_id, &d.transaction_id, &d.instruction_id, &d.time);
        if (r < 0)
                return r;
        r = read_items(call, "(ss)", SOAP_MAX_DIAG_ENTRIES, sizeof(SoapDiagEntry), (void **) &entries, &d.n_entries,
                       read_diag_entry);
        if (r < 0)
                return too_many(call, r, "diagnostics entries", SOAP_MAX_DIAG_ENTRIES);
        d.entries = entries;
        return call_and_reply_ack(m, call, &(SoapRequest) { .op = SOAP_SUBMIT_DIAGNOSTICS, .diagnostics = &d });
}

static int method_report_result(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_(nw_error_done) NwError e = {};
        NwManager *m = userdata;
        SoapReportResult rr = {};
        const char *outcome;
        int r;

        r = check_caller_and_turn(m, call, error);
        if (r != 0)
                return r;
        r = sd_bus_message_read(call, "sstss", &rr.device_id, &rr.transaction_id, &rr.instruction_id, &outcome,
                                &rr.detail);
        if (r < 0)
                return r;
        rr.outcome = soap_outcome_from_string(outcome);
        if (rr.outcome < 0)
                return invalid(call, &e, "outcome must be Done, Refused, AwaitingConsent or Failed");
        rr.detail = empty_to_null(rr.detail);
        return call_and_reply_ack(m, call, &(SoapRequest) { .op = SOAP_REPORT_RESULT, .report_result = &rr });
}

/* ---- GetSoftware, Download ---- */

static int reply_get_software(sd_bus_message *call, const SoapReply *reply) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *out = NULL;
        const SoapSoftwareReply *sw = &reply->software;
        int r;

        r = sd_bus_message_new_method_return(call, &out);
        if (r >= 0)
                r = sd_bus_message_append(out, "stt", sw->package_id, sw->total_size, sw->offset);
        if (r >= 0)
                r = sd_bus_message_append_array(out, 'y', sw->data.data ?: (uint8_t *) "", sw->data.size);
        if (r >= 0)
                r = sd_bus_message_append_array(out, 'y', sw->manifest.data ?: (uint8_t *) "", sw->manifest.size);
        if (r >= 0)
                r = sd_bus_message_append_array(out, 'y', sw->manifest_signature.data ?: (uint8_t *) "",
                                                sw->manifest_signature.size);
        if (r >= 0)
                r = sd_bus_message_append_array(out, 'y', sw->signer_certificate.data ?: (uint8_t *) "",
                                                sw->signer_certificate.size);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, out, NULL);
}

static int method_get_software(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        NwManager *m = userdata;
        SoapGetSoftware gs = {};
        int r;

        r = check_caller_and_turn(m, call, error);
        if (r != 0)
                return r;
        r = sd_bus_message_read(call, "sstu", &gs.device_id, &gs.package_id, &gs.offset, &gs.length);
        if (r < 0)
                return r;
        return start_call(m, call, &(SoapRequest) { .op = SOAP_GET_SOFTWARE, .get_software = &gs },
                          reply_get_software);
}

static void on_download_done(NwClient *c, int r, uint64_t written, uint64_t total, NwError *e, void *userdata) {
        Pending *p = userdata;

        pending_answer(p, r < 0 ? reply_nw_error(p->call, e, r) : sd_bus_reply_method_return(p->call, "tt", written, total));
}

static int method_download(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_(nw_error_done) NwError e = {};
        NwManager *m = userdata;
        const char *device_id, *package_id;
        uint64_t offset, length, expected;
        Pending *p;
        int fd, r;

        r = check_caller_and_turn(m, call, error);
        if (r != 0)
                return r;
        r = sd_bus_message_read(call, "ssttth", &device_id, &package_id, &offset, &length, &expected, &fd);
        if (r < 0)
                return r;
        p = calloc(1, sizeof(Pending));
        if (!p)
                return -ENOMEM;
        p->m = m;
        p->call = sd_bus_message_ref(call);
        r = nw_client_download_start(m->client, device_id, package_id, offset, length, expected, fd, on_download_done,
                                     p, &e);
        if (r < 0) {
                pending_free(p);
                return reply_nw_error(call, &e, r);
        }
        return 1;
}

/* ---- LastExchange ---- */

static int property_get_last_exchange(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        NwManager *m = userdata;
        NwExchangeInfo info;
        int r;

        r = bus_check_property_caller(bus, m->policy_uid, (gid_t) -1, error);
        if (r < 0)
                return r;
        nw_client_last_exchange(m->client, &info);
        return sd_bus_message_append(reply, "a{sv}", 5, "tls_resumed", "b", (int) info.tls_resumed, "handshakes", "u",
                                     info.handshakes, "http_status", "x", (int64_t) info.http_status,
                                     "request_bytes", "t", info.request_bytes, "reply_bytes", "t", info.reply_bytes);
}

static const sd_bus_vtable nw_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("SetServer", SD_BUS_ARGS("s", url), SD_BUS_NO_RESULT, method_set_server,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetProxy", SD_BUS_ARGS("s", url, "s", user, "s", password), SD_BUS_NO_RESULT,
                                method_set_proxy, SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("CheckIn",
                                SD_BUS_ARGS("s", device_id, "s", agent_version, "t", last_instruction, "a{sv}", witness),
                                SD_BUS_RESULT("a(tsa{sv})", instructions, "a{sv}", witness_reply), method_check_in,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SubmitMeterReads",
                                SD_BUS_ARGS("s", device_id, "s", transaction_id, "s", time, "a(stsb)", meters),
                                SD_BUS_RESULT("s", acked_transaction_id, "s", status), method_submit_meter_reads,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SubmitSupplies",
                                SD_BUS_ARGS("s", device_id, "s", transaction_id, "s", time, "a(ssiis)", supplies),
                                SD_BUS_RESULT("s", acked_transaction_id, "s", status), method_submit_supplies,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SubmitDiagnostics",
                                SD_BUS_ARGS("s", device_id, "s", transaction_id, "t", instruction_id, "s", time,
                                            "a(ss)", entries),
                                SD_BUS_RESULT("s", acked_transaction_id, "s", status), method_submit_diagnostics,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReportResult",
                                SD_BUS_ARGS("s", device_id, "s", transaction_id, "t", instruction_id, "s", outcome,
                                            "s", detail),
                                SD_BUS_RESULT("s", acked_transaction_id, "s", status), method_report_result,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetSoftware", SD_BUS_ARGS("s", device_id, "s", package_id, "t", offset, "u", length),
                                SD_BUS_RESULT("s", reply_package_id, "t", total_size, "t", reply_offset, "ay", data,
                                              "ay", manifest, "ay", manifest_signature, "ay", signer_certificate),
                                method_get_software, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Download",
                                SD_BUS_ARGS("s", device_id, "s", package_id, "t", offset, "t", length, "t",
                                            expected_total, "h", fd),
                                SD_BUS_RESULT("t", written, "t", total_size), method_download,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("LastExchange", "a{sv}", property_get_last_exchange, 0, 0),
        SD_BUS_VTABLE_END,
};

int nw_bus_register(NwManager *m) {
        int r;

        assert(m);
        /* check_caller() judges from the guard's cache, never by a blocking bus call. */
        r = bus_peers_new(m->bus, NW_BUS_PATH, 0, &m->peers);
        if (r < 0)
                return r;
        bus_peers_limit_calls(m->peers, NW_CALLS_UNREAD_MAX);
        return sd_bus_add_object_vtable(m->bus, NULL, NW_BUS_PATH, NW_BUS_INTERFACE, nw_vtable, m);
}

static sd_bus_message_handler_t method_handler(const char *member) {
        for (const sd_bus_vtable *v = nw_vtable; v->type != _SD_BUS_VTABLE_END; v++)
                if (v->type == _SD_BUS_VTABLE_METHOD && member && streq(v->x.method.member, member))
                        return v->x.method.handler;
        return NULL;
}
