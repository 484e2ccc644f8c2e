/* SPDX-License-Identifier: Apache-2.0 */
/* The collector's GetSnapshot reply (ipc/org.callhome.Collector1.xml) read into
 * what the allowlist judges: billing counters and marker life counts as meters,
 * supplies with their RFC 3805 special values back as numbers. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>

#include <json-c/json.h>

#include "log.h"
#include "policyd.h"

#define COLLECTOR_NAME "org.callhome.Collector1"
#define COLLECTOR_PATH "/org/callhome/Collector1"

static int level_from_state(const char *state, int32_t value, int32_t *ret) {
        if (streq(state, "value"))
                *ret = value;
        else if (streq(state, "other"))
                *ret = -1;
        else if (streq(state, "unknown"))
                *ret = -2;
        else if (streq(state, "some-remaining"))
                *ret = -3;
        else
                return -EBADMSG;
        return 0;
}

static int add_meter(PolicySnapshot *s, char *name, const char *unit, uint64_t value) {
        SnapshotMeter *m = realloc(s->meters, (s->n_meters + 1) * sizeof(SnapshotMeter));

        if (!m) {
                free(name);
                return -ENOMEM;
        }
        s->meters = m;
        m[s->n_meters] = (SnapshotMeter) { .name = name, .unit = strdup(unit), .value = value };
        if (!m[s->n_meters++].unit)
                return -ENOMEM;
        return 0;
}

int collector_snapshot_read(sd_bus_message *reply, PolicySnapshot **ret) {
        _cleanup_(policy_snapshot_freep) PolicySnapshot *s = NULL;
        const char *serial, *model, *name, *unit, *state, *type, *class, *desc, *colorant, *lstate, *mstate, *reason;
        uint64_t t, generation, sequence, value, observed, previous;
        int32_t level, max;
        uint32_t index;
        int r;

        assert(reply);
        assert(ret);
        s = calloc(1, sizeof(PolicySnapshot));
        if (!s)
                return -ENOMEM;
        r = sd_bus_message_enter_container(reply, 'r', "ssttta(sstts)a(ustts)a(usssss(si)(si))a(ss)a(stts)a{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "sstt", &serial, &model, &t, &generation);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "t", &sequence);
        if (r < 0)
                return r;
        s->serial = strdup(serial);
        s->model = strdup(model);
        if (!s->serial || !s->model)
                return -ENOMEM;
        s->time_usec = t;

        r = sd_bus_message_enter_container(reply, 'a', "(sstts)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sstts)", &name, &unit, &value, &observed, &state)) > 0) {
                char *n = strdup(name);
                r = n ? add_meter(s, n, unit, value) : -ENOMEM;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ustts)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ustts)", &index, &unit, &value, &observed, &state)) > 0) {
                char *n = NULL;
                r = asprintf(&n, "prtMarkerLifeCount.%" PRIu32, index) < 0 ? -ENOMEM : add_meter(s, n, unit, value);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(usssss(si)(si))");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(usssss(si)(si))", &index, &type, &class, &desc, &colorant,
                                                  &unit, &lstate, &level, &mstate, &max)) > 0) {
                SnapshotSupply *sp = realloc(s->supplies, (s->n_supplies + 1) * sizeof(SnapshotSupply));
                if (!sp)
                        return -ENOMEM;
                s->supplies = sp;
                sp = &sp[s->n_supplies++];
                *sp = (SnapshotSupply) { .type = strdup(type), .unit = strdup(unit) };
                if (asprintf(&sp->name, "prtMarkerSupplies.%" PRIu32, index) < 0)
                        sp->name = NULL;
                if (!sp->name || !sp->type || !sp->unit)
                        return -ENOMEM;
                if (level_from_state(lstate, level, &sp->level) < 0 || level_from_state(mstate, max, &sp->max_capacity) < 0)
                        return -EBADMSG;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_skip(reply, "a(ss)");
        /* A decrease is sent as the new reading, marked (callhome.xsd Anomaly "Decreased"). */
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(stts)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(stts)", &name, &previous, &observed, &reason)) > 0) {
                unsigned idx;
                char buf[64];

                if (!streq(reason, "decrease"))
                        continue;
                if (sscanf(name, "markers/%u/life_count", &idx) == 1) {
                        (void) snprintf(buf, sizeof(buf), "prtMarkerLifeCount.%u", idx);
                        name = buf;
                }
                for (size_t i = 0; i < s->n_meters; i++)
                        if (streq(s->meters[i].name, name)) {
                                s->meters[i].value = observed;
                                s->meters[i].decreased = true;
                        }
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

static int set_owner(Manager *m, const char *owner) {
        char *o = NULL;

        if (owner && *owner) {
                o = strdup(owner);
                if (!o)
                        return -ENOMEM;
        }
        free(m->collector_owner);
        m->collector_owner = o;
        log_debug("Collector: %s is owned by %s.", COLLECTOR_NAME, strna(o));
        return 0;
}

static int on_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        const char *name, *old, *new;

        if (sd_bus_message_read(msg, "sss", &name, &old, &new) < 0 || !streq(name, COLLECTOR_NAME))
                return 0;
        (void) set_owner(userdata, new);
        return 0;
}

static int on_counter_anomaly(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const char *sender = sd_bus_message_get_sender(msg), *counter, *reason, *text;
        json_object *o;
        uint64_t previous, observed;
        int r;

        /* Any peer may send a signal with this path, interface and member: only the owner's counts. */
        if (!m->collector_owner || !streq_ptr(sender, m->collector_owner)) {
                log_warning("CounterAnomaly from %s, which does not own %s: ignored.", strna(sender), COLLECTOR_NAME);
                return 0;
        }
        if (sd_bus_message_read(msg, "stts", &counter, &previous, &observed, &reason) < 0)
                return 0;
        log_warning("Counter anomaly: %s %s (mark %" PRIu64 ", read %" PRIu64 ").", counter, reason, previous, observed);
        o = json_object_new_object();
        if (!o)
                return log_oom(), 0;
        json_object_object_add(o, "counter", json_object_new_string(counter));
        json_object_object_add(o, "previous", json_object_new_int64((int64_t) previous));
        json_object_object_add(o, "observed", json_object_new_int64((int64_t) observed));
        json_object_object_add(o, "reason", json_object_new_string(reason));
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        r = text ? manager_audit_append(m, "counter.anomaly", text, NULL, NULL, NULL, NULL) : -ENOMEM;
        if (r < 0)
                log_error_errno(r, "Audit: cannot record the counter anomaly of %s: %m", counter);
        json_object_put(o);
        return 0;
}

int collector_watch_start(Manager *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *owner;
        int r;

        assert(m);
        /* Subscribed first, then asked: no change of owner falls between the two. At start-up, not in a handler. */
        r = sd_bus_add_match(m->bus, NULL,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" COLLECTOR_NAME "'",
                             on_owner_changed, m);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(m->bus, NULL, NULL, COLLECTOR_PATH, COLLECTOR_NAME, "CounterAnomaly",
                                on_counter_anomaly, m);
        if (r < 0)
                return r;
        r = sd_bus_call_method(m->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetNameOwner", &e, &reply, "s", COLLECTOR_NAME);
        if (r < 0)
                return sd_bus_error_has_name(&e, "org.freedesktop.DBus.Error.NameHasNoOwner") ? 0 : r;
        r = sd_bus_message_read(reply, "s", &owner);
        return r < 0 ? r : set_owner(m, owner);
}
