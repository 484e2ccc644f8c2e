/* SPDX-License-Identifier: Apache-2.0 */
/* The customer's consent on org.callhome.Policy1: what the server asked for
 * and the policy holds (diagnostics, always; software, in "ask" mode) waits
 * here, listed with what it would send or install, until the customer
 * approves or denies it or it expires. Each answer is audited before it takes
 * effect. Approved diagnostics carry machine data only: the counters and
 * supplies of a collector snapshot that the allowlist lets out. */
#include <assert.h>
#include <inttypes.h>

#include "bus-util.h"
#include "log.h"
#include "policyd-instruction.h"

static const char *job_service(const Job *j) {
        return streq(j->kind, "DiagnosticsRequested") ? "diagnostics" : "software";
}

static int emit(Job *j, const char *member, const char *text) {
        return sd_bus_emit_signal(j->owner->m->bus, POLICY_BUS_PATH, POLICY_BUS_INTERFACE, member, "tss", j->id,
                                  job_service(j), text);
}

void consent_removed(Job *j, const char *why) {
        int r = emit(j, "ConsentRequestRemoved", why);

        if (r < 0)
                log_warning_errno(r, "Consent request %" PRIu64 ": cannot signal its removal, ignoring: %m", j->id);
}

/* The arguments as audited, and what the customer is shown. */
static json_object *job_arguments(const Job *j) {
        json_object *o = json_object_new_object(), *items;

        if (!o)
                return NULL;
        if (j->package) {
                json_object_object_add(o, "package", json_object_new_string(j->package));
                json_object_object_add(o, "version", json_object_new_string(j->version));
                json_object_object_add(o, "size", json_object_new_uint64(j->size));
                json_object_object_add(o, "sha256", json_object_new_string(j->sha256));
                return o;
        }
        json_object_object_add(o, "reason", json_object_new_string(j->reason));
        items = json_object_new_array();
        for (size_t i = 0; items && j->items && j->items[i]; i++)
                json_object_array_add(items, json_object_new_string(j->items[i]));
        json_object_object_add(o, "items", items);
        return o;
}

static int on_expired(sd_event_source *s, uint64_t usec, void *userdata) {
        _cleanup_free_ char *why = NULL;
        Job *j = userdata;
        Instructions *in = j->owner;
        uint64_t id = j->id;
        const char *kind = j->kind;
        json_object *args = job_arguments(j);
        int r;

        consent_removed(j, "expired");
        r = asprintf(&why, "no answer from the customer within %" PRIu64 " s: the request expired",
                     in->m->consent_timeout_usec / USEC_PER_SEC);
        job_free(j);
        if (r < 0) {
                json_object_put(args);
                return log_oom();
        }
        r = instruction_verdict(in, id, kind, "expired", OUTCOME_REFUSED, why, args, NULL, NULL);
        if (r < 0)
                log_error_errno(r, "Consent request %" PRIu64 " expired, but that cannot be recorded: %m", id);
        return 0;
}

int consent_hold(Job *j, const char *why) {
        Manager *m = j->owner->m;
        uint64_t now = 0;
        int r;

        r = sd_event_now(m->event, CLOCK_REALTIME, &now);
        if (r < 0)
                return r;
        j->expires_usec = now + m->consent_timeout_usec;
        r = sd_event_add_time_relative(m->event, &j->timer, CLOCK_BOOTTIME, m->consent_timeout_usec, 0, on_expired, j);
        if (r < 0)
                return r;
        j->state = JOB_HELD;
        r = instruction_verdict(j->owner, j->id, j->kind, "held", OUTCOME_AWAITING_CONSENT, why, job_arguments(j), NULL,
                                NULL);
        if (r < 0)
                return r;
        r = emit(j, "ConsentRequestAdded", "added");
        if (r < 0)
                log_warning_errno(r, "Consent request %" PRIu64 ": cannot signal it, ignoring: %m", j->id);
        return 0;
}

/* --- diagnostics, once approved --------------------------------------------------- */

static void on_diagnostics_sent(void *userdata, const char *status, const char *error) {
        Job *j = userdata;
        _cleanup_free_ char *why = NULL;
        Instructions *in = j->owner;
        uint64_t id = j->id;
        int r;

        if (status)
                r = asprintf(&why, "diagnostics sent (%s)", status);
        else
                r = asprintf(&why, "diagnostics not delivered: %s", error);
        job_free(j);
        if (r < 0) {
                log_oom();
                return;
        }
        r = instruction_verdict(in, id, "DiagnosticsRequested", status ? "done" : "failed",
                                status ? OUTCOME_DONE : OUTCOME_FAILED, why, NULL, NULL, NULL);
        if (r < 0)
                log_error_errno(r, "Instruction %" PRIu64 ": cannot record its outcome: %m", id);
}

static bool item_wanted(const Job *j, const char *field) {
        if (!j->items || !j->items[0])
                return true;
        for (size_t i = 0; j->items[i]; i++)
                if (streq(j->items[i], field) || streq(j->items[i], strchr(field, '.') + 1))
                        return true;
        return false;
}

/* Adds one entry if it was asked for and the allowlist lets it out; else notes why not. */
static int entry_add(const Job *j, const Policy *p, sd_bus_message *call, json_object *entries, json_object *left,
                     const char *field, const char *value, unsigned *n) {
        if (!item_wanted(j, field))
                return 0;
        if (!policy_allows_field(p, field) || *n >= DIAGNOSTICS_ENTRIES_MAX) {
                json_object_array_add(left, json_object_new_string(field));
                return 0;
        }
        (*n)++;
        json_object_object_add(entries, field, json_object_new_string(value));
        return sd_bus_message_append(call, "(ss)", field, value);
}

static int diagnostics_build(Job *j, const PolicySnapshot *s, const char *txn, sd_bus_message **ret_call,
                             json_object **ret_content) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *entries = json_object_new_object(), *left = json_object_new_array();
        const Policy *p = j->owner->m->policy;
        char now[21], value[64];
        unsigned n = 0;
        int r;

        if (!o || !entries || !left) {
                json_object_put(entries);
                json_object_put(left);
                return -ENOMEM;
        }
        json_object_object_add(o, "instruction", json_object_new_uint64(j->id));
        json_object_object_add(o, "entries", entries);
        json_object_object_add(o, "left_out", left);
        instruction_time_now(now);
        json_object_object_add(o, "time", json_object_new_string(now));     /* sent again as it was */
        r = flow_net_new_call(j->owner->m, "SubmitDiagnostics", &call);
        if (r >= 0)
                r = sd_bus_message_append(call, "ssts", instruction_device_id(j->owner), txn, j->id, now);
        if (r >= 0)
                r = sd_bus_message_open_container(call, 'a', "(ss)");
        for (size_t i = 0; r >= 0 && i < s->n_meters; i++) {
                _cleanup_free_ char *field = NULL;

                if (asprintf(&field, "meter.%s", s->meters[i].name) < 0)
                        return -ENOMEM;
                snprintf(value, sizeof(value), "%" PRIu64 "%s", s->meters[i].value, s->meters[i].decreased ? " decreased" : "");
                r = entry_add(j, p, call, entries, left, field, value, &n);
        }
        for (size_t i = 0; r >= 0 && i < s->n_supplies; i++) {
                _cleanup_free_ char *field = NULL;

                if (asprintf(&field, "supply.%s", s->supplies[i].name) < 0)
                        return -ENOMEM;
                snprintf(value, sizeof(value), "%" PRIi32 "/%" PRIi32, s->supplies[i].level, s->supplies[i].max_capacity);
                r = entry_add(j, p, call, entries, left, field, value, &n);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r < 0)
                return r;
        *ret_call = TAKE_PTR(call);
        *ret_content = TAKE_PTR(o);
        return 0;
}

static int diagnostics_fail(Job *j, const char *why) {
        Instructions *in = j->owner;
        uint64_t id = j->id;

        job_free(j);
        return instruction_verdict(in, id, "DiagnosticsRequested", "failed", OUTCOME_FAILED, why, NULL, NULL, NULL);
}

static int on_snapshot(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(policy_snapshot_freep) PolicySnapshot *s = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_(json_object_putp) json_object *content = NULL;
        _cleanup_free_ char *txn = NULL;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        Job *j = userdata;
        int r;

        j->slot = sd_bus_slot_unref(j->slot);
        if (e || collector_snapshot_read(reply, &s) < 0) {
                (void) diagnostics_fail(j, "no snapshot from the collector");
                return 0;
        }
        if (!j->owner->serial && payload_device_id_valid(s->serial))
                j->owner->serial = strdup(s->serial);
        /* The approval's record names the transaction. */
        r = instruction_txn_id(j->owner, j->approval_seq, &txn);
        if (r >= 0)
                r = diagnostics_build(j, s, txn, &call, &content);
        if (r >= 0)
                r = instruction_exchange(j->owner, "diagnostics", txn, content, call, on_diagnostics_sent, j);
        if (r < 0) {
                _cleanup_free_ char *why = NULL;

                if (asprintf(&why, "diagnostics could not be prepared: %s", strerror(-r)) < 0)
                        return log_oom();
                (void) diagnostics_fail(j, why);
        }
        return 0;
}

static int diagnostics_send(Job *j, uint64_t approval_seq) {
        j->approval_seq = approval_seq;
        return sd_bus_call_method_async(j->owner->m->bus, &j->slot, "org.callhome.Collector1", "/org/callhome/Collector1",
                                        "org.callhome.Collector1", "GetSnapshot", on_snapshot, j, NULL);
}

static int read_diagnostics_arg(sd_bus_message *msg, const char *key, void *userdata) {
        Job *j = userdata;
        int r;

        if (streq(key, "reason") && !j->reason) {
                const char *s;

                r = sd_bus_message_read(msg, "v", "s", &s);
                if (r < 0)
                        return r;
                j->reason = strdup(s);
                return j->reason ? 0 : -ENOMEM;
        }
        if (streq(key, "items") && !j->items) {
                r = sd_bus_message_enter_container(msg, 'v', "as");
                if (r < 0)
                        return r;
                r = sd_bus_message_read_strv(msg, &j->items);
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(msg);
        }
        return sd_bus_message_skip(msg, "v");
}

int diagnostics_read_args(Job *j, sd_bus_message *reply) {
        size_t n = 0;
        int r;

        r = bus_message_read_dict(reply, read_diagnostics_arg, j);
        if (r < 0)
                return r;
        for (; j->items && j->items[n]; n++)
                if (!payload_name_valid(j->items[n]))
                        return 0;
        return j->reason && n <= DIAGNOSTICS_ITEMS_MAX;
}

/* --- org.callhome.Policy1: the consent members ---------------------------------------------- */

static int method_list(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Instructions *in = userdata;
        int r;

        r = policy_bus_check_caller(in->m, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(tssast)");
        for (Job *j = in->jobs; r >= 0 && j; j = j->next) {
                _cleanup_free_ char *summary = NULL, *size = NULL, *sha = NULL, *pkg = NULL, *ver = NULL;

                if (j->state != JOB_HELD)
                        continue;
                if (j->package) {
                        if (asprintf(&summary, "install software %s version %s", j->package, j->version) < 0 ||
                            asprintf(&pkg, "package=%s", j->package) < 0 || asprintf(&ver, "version=%s", j->version) < 0 ||
                            asprintf(&size, "size=%" PRIu64, j->size) < 0 || asprintf(&sha, "sha256=%s", j->sha256) < 0)
                                return -ENOMEM;
                        r = sd_bus_message_append(reply, "(tssast)", j->id, "software", summary, 4, pkg, ver, size, sha,
                                                  j->expires_usec);
                        continue;
                }
                if (asprintf(&summary, "send diagnostics: %s", j->reason) < 0)
                        return -ENOMEM;
                r = sd_bus_message_open_container(reply, 'r', "tssast");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "tss", j->id, "diagnostics", summary);
                if (r >= 0)
                        r = sd_bus_message_append_strv(reply, j->items && j->items[0] ? j->items
                                                              : (char *[]) { (char *) "every allowlisted meter and supply", NULL });
                if (r >= 0)
                        r = sd_bus_message_append(reply, "t", j->expires_usec);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static void on_approval_audited(Instructions *in, uint64_t seq, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        Job *j = userdata;
        const char *off;
        int r;

        call = TAKE_PTR(j->approval);
        if (seq == 0) {
                (void) sd_bus_reply_method_errorf(call, POLICY_ERROR_AUDIT_UNAVAILABLE,
                                                  "The approval could not be recorded: nothing was sent or installed.");
                job_free(j);
                return;
        }
        (void) sd_bus_reply_method_return(call, NULL);
        /* The policy may have changed while the request waited: it still decides. */
        off = instruction_service_off(in->m->policy, streq(j->kind, "DiagnosticsRequested") ? POLICY_SERVICE_DIAGNOSTICS
                                                                                            : POLICY_SERVICE_SOFTWARE_UPDATES);
        if (off) {
                uint64_t id = j->id;
                const char *kind = j->kind;

                job_free(j);
                (void) instruction_verdict(in, id, kind, "refused", OUTCOME_REFUSED, off, NULL, NULL, NULL);
                return;
        }
        r = streq(j->kind, "DiagnosticsRequested") ? diagnostics_send(j, seq) : software_fetch(j);
        if (r < 0) {
                _cleanup_free_ char *why = NULL;
                uint64_t id = j->id;
                const char *kind = j->kind;

                job_free(j);
                if (asprintf(&why, "cannot start: %s", strerror(-r)) >= 0)
                        (void) instruction_verdict(in, id, kind, "failed", OUTCOME_FAILED, why, NULL, NULL, NULL);
        }
}

static int method_answer(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Instructions *in = userdata;
        bool approve = streq(sd_bus_message_get_member(call), "ApproveConsent");
        _cleanup_free_ char *why = NULL;
        json_object *args;
        uid_t uid = 0;
        uint64_t id;
        Job *j;
        int r;

        r = policy_bus_check_caller(in->m, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "t", &id);
        if (r < 0)
                return r;
        j = job_find(in, id);
        if (!j || j->state != JOB_HELD)
                return sd_bus_error_setf(error, POLICY_ERROR_NO_SUCH_REQUEST,
                                         "No consent request %" PRIu64 " is waiting (ListConsentRequests shows those that are).",
                                         id);
        r = policy_bus_sender_uid(in->m, call, &uid, error);
        if (r < 0)
                return r;
        if (asprintf(&why, "%s by uid %u", approve ? "approved" : "denied", (unsigned) uid) < 0)
                return -ENOMEM;
        args = job_arguments(j);
        if (args)
                json_object_object_add(args, "uid", json_object_new_uint64(uid));
        consent_removed(j, approve ? "approved" : "denied");
        j->timer = sd_event_source_disable_unref(j->timer);
        if (!approve) {
                uint64_t jid = j->id;
                const char *kind = j->kind;

                job_free(j);
                r = instruction_verdict(in, jid, kind, "denied", OUTCOME_REFUSED, why, args, NULL, NULL);
                if (r < 0)
                        return r;
                return sd_bus_reply_method_return(call, NULL);
        }
        j->state = JOB_RUNNING;
        j->approval = sd_bus_message_ref(call);
        r = instruction_verdict(in, j->id, j->kind, "approved", OUTCOME_NONE, why, args, on_approval_audited, j);
        if (r < 0) {
                j->approval = sd_bus_message_unref(j->approval);
                job_free(j);
                return r;
        }
        return 1;
}

static const sd_bus_vtable consent_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("ListConsentRequests", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(tssast)", requests), method_list,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ApproveConsent", SD_BUS_ARGS("t", id), SD_BUS_NO_RESULT, method_answer,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DenyConsent", SD_BUS_ARGS("t", id), SD_BUS_NO_RESULT, method_answer,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("ConsentRequestAdded", SD_BUS_ARGS("t", id, "s", service, "s", what), 0),
        SD_BUS_SIGNAL_WITH_ARGS("ConsentRequestRemoved", SD_BUS_ARGS("t", id, "s", service, "s", why), 0),
        SD_BUS_VTABLE_END,
};

int consent_register(Instructions *in) {
        assert(in);
        return sd_bus_add_object_vtable(in->m->bus, &in->vtable_slot, POLICY_BUS_PATH, POLICY_BUS_INTERFACE,
                                        consent_vtable, in);
}
