/* SPDX-License-Identifier: Apache-2.0 */
/* The collector's GetSnapshot reply (ipc/org.callhome.Collector1.xml) read into
 * what the allowlist judges: billing counters and marker life counts as meters,
 * supplies with their RFC 3805 special values back as numbers. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>

#include "policyd.h"

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
