/* SPDX-License-Identifier: Apache-2.0 */
/* Check-ins: CheckIn over the net-worker with the audit log's witness, each
 * instruction of the reply handed to instruction_handle() in order, the highest
 * one handled kept on disk (with when the last check-in succeeded and why the
 * last one failed, so the status survives a restart) and acknowledged by the
 * next check-in. Scheduled on
 * CLOCK_BOOTTIME (no polling): the policy's interval bounds with jitter, the
 * server's interval clamped to them, the TR-069 retry window after a failure
 * and the server's RetryAfter. A wall clock before the build date is reported
 * as such and the check-in waits for the clock to be set. */
#include <assert.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <sys/timerfd.h>
#include <time.h>

#include "config.h"
#include "fileio.h"
#include "log.h"
#include "policyd-checkin.h"
#include "retry.h"
#include "wallclock.h"

#define NET_WORKER_ERROR_PREFIX "org.callhome.NetWorker1.Error."
/* The timer may fire this much late: one wake-up serves several (a check-in is never urgent to the second). */
#define CHECKIN_TIMER_ACCURACY_USEC (5 * USEC_PER_SEC)

typedef struct CheckIn {
        sd_event_source *timer;                 /* CLOCK_BOOTTIME: the next check-in */
        uint64_t next_boot_usec;                /* when it fires; 0: not armed */
        sd_event_source *clock_watch;           /* the wall clock being set, while it reads before the build */

        /* The check-in under way. */
        bool busy;
        char *why;
        char *device_id;
        sd_bus_slot *slot;                      /* the snapshot or the CheckIn call */
        json_object *handled;                   /* the instructions handed over, for the audit record */
        sd_bus_message *callers[CHECKIN_CALLERS_MAX];
        size_t n_callers;

        /* Kept in CHECKIN_STATE_FILE. */
        uint64_t last_instruction;              /* the highest instruction handled */
        uint32_t interval;                      /* the server's interval, clamped; 0: none asked */
        uint64_t last_usec;                     /* CLOCK_REALTIME of the last successful check-in */
        char *last_error;                       /* NULL after a success */

        unsigned failures;                      /* consecutive */
        uint32_t retry_after;                   /* seconds the server asked for after the last failure */
} CheckIn;

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);      /* cannot fail for these clocks */
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* --- what went wrong, in words --------------------------------------------------- */

static const char *startswith(const char *s, const char *prefix) {
        size_t n = strlen(prefix);

        return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

void net_error_read(sd_bus_message *reply, NetError *ret) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *message, *key;
        int r;

        assert(e);
        assert(ret);
        *ret = (NetError) {
                .name = startswith(e->name, NET_WORKER_ERROR_PREFIX) ?: e->name,
                .message = e->message ?: "",
        };
        if (sd_bus_message_rewind(reply, true) < 0 || !sd_bus_message_has_signature(reply, "sa{sv}") ||
            sd_bus_message_read(reply, "s", &message) < 0 || sd_bus_message_enter_container(reply, 'a', "{sv}") < 0)
                return;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                if (sd_bus_message_read(reply, "s", &key) < 0)
                        return;
                if (streq(key, "fault"))
                        r = sd_bus_message_read(reply, "v", "s", &ret->fault);
                else if (streq(key, "reason"))
                        r = sd_bus_message_read(reply, "v", "s", &ret->reason);
                else if (streq(key, "retry_after"))
                        r = sd_bus_message_read(reply, "v", "u", &ret->retry_after);
                else if (streq(key, "acked_size"))
                        r = sd_bus_message_read(reply, "v", "t", &ret->acked_size);
                else if (streq(key, "acked_root"))
                        r = sd_bus_message_read(reply, "v", "s", &ret->acked_root);
                else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0 || sd_bus_message_exit_container(reply) < 0)
                        return;
        }
}

static const struct {
        const char *name;
        const char *words;
} net_error_words[] = {
        { "UntrustedServer", "The server's certificate does not lead to the configured CA" },
        { "ServerCertificateExpired", "The server's certificate has expired" },
        { "ServerCertificateNotYetValid", "The server's certificate is not valid yet (or this printer's clock is wrong)" },
        { "ServerCertificateWrongUsage", "The server's certificate is not one for a TLS server" },
        { "HostMismatch", "The server's certificate does not name the host of ServerURL" },
        { "PinMismatch", "The server's key is not one of those pinned" },
        { "ClientCertificateRefused", "The server refused this printer's certificate" },
        { "TlsFailed", "The secure connection to the server failed" },
        { "Unreachable", "The server (or the proxy) could not be reached" },
        { "ProxyRefused", "The proxy refused the connection to the server" },
        { "ProxyAuthRequired", "The proxy wants credentials (set ProxyUser and ProxyPassword), or other ones" },
        { "Timeout", "The server did not answer in time" },
        { "ConnectionFailed", "The connection to the server broke during the check-in" },
        { "TooLarge", "The server's reply was larger than allowed" },
        { "MalformedReply", "The server's reply was not what the protocol allows" },
        { "HttpStatus", "The server answered with an HTTP status the protocol does not use" },
        { "RetryAfter", "The server is busy and asked to be called again later" },
        { "InvalidRequest", "The check-in could not be sent (no server set, or a value the protocol refuses)" },
        { "org.freedesktop.DBus.Error.ServiceUnknown", "The net-worker (org.callhome.NetWorker1) is not running" },
        { "org.freedesktop.DBus.Error.NoReply", "The net-worker (org.callhome.NetWorker1) did not answer" },
};

static const struct {
        const char *fault;
        const char *words;
} fault_words[] = {
        { "NotAuthorized", "The server does not accept this printer" },
        { "BadRequest", "The server refused the check-in as malformed" },
        { "LogFork", "The server reports that the audit log was truncated, rewritten or forked" },
        { "RetryAfter", "The server is busy and asked to be called again later" },
};

/* "<words>: <details>" for a failed CheckIn. */
static int net_error_describe(const NetError *e, char **ret) {
        const char *words = NULL, *reason;

        for (size_t i = 0; !words && e->fault && i < ELEMENTSOF(fault_words); i++)
                if (streq(e->fault, fault_words[i].fault))
                        words = fault_words[i].words;
        for (size_t i = 0; !words && i < ELEMENTSOF(net_error_words); i++)
                if (streq(e->name, net_error_words[i].name))
                        words = net_error_words[i].words;
        if (e->retry_after > 0)
                return asprintf(ret, "%s (in %" PRIu32 " s): %s", words ?: "The check-in failed", e->retry_after,
                                e->message) < 0 ? -ENOMEM : 0;
        /* The net-worker's message usually holds the fault's reason already. */
        reason = e->reason && !strstr(e->message, e->reason) ? e->reason : NULL;
        return asprintf(ret, "%s (%s): %s%s%s", words ?: "The check-in failed", e->fault ?: e->name, e->message,
                        reason ? " — " : "", reason ?: "") < 0 ? -ENOMEM : 0;
}

/* --- the state on disk ------------------------------------------------------------ */

/* What LastError keeps across a restart: the words and enough of the details. */
#define CHECKIN_ERROR_KEPT_MAX 2048U

static int state_save(Manager *m) {
        CheckIn *c = m->checkin;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        const char *text;
        size_t n;
        int r;

        if (!o)
                return log_oom();
        json_object_object_add(o, "last_instruction", json_object_new_uint64(c->last_instruction));
        json_object_object_add(o, "interval", json_object_new_uint64(c->interval));
        json_object_object_add(o, "last_check_in_usec", json_object_new_uint64(c->last_usec));
        if (c->last_error) {
                /* Cut at a character boundary, so that the file stays well within CHECKIN_STATE_MAX. */
                n = MIN(strlen(c->last_error), (size_t) CHECKIN_ERROR_KEPT_MAX);
                while (n > 0 && c->last_error[n] != 0 && ((unsigned char) c->last_error[n] & 0xc0) == 0x80)
                        n--;
                json_object_object_add(o, "last_error", json_object_new_string_len(c->last_error, (int) n));
        }
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!text)
                return log_oom();
        r = write_file_atomic_at(m->state_fd, CHECKIN_STATE_FILE, text, strlen(text), 0600);
        if (r < 0)
                return log_error_errno(r, "Check-in: cannot write %s/%s: %m", m->state_dir, CHECKIN_STATE_FILE);
        return 0;
}

static int state_load(Manager *m) {
        CheckIn *c = m->checkin;
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *v;
        int r;

        /* Without it, instructions come again from 0: each is recognised by the part that handles it.
         * A file of an earlier version lacks the status: it reads as no check-in yet. */
        r = manager_read_json_state(m, "Check-in", CHECKIN_STATE_FILE, CHECKIN_STATE_MAX, &o);
        if (r < 0 || !o)
                return r;
        if (json_object_object_get_ex(o, "last_instruction", &v))
                c->last_instruction = json_object_get_uint64(v);
        if (json_object_object_get_ex(o, "interval", &v))
                c->interval = (uint32_t) MIN(json_object_get_uint64(v), (uint64_t) POLICY_INTERVAL_MAX);
        if (json_object_object_get_ex(o, "last_check_in_usec", &v))
                c->last_usec = json_object_get_uint64(v);
        if (json_object_object_get_ex(o, "last_error", &v) && json_object_is_type(v, json_type_string) &&
            json_object_get_string_len(v) > 0) {
                c->last_error = strndup(json_object_get_string(v), CHECKIN_ERROR_KEPT_MAX);
                if (!c->last_error)
                        return log_oom();
        }
        return 0;
}

/* --- the schedule -------------------------------------------------------------------- */

static void timer_disarm(CheckIn *c) {
        c->next_boot_usec = 0;
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
}

static uint32_t clamp_interval(const Policy *p, uint32_t seconds) {
        return MIN(MAX(seconds, p->check_in_min), p->check_in_max);
}

/* The next regular check-in: the server's interval (up to a tenth earlier, so that
 * devices told the same do not call together), else the policy's bounds. */
static uint64_t regular_next(Manager *m, uint64_t now) {
        CheckIn *c = m->checkin;
        uint64_t hi, lo;

        if (c->interval == 0)
                return checkin_next(m->policy, now, random_source_kernel, NULL);
        hi = (uint64_t) clamp_interval(m->policy, c->interval) * USEC_PER_SEC;
        lo = MAX(hi - hi / 10, (uint64_t) m->policy->check_in_min * USEC_PER_SEC);
        return now + random_uniform(random_source_kernel, NULL, lo, hi);
}

static void schedule(Manager *m) {
        CheckIn *c = m->checkin;
        uint64_t now = now_usec(CLOCK_BOOTTIME);
        int r;

        if (!m->policy->remote_services || c->clock_watch || c->busy)
                timer_disarm(c);
        else {
                c->next_boot_usec = c->failures > 0 ? retry_next(m->policy, c->failures, now,
                                                                 (uint64_t) c->retry_after * USEC_PER_SEC,
                                                                 random_source_kernel, NULL)
                                                    : regular_next(m, now);
                r = sd_event_source_set_time(c->timer, c->next_boot_usec);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
                if (r < 0) {
                        log_error_errno(r, "Check-in: cannot arm the timer: %m");
                        c->next_boot_usec = 0;
                }
        }
        checkin_bus_emit_status(m);
}

static int checkin_begin(Manager *m, const char *why);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int r;

        m->checkin->next_boot_usec = 0;
        r = checkin_begin(m, m->checkin->failures > 0 ? "retry" : "schedule");
        if (r < 0 && r != -EBUSY && r != -ETIME && r != -EPERM)
                log_error_errno(r, "Check-in: cannot start the scheduled check-in: %m");
        return 0;
}

static int on_clock_set(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        CheckIn *c = m->checkin;
        int r;

        /* A clock change cancels the timer: the read fails with ECANCELED. */
        c->clock_watch = sd_event_source_disable_unref(c->clock_watch);
        log_info("Check-in: the wall clock was set.");
        r = checkin_begin(m, "clock set");
        if (r < 0 && r != -EBUSY && r != -ETIME)
                schedule(m);
        return 0;
}

/* Waits for the wall clock to be set (a timerfd cancelled on a clock change): no polling. */
static int clock_watch_start(Manager *m) {
        CheckIn *c = m->checkin;
        struct itimerspec its = { .it_value.tv_sec = INT32_MAX };       /* far ahead of a clock that is not set */
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (c->clock_watch)
                return 0;
        fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL) < 0)
                return -errno;
        r = sd_event_add_io(m->event, &c->clock_watch, fd, EPOLLIN, on_clock_set, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_io_fd_own(c->clock_watch, true);
        TAKE_FD(fd);
        return 0;
}

/* --- one check-in --------------------------------------------------------------------- */

static void audit_checkin(Manager *m, const char *error) {
        CheckIn *c = m->checkin;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        const char *text;

        if (!o)
                return (void) log_oom();
        json_object_object_add(o, "why", json_object_new_string(c->why ?: ""));
        json_object_object_add(o, "device_id", json_object_new_string(c->device_id ?: ""));
        json_object_object_add(o, "last_instruction", json_object_new_uint64(c->last_instruction));
        json_object_object_add(o, "outcome", json_object_new_string(error ? "failed" : "done"));
        if (error)
                json_object_object_add(o, "error", json_object_new_string(error));
        json_object_object_add(o, "instructions", c->handled ? json_object_get(c->handled) : json_object_new_array());
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!text || manager_audit_append(m, "checkin", text, NULL, NULL, NULL, NULL) < 0)
                log_error("Audit: cannot record the check-in.");
}

/* The check-in under way is over: audited, its callers answered, the next one scheduled. */
static void checkin_finish(Manager *m, const char *error_name, const char *error, uint32_t retry_after) {
        CheckIn *c = m->checkin;

        assert(c->busy);
        audit_checkin(m, error);
        c->busy = false;
        c->slot = sd_bus_slot_unref(c->slot);
        free(c->last_error);
        c->last_error = error ? strdup(error) : NULL;
        if (error) {
                log_warning("Check-in (%s) failed: %s", c->why, error);
                c->failures = MIN(c->failures + 1, RETRY_FAILURES_CAP);
                c->retry_after = retry_after;
        } else {
                log_info("Check-in (%s) done; instruction %" PRIu64 " acknowledged.", c->why, c->last_instruction);
                c->failures = 0;
                c->retry_after = 0;
                c->last_usec = now_usec(CLOCK_REALTIME);
                instructions_checked_in(m);     /* the server is reachable: reports waiting go now */
        }
        /* With the highest instruction handled: kept before the callers hear of it. */
        (void) state_save(m);
        for (size_t i = 0; i < c->n_callers; i++) {
                if (error)
                        (void) sd_bus_reply_method_errorf(c->callers[i], error_name, "%s", error);
                else
                        (void) sd_bus_reply_method_return(c->callers[i], NULL);
                sd_bus_message_unref(c->callers[i]);
        }
        c->n_callers = 0;
        c->why = (free(c->why), NULL);
        c->handled = (json_object_put(c->handled), NULL);
        schedule(m);
}

static void checkin_fail_errno(Manager *m, int error, const char *what) {
        _cleanup_free_ char *text = NULL;

        if (asprintf(&text, "%s: %s", what, strerror(-error)) < 0)
                text = NULL;
        checkin_finish(m, POLICY_ERROR_CHECK_IN_FAILED, text ?: what, 0);
}

/* Hands each instruction to instruction_handle() in order. Stops at the first that
 * could not be handed over: it and those after come again with the next check-in. */
static void handle_instructions(Manager *m, sd_bus_message *reply) {
        CheckIn *c = m->checkin;
        uint64_t highest = c->last_instruction, id;
        const char *kind;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "(tsa{sv})");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "tsa{sv}")) > 0) {
                r = sd_bus_message_read(reply, "ts", &id, &kind);
                if (r < 0)
                        break;
                if (id <= c->last_instruction) {
                        /* Handled by an earlier check-in whose acknowledgement the server did not see. */
                        log_debug("Check-in: instruction %" PRIu64 " (%s) was handled already.", id, kind);
                        r = sd_bus_message_skip(reply, "a{sv}");
                } else {
                        json_object *i = json_object_new_object();
                        if (i) {
                                json_object_object_add(i, "id", json_object_new_uint64(id));
                                json_object_object_add(i, "kind", json_object_new_string(kind));
                                (void) json_object_array_add(c->handled, i);
                        }
                        r = instruction_handle(m, id, kind, reply);
                        if (r < 0) {
                                log_error_errno(r, "Check-in: instruction %" PRIu64 " (%s) could not be handled, "
                                                "it will come again: %m", id, kind);
                                break;
                        }
                        highest = MAX(highest, id);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                log_error_errno(r, "Check-in: the instructions of the reply could not be read: %m");
        /* Kept by checkin_finish(), which follows. */
        c->last_instruction = highest;
}

static int on_checkin_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        CheckIn *c = m->checkin;
        int r;

        c->slot = sd_bus_slot_unref(c->slot);
        if (sd_bus_message_is_method_error(reply, NULL)) {
                _cleanup_free_ char *text = NULL;
                NetError e;

                net_error_read(reply, &e);
                if (net_error_describe(&e, &text) < 0)
                        return log_oom(), checkin_finish(m, POLICY_ERROR_CHECK_IN_FAILED, "Out of memory", 0), 0;
                (void) witness_reply(m, reply);         /* a LogFork is the witness' to raise */
                checkin_finish(m, POLICY_ERROR_CHECK_IN_FAILED, text, e.retry_after);
                return 0;
        }
        c->handled = json_object_new_array();
        if (!c->handled)
                return log_oom(), checkin_finish(m, POLICY_ERROR_CHECK_IN_FAILED, "Out of memory", 0), 0;
        handle_instructions(m, reply);
        /* The witness is the second argument, wherever the instructions left off. */
        r = sd_bus_message_rewind(reply, true);
        if (r >= 0)
                r = sd_bus_message_skip(reply, "a(tsa{sv})");
        if (r >= 0)
                r = witness_reply(m, reply);
        if (r < 0)
                log_error_errno(r, "Check-in: the witness of the reply could not be read: %m");
        checkin_finish(m, NULL, NULL, 0);
        return 0;
}

static void on_witness_ready(Manager *m, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        CheckIn *c = m->checkin;
        int r;

        r = flow_net_new_call(m, "CheckIn", &call);
        if (r >= 0)
                r = sd_bus_message_append(call, "sst", c->device_id, CALLHOME_VERSION, c->last_instruction);
        if (r >= 0)
                r = witness_append(m, call);
        if (r >= 0)
                r = flow_net_call(m, call, on_checkin_reply, m, &c->slot);
        if (r < 0)
                checkin_fail_errno(m, r, "The check-in could not be handed to the net-worker");
}

/* The server knows the printer by the serial the collector reads (and its certificate names). */
static void on_device_id(Manager *m, const char *id, const char *error, void *userdata) {
        CheckIn *c = m->checkin;
        _cleanup_free_ char *text = NULL;
        int r;

        c->slot = sd_bus_slot_unref(c->slot);
        if (!id) {
                if (asprintf(&text, "No device id: %s", error) < 0)
                        text = NULL;
                checkin_finish(m, POLICY_ERROR_CHECK_IN_FAILED, text ?: "No device id", 0);
                return;
        }
        if (!streq_ptr(c->device_id, id)) {
                char *d = strdup(id);
                if (!d) {
                        checkin_fail_errno(m, -ENOMEM, "The check-in could not be prepared");
                        return;
                }
                free(c->device_id);
                c->device_id = d;
        }
        r = witness_prepare(m, on_witness_ready, NULL);
        if (r < 0)
                checkin_fail_errno(m, r, "The audit log's checkpoint could not be asked for");
}

/* <0: not started (-EPERM: remote services off, -EBUSY: one under way, -ETIME: the
 * clock is not set); 0: started, checkin_finish() ends it. */
static int checkin_begin(Manager *m, const char *why) {
        CheckIn *c = m->checkin;
        _cleanup_free_ char *clock_error = NULL;
        int r;

        if (!m->policy->remote_services)
                return -EPERM;
        if (c->busy)
                return -EBUSY;
        r = wallclock_check(now_usec(CLOCK_REALTIME), &clock_error);
        if (r == -ETIME) {
                if (!streq_ptr(c->last_error, clock_error)) {
                        log_warning("Check-in postponed until the clock is set: %s", clock_error);
                        free(c->last_error);
                        c->last_error = TAKE_PTR(clock_error);
                }
                r = clock_watch_start(m);
                if (r < 0)
                        log_error_errno(r, "Check-in: cannot watch for the wall clock being set, "
                                        "retrying on the schedule: %m");
                schedule(m);
                return -ETIME;
        }
        if (r < 0)
                return r;
        c->why = strdup(why);
        if (!c->why)
                return -ENOMEM;
        c->busy = true;
        timer_disarm(c);
        checkin_bus_emit_status(m);
        log_info("Check-in (%s).", why);
        r = flow_with_device_id(m, on_device_id, NULL, &c->slot);
        if (r < 0)
                checkin_fail_errno(m, r, "The check-in could not be prepared");
        return 0;
}

/* --- the interface of policyd.h ---------------------------------------------------------- */

int checkin_new(Manager *m) {
        CheckIn *c;
        int r;

        assert(m);
        assert(!m->checkin);
        c = calloc(1, sizeof(CheckIn));
        if (!c)
                return -ENOMEM;
        m->checkin = c;
        r = state_load(m);
        if (r < 0)
                return r;
        r = sd_event_add_time(m->event, &c->timer, CLOCK_BOOTTIME, UINT64_MAX, CHECKIN_TIMER_ACCURACY_USEC, on_timer, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(c->timer, "checkin");
        r = sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        if (r < 0)
                return r;
        return checkin_bus_register(m);
}

int checkin_start(Manager *m) {
        assert(m);
        schedule(m);
        return 0;
}

void checkin_free(Manager *m) {
        CheckIn *c = m->checkin;

        if (!c)
                return;
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->clock_watch);
        sd_bus_slot_unref(c->slot);
        for (size_t i = 0; i < c->n_callers; i++)
                sd_bus_message_unref(c->callers[i]);
        json_object_put(c->handled);
        free(c->why);
        free(c->device_id);
        free(c->last_error);
        free(c);
        m->checkin = NULL;
}

void checkin_policy_changed(Manager *m) {
        CheckIn *c = m->checkin;
        uint64_t latest;

        assert(c);
        if (!m->policy->remote_services) {
                if (c->next_boot_usec != 0)
                        log_info("Check-in: remote services are off, no check-in is scheduled.");
                timer_disarm(c);
                checkin_bus_emit_status(m);
                return;
        }
        /* Services just turned on, the bounds moved below the time set, or a retry under
         * retry parameters (or a server) that may have changed: a new time. */
        latest = now_usec(CLOCK_BOOTTIME) + (uint64_t) m->policy->check_in_max * USEC_PER_SEC;
        if (c->next_boot_usec == 0 || c->failures > 0 || c->next_boot_usec > latest)
                schedule(m);
}

int checkin_now(Manager *m, const char *why) {
        assert(m);
        assert(why);
        return checkin_begin(m, why);
}

uint32_t checkin_set_interval(Manager *m, uint32_t seconds) {
        CheckIn *c = m->checkin;
        uint32_t kept = clamp_interval(m->policy, seconds);
        _cleanup_free_ char *record = NULL;

        assert(c);
        if (asprintf(&record, "{\"requested\":%" PRIu32 ",\"kept\":%" PRIu32 ",\"min\":%" PRIu32 ",\"max\":%" PRIu32 "}",
                     seconds, kept, m->policy->check_in_min, m->policy->check_in_max) < 0 ||
            manager_audit_append(m, "checkin.interval", record, NULL, NULL, NULL, NULL) < 0)
                log_error("Audit: cannot record the check-in interval the server asked for.");
        log_info("Check-in: the server asked for an interval of %" PRIu32 " s; %" PRIu32 " s kept (policy: %" PRIu32
                 "…%" PRIu32 " s).", seconds, kept, m->policy->check_in_min, m->policy->check_in_max);
        if (kept != c->interval) {
                c->interval = kept;
                (void) state_save(m);
                if (c->failures == 0)
                        schedule(m);
        }
        return kept;
}

/* --- status, for the bus members ------------------------------------------------------------ */

int checkin_now_for_call(Manager *m, sd_bus_message *call, sd_bus_error *error) {
        CheckIn *c = m->checkin;
        int r;

        if (!m->policy->remote_services)
                return sd_bus_error_set(error, POLICY_ERROR_REMOTE_SERVICES_OFF,
                                        "Remote services are off (RemoteServices is false): this printer does not "
                                        "call home, check-ins included. Set RemoteServices to true first.");
        if (c->n_callers >= CHECKIN_CALLERS_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "%u callers already wait for the check-in under way; try again when it is over.",
                                         CHECKIN_CALLERS_MAX);
        /* Taken first: a check-in that fails at once answers it. */
        c->callers[c->n_callers++] = sd_bus_message_ref(call);
        r = c->busy ? 0 : checkin_begin(m, "customer");
        if (r < 0) {
                sd_bus_message_unref(c->callers[--c->n_callers]);
                if (r == -ETIME)
                        return sd_bus_error_setf(error, POLICY_ERROR_CLOCK_NOT_SET, "No check-in: %s; it follows "
                                                 "once the clock is set.", strna(c->last_error));
                return sd_bus_error_set_errno(error, r);
        }
        return 1;
}

uint64_t checkin_last_usec(Manager *m) {
        return m->checkin->last_usec;
}

uint64_t checkin_next_usec(Manager *m) {
        uint64_t boot, real;

        if (m->checkin->next_boot_usec == 0)
                return 0;
        boot = now_usec(CLOCK_BOOTTIME);
        real = now_usec(CLOCK_REALTIME);
        return real + (m->checkin->next_boot_usec > boot ? m->checkin->next_boot_usec - boot : 0);
}

const char *checkin_last_error(Manager *m) {
        return m->checkin->last_error ?: "";
}

void checkin_retry_state(Manager *m, uint32_t *ret_failures, const char **ret_text) {
        CheckIn *c = m->checkin;

        *ret_failures = c->failures;
        if (!m->policy->remote_services)
                *ret_text = "off: remote services are off";
        else if (c->busy)
                *ret_text = "checking in";
        else if (c->clock_watch)
                *ret_text = "waiting for the wall clock to be set";
        else if (c->failures > 0 && c->retry_after > 0)
                *ret_text = "retrying when the server asked";
        else if (c->failures > 0)
                *ret_text = "retrying in the TR-069 window after failures";
        else
                *ret_text = "on schedule";
}
