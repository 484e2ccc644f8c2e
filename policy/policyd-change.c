/* SPDX-License-Identifier: Apache-2.0 */
/* Changing the policy: one change at a time, validated whole, audited by
 * callhome-auditd (Append, internal record "policy.change": the caller's uid,
 * each setting's old and new value, credentials masked) before it takes
 * effect, then written atomically and signalled. Nothing here waits on the
 * bus: the caller's uid and the Append are asynchronous calls, and the
 * caller is answered from their replies. No audit, no change. */
#include <assert.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>

#include "bus-util.h"
#include "log.h"
#include "policyd.h"

static int change_start(Manager *m);

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

static void change_done(Manager *m) {
        sd_bus_message_unref(m->changes[0]);
        memmove(m->changes, m->changes + 1, (m->n_changes - 1) * sizeof(m->changes[0]));
        m->n_changes--;
        m->candidate = policy_free(m->candidate);
        m->change_slot = sd_bus_slot_unref(m->change_slot);
        memset(m->changed, 0, sizeof(m->changed));
}

/* Starts the next change, if any; those answered at once make way for the one after. */
static void change_next(Manager *m) {
        while (m->n_changes > 0 && change_start(m) != 0)
                ;
}

/* Answers the head change with an error and moves on. */
static void change_fail(Manager *m, const sd_bus_error *e) {
        (void) sd_bus_reply_method_error(m->changes[0], e);
        change_done(m);
}

static void change_failf(Manager *m, const char *name, const char *format, ...) _printf_(3, 4);
static void change_failf(Manager *m, const char *name, const char *format, ...) {
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        va_list ap;

        va_start(ap, format);
        sd_bus_error_setfv(&e, name, format, ap);
        va_end(ap);
        change_fail(m, &e);
}

/* The audit record: {"uid":N,"changes":[{"setting":S,"old":O,"new":N},...]}. */
static int change_record(Manager *m, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *list = json_object_new_array();
        const char *text;

        if (!o || !list)
                return -ENOMEM;
        for (PolicySetting s = 0; s < _POLICY_SETTING_MAX; s++) {
                _cleanup_free_ char *old = NULL, *new = NULL;
                json_object *c;

                if (!m->changed[s])
                        continue;
                if (policy_setting_format(m->policy, s, &old) < 0 || policy_setting_format(m->candidate, s, &new) < 0)
                        return -ENOMEM;
                c = json_object_new_object();
                if (!c || json_object_array_add(list, c) < 0) {
                        json_object_put(c);
                        return -ENOMEM;
                }
                json_object_object_add(c, "setting", json_object_new_string(policy_setting_to_string(s)));
                json_object_object_add(c, "old", json_object_new_string(old));
                json_object_object_add(c, "new", json_object_new_string(new));
        }
        json_object_object_add(o, "uid", json_object_new_int64((int64_t) m->change_uid));
        json_object_object_add(o, "changes", TAKE_PTR(list));
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        *ret = text ? strdup(text) : NULL;
        return *ret ? 0 : -ENOMEM;
}

static int change_commit(Manager *m) {
        const char *names[_POLICY_SETTING_MAX + 2];
        size_t n = 0;
        bool secret = false;
        int r;

        r = manager_store(m, m->candidate);
        if (r < 0)
                return r;
        policy_free(m->policy);
        m->policy = TAKE_PTR(m->candidate);
        m->load_error = (free(m->load_error), NULL);
        for (PolicySetting s = 0; s < _POLICY_SETTING_MAX; s++) {
                if (!m->changed[s])
                        continue;
                if (policy_setting_is_secret(s))
                        secret = true;
                else
                        names[n++] = policy_setting_to_string(s);
        }
        if (secret)
                names[n++] = "ProxyAuthentication";
        names[n++] = "LoadError";
        names[n] = NULL;
        (void) sd_bus_emit_properties_changed_strv(m->bus, POLICY_BUS_PATH, POLICY_BUS_INTERFACE, (char **) names);
        flow_policy_changed(m);
        checkin_policy_changed(m);
        return 0;
}

/* An internal record "policy.change-failed" naming the audited change that was not made. */
static void record_not_made(Manager *m, sd_bus_message *append_reply, int error) {
        _cleanup_free_ char *payload = NULL;
        uint64_t seq = 0;
        char uid[16];

        (void) sd_bus_message_read(append_reply, "t", &seq);
        (void) snprintf(uid, sizeof(uid), "%u", (unsigned) m->change_uid);
        if (asprintf(&payload, "{\"uid\":%u,\"change_seq\":%" PRIu64 ",\"error\":\"%s\"}", (unsigned) m->change_uid, seq,
                     strerror(-error)) < 0)
                return (void) log_oom();
        if (manager_audit_append(m, "policy.change-failed", payload, uid, NULL, NULL, NULL) < 0)
                log_error("Audit: cannot record that the change of record %" PRIu64 " was not made.", seq);
}

static int on_append_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        if (e) {
                log_error("Policy change by uid %u refused: the audit log could not record it: %s",
                          (unsigned) m->change_uid, e->message ?: e->name);
                change_failf(m, POLICY_ERROR_AUDIT_UNAVAILABLE,
                             "The change was not made: the audit log (org.callhome.Audit1) could not record it: %s",
                             e->message ?: e->name);
                change_next(m);
                return 0;
        }
        r = change_commit(m);
        if (r < 0) {
                /* The log says it was asked for; it must also say it did not happen. */
                record_not_made(m, reply, r);
                change_failf(m, SD_BUS_ERROR_IO_ERROR, "The change was not made: the policy file could not be written: %s",
                             strerror(-r));
        } else {
                log_info("Policy changed by uid %u (audited).", (unsigned) m->change_uid);
                (void) sd_bus_reply_method_return(m->changes[0], NULL);
                change_done(m);
        }
        change_next(m);
        return 0;
}

static int change_append(Manager *m) {
        _cleanup_free_ char *record = NULL;
        char uid[16];
        int r;

        r = change_record(m, &record);
        if (r < 0)
                return r;
        (void) snprintf(uid, sizeof(uid), "%u", (unsigned) m->change_uid);
        m->change_slot = sd_bus_slot_unref(m->change_slot);
        return manager_audit_append(m, "policy.change", record, uid, on_append_reply, m, &m->change_slot);
}

/* Reads the head change into m->candidate. 0: something to audit; 1: answered already. */
static int change_prepare(Manager *m) {
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *call = m->changes[0];
        bool set = sd_bus_message_is_method_call(call, "org.freedesktop.DBus.Properties", "Set") > 0;
        _cleanup_free_ char *error = NULL;
        const char *name;
        int r;

        r = policy_copy(m->policy, &m->candidate);
        if (r < 0)
                return r;
        r = sd_bus_message_rewind(call, true);
        if (r < 0)
                return r;
        if (set)
                r = sd_bus_message_read(call, "s", &name); /* the interface, checked by the filter */
        else
                r = sd_bus_message_enter_container(call, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_(strv_freep) char **strv = NULL;
                PolicyValue v;
                PolicySetting s;

                if (!set) {
                        r = sd_bus_message_enter_container(call, 'e', "sv");
                        if (r <= 0)
                                break;
                }
                r = sd_bus_message_read(call, "s", &name);
                if (r < 0)
                        break;
                s = policy_setting_from_string(name);
                if (set && (streq(name, "ProxyAuthentication") || streq(name, "LoadError"))) {
                        sd_bus_error_setf(&e, SD_BUS_ERROR_PROPERTY_READ_ONLY, "%s is read-only.", name);
                        break;
                }
                if (set && s >= 0 && policy_setting_is_secret(s)) {
                        sd_bus_error_setf(&e, SD_BUS_ERROR_UNKNOWN_PROPERTY,
                                          "%s is no property (it is never read back): set it with Change().", name);
                        break;
                }
                if (s < 0) {
                        sd_bus_error_setf(&e, set ? SD_BUS_ERROR_UNKNOWN_PROPERTY : SD_BUS_ERROR_INVALID_ARGS,
                                          "No setting %.64s: see the properties of org.callhome.Policy1.", name);
                        break;
                }
                r = policy_bus_read_setting(call, s, &v, &strv, &e);
                if (r >= 0) {
                        r = policy_set(m->candidate, s, &v, &error);
                        if (r == -EINVAL)
                                sd_bus_error_setf(&e, SD_BUS_ERROR_INVALID_ARGS, "%s", strna(error));
                        m->changed[s] = true;
                }
                if (r < 0)
                        break;
                if (set)
                        break;
                r = sd_bus_message_exit_container(call);
                if (r < 0)
                        break;
        }
        if (!sd_bus_error_is_set(&e) && r < 0)
                sd_bus_error_set(&e, SD_BUS_ERROR_INVALID_ARGS, "The arguments could not be read.");
        if (!sd_bus_error_is_set(&e) && policy_check(m->candidate, &error) < 0)
                sd_bus_error_set(&e, SD_BUS_ERROR_INVALID_ARGS, error);
        if (sd_bus_error_is_set(&e)) {
                change_fail(m, &e);
                return 1;
        }
        /* A setting set to what it was is no change. */
        for (PolicySetting s = 0; s < _POLICY_SETTING_MAX; s++) {
                _cleanup_free_ char *a = NULL, *b = NULL;
                PolicyValue va, vb;

                if (!m->changed[s])
                        continue;
                policy_get(m->policy, s, &va);
                policy_get(m->candidate, s, &vb);
                if (policy_setting_is_secret(s))
                        m->changed[s] = !streq(va.s, vb.s);
                else if (policy_setting_format(m->policy, s, &a) >= 0 && policy_setting_format(m->candidate, s, &b) >= 0)
                        m->changed[s] = !streq(a, b);
        }
        for (PolicySetting s = 0; s < _POLICY_SETTING_MAX; s++)
                if (m->changed[s])
                        return 0;
        (void) sd_bus_reply_method_return(call, NULL);
        change_done(m);
        return 1;
}

/* 0: under way; non-zero: the head change was answered (the caller moves on). */
static int change_start(Manager *m) {
        sd_bus_message *call = m->changes[0];
        int r;

        r = change_prepare(m);
        if (r != 0) {
                if (r < 0)
                        change_failf(m, SD_BUS_ERROR_NO_MEMORY, "%s", "Out of memory.");
                return 1;
        }
        /* The uid for the record, from the callers' credentials already known (never a bus call). */
        r = policy_bus_sender_uid(m, call, &m->change_uid, NULL);
        if (r < 0) {
                change_failf(m, SD_BUS_ERROR_FAILED, "The change was not made: %s", "the caller's uid could not be learnt.");
                return 1;
        }
        r = change_append(m);
        if (r < 0) {
                change_failf(m, POLICY_ERROR_AUDIT_UNAVAILABLE, "The change was not made: %s",
                             "the audit log could not be asked to record it.");
                return 1;
        }
        return 0;
}

int manager_queue_change(Manager *m, sd_bus_message *call) {
        assert(m);
        assert(call);

        if (m->n_changes >= POLICY_CHANGES_QUEUED_MAX)
                return sd_bus_reply_method_errorf(call, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                                  "%u changes are already waiting to be audited; try again.",
                                                  POLICY_CHANGES_QUEUED_MAX), 1;
        m->changes[m->n_changes++] = sd_bus_message_ref(call);
        if (m->n_changes == 1)
                change_next(m);
        return 1;
}
