/* SPDX-License-Identifier: Apache-2.0 */
/* org.callhome.Collector1: the vtable and the snapshot's wire form. The
 * contract is ipc/org.callhome.Collector1.xml. */
#include "bus-peers.h"
#include "bus-util.h"
#include "collector-bus.h"
#include "log.h"

#define SNAPSHOT_SIGNATURE "(ssttta(sstts)a(ustts)a(usssss(si)(si))a(ss)a(stts)a{sv})"

static int append_level(sd_bus_message *reply, LevelValue v) {
        return sd_bus_message_append(reply, "(si)", level_state_to_string(v.state),
                                     v.state == LEVEL_VALUE ? v.value : 0);
}

int collector_bus_append_snapshot(sd_bus_message *reply, const Snapshot *s, const char *source) {
        int r;

        r = sd_bus_message_open_container(reply, 'r', "ssttta(sstts)a(ustts)a(usssss(si)(si))a(ss)a(stts)a{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "ssttt", s->serial ?: "", s->model ?: "", s->time_usec, s->generation,
                                  s->sequence);
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(reply, 'a', "(sstts)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_counters; i++) {
                const Counter *c = &s->counters[i];
                r = sd_bus_message_append(reply, "(sstts)", c->name, c->unit, c->value, c->observed,
                                          counter_state_to_string(c->state));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(reply, 'a', "(ustts)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_markers; i++) {
                const MarkerLife *mk = &s->markers[i];
                r = sd_bus_message_append(reply, "(ustts)", mk->index, mk->unit, mk->value, mk->observed,
                                          counter_state_to_string(mk->state));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(reply, 'a', "(usssss(si)(si))");
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_supplies; i++) {
                const Supply *p = &s->supplies[i];
                r = sd_bus_message_open_container(reply, 'r', "usssss(si)(si)");
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "usssss", p->index, p->type, p->class, p->description ?: "",
                                          p->colorant ?: "", p->unit);
                if (r < 0)
                        return r;
                r = append_level(reply, p->level);
                if (r < 0)
                        return r;
                r = append_level(reply, p->max_capacity);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(reply, 'a', "(ss)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_errors; i++) {
                r = sd_bus_message_append(reply, "(ss)", s->errors[i].name, s->errors[i].reason);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(reply, 'a', "(stts)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_anomalies; i++) {
                const Anomaly *a = &s->anomalies[i];
                r = sd_bus_message_append(reply, "(stts)", a->counter, a->previous, a->observed, a->reason);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;

        r = sd_bus_message_append(reply, "a{sv}", 2, "source", "s", source, "files_read", "u",
                                  (uint32_t) s->files_read);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static void emit_anomalies(Manager *m, const Snapshot *s, const bool *fresh) {
        for (size_t i = 0; i < s->n_anomalies; i++) {
                const Anomaly *a = &s->anomalies[i];
                int r;

                if (!fresh || !fresh[i])
                        continue;
                if (streq(a->reason, ANOMALY_DECREASE))
                        log_warning("Counter %s went down from %llu to %llu; holding the high-water mark.", a->counter,
                                    (unsigned long long) a->previous, (unsigned long long) a->observed);
                else
                        log_warning("Counter %s jumped from %llu to %llu, faster than the engine can count; holding "
                                    "the high-water mark until later readings confirm it.", a->counter,
                                    (unsigned long long) a->previous, (unsigned long long) a->observed);
                r = sd_bus_emit_signal(m->bus, COLLECTOR_BUS_PATH, COLLECTOR_BUS_INTERFACE, "CounterAnomaly", "stts",
                                       a->counter, a->previous, a->observed, a->reason);
                if (r < 0)
                        log_warning_errno(r, "Failed to emit CounterAnomaly for %s, ignoring: %m", a->counter);
        }
}

static int method_get_snapshot(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(snapshot_freep) Snapshot *s = NULL;
        _cleanup_free_ bool *fresh = NULL;
        Manager *m = userdata;
        int r;

        r = bus_check_caller(msg, m->policy_uid, (gid_t) -1, error);
        if (r < 0)
                return r;
        r = manager_take_snapshot(m, &s, &fresh);
        if (r < 0)
                return log_error_errno(r, "Failed to take a snapshot: %m");
        emit_anomalies(m, s, fresh);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = collector_bus_append_snapshot(reply, s, m->source->description);
        if (r < 0)
                return log_error_errno(r, "Failed to build the snapshot reply: %m");
        return sd_bus_send(NULL, reply, NULL);
}

/* The simulator's controls: root only, and only on a sim: source. */
static int check_simulator(sd_bus_message *msg, Manager *m, sd_bus_error *error) {
        int r = bus_check_caller(msg, (uid_t) -1, (gid_t) -1, error);
        if (r < 0)
                return r;
        if (!m->source->sim)
                return sd_bus_error_setf(error, COLLECTOR_ERROR_NOT_SIMULATOR,
                                         "The source is %s, not a simulator (start with --source=sim:SEED).",
                                         m->source->description);
        return 0;
}

static int method_simulator_step(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint32_t sheets;
        int r;

        r = check_simulator(msg, m, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "u", &sheets);
        if (r < 0)
                return r;
        if (sheets > SIM_STEP_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "At most %u sheets per step; call again for more.", SIM_STEP_MAX);
        r = sim_printer_step(m->source->sim, sheets);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_simulator_replace_supply(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint32_t index;
        int r;

        r = check_simulator(msg, m, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "u", &index);
        if (r < 0)
                return r;
        r = sim_printer_replace_supply(m->source->sim, index);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "No supply with index %u; see the supplies of GetSnapshot().", index);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Supply %u has no numeric max capacity to refill to.", index);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_simulator_reset_counter(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        int r;

        r = check_simulator(msg, m, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        r = sim_printer_reset_counter(m->source->sim, name);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "No counter '%.64s': use a billing counter name or markers/1/life_count.",
                                         name);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

/* Properties are guarded like the methods: the bus policy already limits who
 * reaches us, the credentials check holds even if that policy were wider. */
static int check_property_caller(sd_bus *bus, Manager *m, sd_bus_error *error) {
        return bus_check_property_caller(bus, m->policy_uid, (gid_t) -1, error);
}

static int property_get_source(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r = check_property_caller(bus, m, error);
        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "s", m->source->description);
}

static int property_get_u64(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r = check_property_caller(bus, m, error);
        if (r < 0)
                return r;
        if (streq(property, "LastSnapshotTime"))
                return sd_bus_message_append(reply, "t", m->last_snapshot_usec);
        return sd_bus_message_append(reply, "t", m->highwater->generation);
}

static const sd_bus_vtable collector_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Source", "s", property_get_source, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Generation", "t", property_get_u64, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("LastSnapshotTime", "t", property_get_u64, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("GetSnapshot", SD_BUS_NO_ARGS, SD_BUS_RESULT(SNAPSHOT_SIGNATURE, snapshot),
                                method_get_snapshot, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SimulatorStep", SD_BUS_ARGS("u", sheets), SD_BUS_NO_RESULT,
                                method_simulator_step, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SimulatorReplaceSupply", SD_BUS_ARGS("u", index), SD_BUS_NO_RESULT,
                                method_simulator_replace_supply, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SimulatorResetCounter", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT,
                                method_simulator_reset_counter, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("CounterAnomaly", SD_BUS_ARGS("s", counter, "t", previous, "t", observed, "s", reason), 0),
        SD_BUS_VTABLE_END,
};

int collector_bus_register(Manager *m) {
        int r;

        /* Callers judged from an asynchronous credentials cache, never by a bus call
         * on the loop (bus-peers.h); no reply is counted as unread here. */
        r = bus_peers_new(m->bus, COLLECTOR_BUS_PATH, 0, &m->peers);
        if (r < 0)
                return r;
        return sd_bus_add_object_vtable(m->bus, NULL, COLLECTOR_BUS_PATH, COLLECTOR_BUS_INTERFACE, collector_vtable, m);
}
