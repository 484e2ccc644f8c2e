/* SPDX-License-Identifier: Apache-2.0 */
/* A deterministic simulated printer: the same seed and the same commands give
 * the same counters and supplies, bit for bit. A four-colour laser: sheets go
 * through simplex or duplex, each impression monochrome, full colour or blank;
 * toner is used per impression, the drum per impression; a waste toner box and
 * a fuser show the RFC 3805 special values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

enum {
        SIM_TOTAL_IMPRESSIONS,
        SIM_MONOCHROME_IMPRESSIONS,
        SIM_FULL_COLOR_IMPRESSIONS,
        SIM_HIGHLIGHT_COLOR_IMPRESSIONS,
        SIM_BLANK_IMPRESSIONS,
        SIM_TWO_SIDED_IMPRESSIONS,
        SIM_TOTAL_SHEETS,
        _SIM_COUNTER_MAX,
};

typedef struct SimSupply {
        const char *type, *class, *description, *colorant, *unit;
        LevelValue level, max;
} SimSupply;

#define SIM_SUPPLIES 7

struct SimPrinter {
        uint64_t seed;
        uint64_t rng;
        uint64_t counters[_SIM_COUNTER_MAX];
        uint64_t marker_life;
        SimSupply supplies[SIM_SUPPLIES];
};

/* splitmix64: small, fast, and the same on every platform. */
static uint64_t sim_next(SimPrinter *p) {
        uint64_t z = (p->rng += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

int sim_printer_new(uint64_t seed, SimPrinter **ret) {
        SimPrinter *p = calloc(1, sizeof(SimPrinter));
        if (!p)
                return -ENOMEM;
        p->seed = p->rng = seed;
        /* Toner in tenths of grams; the drum in impressions. */
        static const SimSupply initial[SIM_SUPPLIES] = {
                { "toner", "supplyThatIsConsumed", "Black Toner Cartridge", "black", "tenthsOfGrams", { LEVEL_VALUE, 2400 }, { LEVEL_VALUE, 2400 } },
                { "toner", "supplyThatIsConsumed", "Cyan Toner Cartridge", "cyan", "tenthsOfGrams", { LEVEL_VALUE, 1500 }, { LEVEL_VALUE, 1500 } },
                { "toner", "supplyThatIsConsumed", "Magenta Toner Cartridge", "magenta", "tenthsOfGrams", { LEVEL_VALUE, 1500 }, { LEVEL_VALUE, 1500 } },
                { "toner", "supplyThatIsConsumed", "Yellow Toner Cartridge", "yellow", "tenthsOfGrams", { LEVEL_VALUE, 1500 }, { LEVEL_VALUE, 1500 } },
                { "opc", "supplyThatIsConsumed", "Imaging Drum", "", "impressions", { LEVEL_VALUE, 60000 }, { LEVEL_VALUE, 60000 } },
                { "wasteToner", "receptacleThatIsFilled", "Waste Toner Box", "", "tenthsOfGrams", { LEVEL_SOME_REMAINING, 0 }, { LEVEL_UNKNOWN, 0 } },
                { "fuser", "other", "Fuser Unit", "", "other", { LEVEL_OTHER, 0 }, { LEVEL_OTHER, 0 } },
        };
        memcpy(p->supplies, initial, sizeof(initial));
        /* A printer leaves the factory with a few test pages on its meters. */
        (void) sim_printer_step(p, 10);
        *ret = p;
        return 0;
}

SimPrinter *sim_printer_free(SimPrinter *p) {
        free(p);
        return NULL;
}

static void use(SimSupply *s, int32_t amount) {
        if (s->level.state != LEVEL_VALUE)
                return;
        s->level.value = s->level.value > amount ? s->level.value - amount : 0;
}

int sim_printer_step(SimPrinter *p, uint32_t sheets) {
        if (sheets > SIM_STEP_MAX)
                return -E2BIG;
        for (uint32_t i = 0; i < sheets; i++) {
                uint64_t r = sim_next(p);
                unsigned sides = (r & 3) == 0 ? 2 : 1; /* a quarter of the jobs duplex */

                p->counters[SIM_TOTAL_SHEETS]++;
                if (sides == 2)
                        p->counters[SIM_TWO_SIDED_IMPRESSIONS] += 2;
                for (unsigned side = 0; side < sides; side++) {
                        uint64_t q = sim_next(p);

                        p->counters[SIM_TOTAL_IMPRESSIONS]++;
                        p->marker_life++;
                        use(&p->supplies[4], 1);
                        if (q % 40 == 0)
                                p->counters[SIM_BLANK_IMPRESSIONS]++;
                        else if ((q >> 8) % 3 == 0) {
                                p->counters[SIM_FULL_COLOR_IMPRESSIONS]++;
                                use(&p->supplies[0], (int32_t) ((q >> 16) % 2));
                                use(&p->supplies[1], (int32_t) ((q >> 20) % 3));
                                use(&p->supplies[2], (int32_t) ((q >> 24) % 3));
                                use(&p->supplies[3], (int32_t) ((q >> 28) % 3));
                        } else {
                                p->counters[SIM_MONOCHROME_IMPRESSIONS]++;
                                use(&p->supplies[0], (int32_t) ((q >> 16) % 3));
                        }
                }
        }
        return 0;
}

int sim_printer_replace_supply(SimPrinter *p, uint32_t index) {
        SimSupply *s;

        if (index < 1 || index > SIM_SUPPLIES)
                return -ENOENT;
        s = &p->supplies[index - 1];
        if (s->max.state != LEVEL_VALUE)
                return -EOPNOTSUPP;
        s->level = s->max;
        return 0;
}

int sim_printer_reset_counter(SimPrinter *p, const char *name) {
        if (streq(name, "markers/1/life_count")) {
                p->marker_life = 0;
                return 0;
        }
        for (size_t i = 0; i < _SIM_COUNTER_MAX; i++)
                if (streq(name, billing_counter_names[i])) {
                        p->counters[i] = 0;
                        return 0;
                }
        return -ENOENT;
}

int sim_printer_read(SimPrinter *p, Snapshot *snap) {
        char serial[32];
        int r;

        (void) snprintf(serial, sizeof(serial), "SIM%016llX", (unsigned long long) (p->seed ^ UINT64_C(0x5eed5eed5eed5eed)));
        snap->serial = strdup(serial);
        snap->model = strdup("callhome Simulated Printer 1");
        if (!snap->serial || !snap->model)
                return -ENOMEM;
        for (size_t i = 0; i < _SIM_COUNTER_MAX; i++) {
                r = snapshot_add_counter(snap, billing_counter_names[i], p->counters[i]);
                if (r < 0)
                        return r;
        }
        r = snapshot_add_marker(snap, 1, "impressions", p->marker_life);
        if (r < 0)
                return r;
        for (uint32_t i = 0; i < SIM_SUPPLIES; i++) {
                const SimSupply *s = &p->supplies[i];
                Supply sup = { .index = i + 1, .level = s->level, .max_capacity = s->max };

                memcpy(sup.type, s->type, strlen(s->type) + 1);
                memcpy(sup.class, s->class, strlen(s->class) + 1);
                memcpy(sup.unit, s->unit, strlen(s->unit) + 1);
                sup.description = strdup(s->description);
                sup.colorant = strdup(s->colorant);
                if (!sup.description || !sup.colorant) {
                        supply_done(&sup);
                        return -ENOMEM;
                }
                r = snapshot_add_supply(snap, &sup);
                if (r < 0) {
                        supply_done(&sup);
                        return r;
                }
        }
        snap->files_read = 0;
        return 0;
}
