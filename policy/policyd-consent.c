/* SPDX-License-Identifier: Apache-2.0 */
/* The customer's consent on org.callhome.Policy1: what the server asked for
 * and the policy holds (diagnostics, always; software, in "ask" mode) waits
 * here, listed with what it would send or install, until the customer
 * approves or denies it or it expires. Each answer is audited before it takes
 * effect. Approved diagnostics carry machine data only: the counters and
 * supplies of a collector snapshot that the allowlist lets out.
 *
 * The requests waiting are kept in STATE_DIR/consent.json (written atomically
 * each time one is added, answered or expires), held again at start with their
 * expiry on the wall clock: one that expired while policyd was down expires at
 * once, as it would have at run time. The instruction was acknowledged to the
 * server when it was held, so nothing else would ever answer it. */
#include <assert.h>
#include <inttypes.h>

#include "bus-util.h"
#include "fileio.h"
#include "log.h"
#include "policyd-instruction.h"

#define CONSENT_STATE_FILE "consent.json"
/* INSTRUCTION_JOBS_MAX requests, each at most a reason, 64 items of 64 bytes or a software offer. */
#define CONSENT_STATE_MAX (256U << 10)
/* Bytes of the reason of a diagnostics request: callhome.xsd's ShortText, 256 characters. */
#define CONSENT_REASON_MAX 1024U

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

/* --- the requests on disk --------------------------------------------------------- */

/* A request as kept: its arguments as audited, its id, kind and expiry. */
static json_object *job_state(const Job *j) {
        json_object *o = job_arguments(j);

        if (!o)
                return NULL;
        json_object_object_add(o, "id", json_object_new_uint64(j->id));
        json_object_object_add(o, "kind", json_object_new_string(j->kind));
        json_object_object_add(o, "expires_usec", json_object_new_uint64(j->expires_usec));
        return o;
}

/* Writes the requests held now, newest first as in the list; logs a failure. */
static int consent_save(Instructions *in) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *list = json_object_new_array();
        const char *text;
        int r;

        if (!o || !list)
                return log_oom();
        for (Job *j = in->jobs; j; j = j->next) {
                json_object *x;

                if (j->state != JOB_HELD)
                        continue;
                x = job_state(j);
                if (!x || json_object_array_add(list, x) < 0) {
                        json_object_put(x);
                        return log_oom();
                }
        }
        json_object_object_add(o, "requests", TAKE_PTR(list));
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return log_oom();
        r = write_file_atomic_at(in->m->state_fd, CONSENT_STATE_FILE, text, strlen(text), 0600);
        if (r < 0)
                return log_error_errno(r, "Consent: cannot write %s/%s (the requests waiting would not survive a "
                                       "restart): %m", in->m->state_dir, CONSENT_STATE_FILE);
        return 0;
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
        (void) consent_save(in);
        if (r < 0) {
                json_object_put(args);
                return log_oom();
        }
        r = instruction_verdict(in, id, kind, "expired", OUTCOME_REFUSED, why, args, NULL, NULL);
        if (r < 0)
                log_error_errno(r, "Consent request %" PRIu64 " expired, but that cannot be recorded: %m", id);
        return 0;
}

/* --- the requests held again at start ---------------------------------------------- */

/* The string `key` of o, NULL if it is none (or holds a NUL). */
static const char *state_string(json_object *o, const char *key) {
        json_object *v;
        const char *s;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        s = json_object_get_string(v);
        return strlen(s) == (size_t) json_object_get_string_len(v) ? s : NULL;
}

static bool state_uint(json_object *o, const char *key, uint64_t *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) < 0)
                return false;
        *ret = json_object_get_uint64(v);
        return true;
}

static int state_strdup(json_object *o, const char *key, char **ret) {
        const char *s = state_string(o, key);

        if (!s)
                return 0;
        *ret = strdup(s);
        return *ret ? 1 : -ENOMEM;
}

static int state_items(json_object *o, char ***ret) {
        json_object *a;
        size_t n;

        if (!json_object_object_get_ex(o, "items", &a) || !json_object_is_type(a, json_type_array))
                return 0;
        n = json_object_array_length(a);
        if (n > DIAGNOSTICS_ITEMS_MAX)
                return 0;
        *ret = calloc(n + 1, sizeof(char *));
        if (!*ret)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *s = json_object_is_type(json_object_array_get_idx(a, i), json_type_string)
                                        ? json_object_get_string(json_object_array_get_idx(a, i)) : NULL;

                if (!s)
                        return 0;
                (*ret)[i] = strdup(s);
                if (!(*ret)[i])
                        return -ENOMEM;
        }
        return 1;
}

/* Holds again one request of the file; 0: it is not one (*ret_why says why), nothing held. */
static int consent_restore_one(Instructions *in, json_object *o, uint64_t now, const char **ret_why) {
        Manager *m = in->m;
        const char *kind;
        uint64_t id = 0, expires = 0, left;
        Job *j;
        int r;

        kind = json_object_is_type(o, json_type_object) ? state_string(o, "kind") : NULL;
        kind = streq_ptr(kind, "DiagnosticsRequested") ? "DiagnosticsRequested"
             : streq_ptr(kind, "SoftwareAvailable") ? "SoftwareAvailable" : NULL;
        if (!kind || !state_uint(o, "id", &id) || id == 0 || !state_uint(o, "expires_usec", &expires)) {
                *ret_why = "not a request (kind, id, expiry)";
                return 0;
        }
        if (job_find(in, id)) {
                *ret_why = "a second request of the same id";
                return 0;
        }
        j = job_new(in, id, kind);
        if (!j) {
                *ret_why = "more requests than may wait at once";
                return 0;
        }
        if (streq(kind, "DiagnosticsRequested")) {
                r = state_strdup(o, "reason", &j->reason);
                if (r > 0)
                        r = state_items(o, &j->items);
                if (r > 0)
                        r = diagnostics_args_valid(j);
        } else {
                r = state_strdup(o, "package", &j->package);
                if (r > 0)
                        r = state_strdup(o, "version", &j->version);
                if (r > 0)
                        r = state_strdup(o, "sha256", &j->sha256);
                if (r > 0)
                        r = state_uint(o, "size", &j->size) && software_args_valid(j);
        }
        if (r <= 0) {
                job_free(j);
                *ret_why = "its arguments are not those of a request";
                return r;
        }
        /* On the wall clock, as listed; never further than a whole timeout (a clock not set yet reads 1970). */
        left = expires > now ? MIN(expires - now, m->consent_timeout_usec) : 0;
        r = sd_event_add_time_relative(m->event, &j->timer, CLOCK_BOOTTIME, left, 0, on_expired, j);
        if (r < 0) {
                job_free(j);
                return r;
        }
        j->expires_usec = expires;
        j->state = JOB_HELD;
        /* If the check-in that brought it did not get to keep its id, it comes again: not held twice. */
        instruction_mark_seen(in, id);
        if (left == 0)
                log_info("Consent request %" PRIu64 " expired while policyd was not running.", id);
        return 1;
}

/* Holds again the requests of STATE_DIR/consent.json. A file that is not what
 * consent_save() writes is moved aside (logged), keeping the requests it holds
 * that are whole; only running out of memory fails. */
static int consent_restore(Instructions *in) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        Manager *m = in->m;
        json_object *list;
        const char *why = NULL;
        size_t n, restored = 0, bad = 0;
        uint64_t now = 0;
        int r;

        r = manager_read_json_state(m, "Consent", CONSENT_STATE_FILE, CONSENT_STATE_MAX, &o);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !o)
                return 0;
        if (!json_object_object_get_ex(o, "requests", &list) || !json_object_is_type(list, json_type_array)) {
                (void) manager_set_aside_state(m, "Consent", CONSENT_STATE_FILE, "holds no list of requests");
                return 0;
        }
        r = sd_event_now(m->event, CLOCK_REALTIME, &now);
        if (r < 0)
                return r;
        /* Oldest first, so that the list is in the order it was. */
        n = json_object_array_length(list);
        for (size_t i = n; i > 0; i--) {
                r = consent_restore_one(in, json_object_array_get_idx(list, i - 1), now, &why);
                if (r < 0)
                        return r;
                if (r == 0) {
                        log_error("Consent: %s/%s: request %zu of %zu is left out: %s.", m->state_dir,
                                  CONSENT_STATE_FILE, i, n, why);
                        bad++;
                } else
                        restored++;
        }
        if (restored > 0)
                log_info("Consent: %zu request(s) waiting since before the restart are held again.", restored);
        if (bad > 0) {
                (void) manager_set_aside_state(m, "Consent", CONSENT_STATE_FILE, "holds requests that are not whole");
                (void) consent_save(in);
        }
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
        /* On disk before the check-in acknowledges it: failing that, it is not acknowledged and comes again. */
        r = consent_save(j->owner);
        if (r < 0)
                return r;
        r = instruction_verdict(j->owner, j->id, j->kind, "held", OUTCOME_AWAITING_CONSENT, why, job_arguments(j), NULL,
                                NULL);
        if (r < 0) {
                /* Not held after all: the file forgets it before it is freed. */
                j->state = JOB_RUNNING;
                (void) consent_save(j->owner);
                return r;
        }
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
        flow_learn_device_id(j->owner->m, s->serial);
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

bool diagnostics_args_valid(const Job *j) {
        size_t n = 0;

        for (; j->items && j->items[n]; n++)
                if (!payload_name_valid(j->items[n]))
                        return false;
        return j->reason && strlen(j->reason) <= CONSENT_REASON_MAX && n <= DIAGNOSTICS_ITEMS_MAX;
}

int diagnostics_read_args(Job *j, sd_bus_message *reply) {
        int r = bus_message_read_dict(reply, read_diagnostics_arg, j);

        if (r < 0)
                return r;
        return diagnostics_args_valid(j);
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
                (void) consent_save(in);
                r = instruction_verdict(in, jid, kind, "denied", OUTCOME_REFUSED, why, args, NULL, NULL);
                if (r < 0)
                        return r;
                return sd_bus_reply_method_return(call, NULL);
        }
        j->state = JOB_RUNNING;
        (void) consent_save(in);
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
        int r;

        assert(in);
        r = sd_bus_add_object_vtable(in->m->bus, &in->vtable_slot, POLICY_BUS_PATH, POLICY_BUS_INTERFACE,
                                     consent_vtable, in);
        if (r < 0)
                return r;
        return consent_restore(in);
}
