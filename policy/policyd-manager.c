/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's state: the policy adopted from its file, or the last good one. */
#include <assert.h>

#include "fileio.h"
#include "log.h"
#include "policyd.h"

int manager_new(Manager **ret) {
        Manager *m = calloc(1, sizeof(Manager));

        if (!m)
                return -ENOMEM;
        m->state_fd = -EBADF;
        m->admin_gid = (gid_t) -1;
        *ret = m;
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        instructions_free(m);
        witness_free(m);
        checkin_free(m);
        flow_free(m);
        for (size_t i = 0; i < m->n_changes; i++)
                sd_bus_message_unref(m->changes[i]);
        sd_bus_slot_unref(m->change_slot);
        bus_peers_free(m->peers);
        policy_free(m->candidate);
        policy_free(m->policy);
        free(m->load_error);
        free(m->collector_owner);
        free(m->state_dir);
        free(m->staging_dir);
        free(m->drop_dir);
        free(m->code_signing_anchor);
        free(m->model);
        safe_close(m->state_fd);
        sd_bus_unref(m->bus);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

/* 0 and *ret: adopted; -EBADMSG etc. with *ret_error: why not. */
static int load_file(Manager *m, const char *name, Policy **ret, char **ret_error) {
        _cleanup_free_ char *buf = NULL, *path = NULL;
        size_t len = 0;
        int r;

        if (asprintf(&path, "%s/%s", m->state_dir, name) < 0)
                return -ENOMEM;
        r = read_small_file_at(m->state_fd, name, POLICY_FILE_MAX, &buf, &len);
        if (r == -EFBIG)
                r = asprintf(ret_error, "%s: larger than %u bytes, not read.", path, POLICY_FILE_MAX) < 0 ? -ENOMEM : -EFBIG;
        else if (r == -ENOENT)
                return r;
        else if (r < 0)
                r = asprintf(ret_error, "%s: cannot read it: %s", path, strerror(-r)) < 0 ? -ENOMEM : r;
        else
                r = policy_parse(buf, len, path, ret, ret_error);
        if (buf)
                explicit_bzero(buf, len);
        return r;
}

/* Writes p to `name` in the state directory, atomically; logs a failure. */
static int store(Manager *m, const Policy *p, const char *name) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r;

        r = policy_format(p, &buf, &len);
        if (r < 0)
                return log_oom();
        r = write_file_atomic_at(m->state_fd, name, buf, len, 0600);
        explicit_bzero(buf, len);
        if (r < 0)
                return log_error_errno(r, "Policy: cannot write %s/%s: %m", m->state_dir, name);
        return 0;
}

int manager_store(Manager *m, const Policy *p) {
        int r = store(m, p, POLICY_FILE);
        return r < 0 ? r : store(m, p, POLICY_LAST_GOOD_FILE);
}

int manager_load(Manager *m) {
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_free_ char *error = NULL, *last_error = NULL;
        int r;

        assert(m);
        r = load_file(m, POLICY_FILE, &p, &error);
        if (r == -ENOMEM)
                return log_oom();
        if (r >= 0) {
                /* Adopted: it is now the last good policy too. */
                r = store(m, p, POLICY_LAST_GOOD_FILE);
                if (r < 0)
                        return r;
                log_info("Policy: %s/%s adopted.", m->state_dir, POLICY_FILE);
                m->policy = TAKE_PTR(p);
                return 0;
        }
        if (r == -ENOENT)
                error = strdup("");
        else
                log_error("Policy: %s; keeping the last good policy.", strna(error));
        r = load_file(m, POLICY_LAST_GOOD_FILE, &p, &last_error);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                if (r != -ENOENT)
                        log_error("Policy: the last good copy is not usable either: %s", strna(last_error));
                r = policy_new_default(&p);
                if (r < 0)
                        return log_oom();
                /* The first start: the defaults are written out, for the administrator to read.
                 * A rejected file stays as it is, to be corrected. */
                if (!error || !*error) {
                        r = manager_store(m, p);
                        if (r < 0)
                                return r;
                }
                log_notice("Policy: using the defaults (remote services off).");
        } else
                log_notice("Policy: %s/%s adopted (the last good policy).", m->state_dir, POLICY_LAST_GOOD_FILE);
        m->policy = TAKE_PTR(p);
        if (error && *error)
                m->load_error = TAKE_PTR(error);
        return 0;
}

int manager_set_aside_state(Manager *m, const char *what, const char *name, const char *why) {
        _cleanup_free_ char *aside = NULL;

        assert(m);
        if (asprintf(&aside, "%s.corrupt", name) < 0)
                return log_oom();
        if (renameat(m->state_fd, name, m->state_fd, aside) < 0)
                return log_error_errno(errno, "%s: %s/%s %s, and it cannot be moved aside: %m", what, m->state_dir,
                                       name, why);
        log_error("%s: %s/%s %s: moved aside to %s/%s, starting afresh.", what, m->state_dir, name, why,
                  m->state_dir, aside);
        return 0;
}

int manager_read_json_state(Manager *m, const char *what, const char *name, size_t max, json_object **ret) {
        _cleanup_free_ char *buf = NULL, *why = NULL;
        json_object *o;
        size_t len;
        int r;

        *ret = NULL;
        r = read_small_file_at(m->state_fd, name, max, &buf, &len);
        if (r == -ENOENT)
                return 0;
        if (r == -EFBIG) {
                if (asprintf(&why, "is larger than %zu bytes", max) < 0)
                        return log_oom();
                (void) manager_set_aside_state(m, what, name, why);
                return 0;
        }
        if (r == -EBADFD) {
                (void) manager_set_aside_state(m, what, name, "is not a regular file");
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "%s: cannot read %s/%s: %m", what, m->state_dir, name);
        o = json_tokener_parse(buf);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                (void) manager_set_aside_state(m, what, name, "is not a JSON object");
                return 0;
        }
        *ret = o;
        return 0;
}

static int on_audit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e)
                log_error("Audit: a record could not be appended: %s", e->message ?: e->name);
        return 0;
}

int manager_audit_append(Manager *m, const char *type, const char *payload, const char *uid,
                         sd_bus_message_handler_t callback, void *userdata, sd_bus_slot **ret_slot) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        int r;

        assert(m);
        assert(type);
        assert(payload);
        r = sd_bus_message_new_method_call(m->bus, &call, "org.callhome.Audit1", "/org/callhome/Audit1",
                                           "org.callhome.Audit1", "Append");
        if (r >= 0)
                r = sd_bus_message_append(call, "sss", type, "internal", "");
        if (r >= 0)
                r = sd_bus_message_append_array(call, 'y', payload, strlen(payload));
        if (r >= 0)
                r = uid ? sd_bus_message_append(call, "a{ss}", 1, "uid", uid) : sd_bus_message_append(call, "a{ss}", 0);
        if (r < 0)
                return r;
        if (!callback)
                return sd_bus_call_async(m->bus, NULL, call, on_audit_reply, m, 0);
        return sd_bus_call_async(m->bus, ret_slot, call, callback, userdata, 0);
}
