/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter-model.h"

static const char *const counter_state_names[_COUNTER_STATE_MAX] = {
        [COUNTER_OK] = "ok",
        [COUNTER_ANOMALY] = "anomaly",
};

const char *counter_state_to_string(CounterState s) {
        return s < _COUNTER_STATE_MAX ? counter_state_names[s] : NULL;
}

const char *const billing_counter_names[] = {
        "TotalImpressions",      "MonochromeImpressions",    "FullColorImpressions",
        "HighlightColorImpressions", "BlankImpressions",     "TotalTwoSidedImpressions",
        "TotalSheets",
};
const size_t billing_counter_names_count = ELEMENTSOF(billing_counter_names);

static bool ends_with(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a > b && memcmp(s + a - b, suffix, b) == 0;
}

const char *billing_counter_unit(const char *name) {
        if (!counter_name_is_valid(name))
                return NULL;
        if (ends_with(name, "Impressions"))
                return "impressions";
        if (ends_with(name, "Sheets"))
                return "sheets";
        if (ends_with(name, "Pages"))
                return "pages";
        return NULL;
}

static bool in_list(const char *const *list, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (streq(list[i], s))
                        return true;
        return false;
}

bool marker_counter_unit_is_valid(const char *label) {
        static const char *const l[] = {
                "tenThousandthsOfInches", "micrometers", "characters", "lines", "impressions",
                "sheets", "dotRow", "hours", "feet", "meters",
        };
        return in_list(l, ELEMENTSOF(l), label);
}

bool supply_type_is_valid(const char *label) {
        static const char *const l[] = {
                "other", "unknown", "toner", "wasteToner", "ink", "inkCartridge", "inkRibbon",
                "wasteInk", "opc", "developer", "fuserOil", "solidWax", "ribbonWax", "wasteWax",
                "fuser", "coronaWire", "fuserOilWick", "cleanerUnit", "fuserCleaningPad",
                "transferUnit", "tonerCartridge", "fuserOiler", "water", "wasteWater",
                "glueWaterAdditive", "wastePaper", "bindingSupply", "bandingSupply",
                "stitchingWire", "shrinkWrap", "paperWrap", "staples", "inserts", "covers",
        };
        return in_list(l, ELEMENTSOF(l), label);
}

bool supply_class_is_valid(const char *label) {
        static const char *const l[] = { "other", "supplyThatIsConsumed", "receptacleThatIsFilled" };
        return in_list(l, ELEMENTSOF(l), label);
}

bool supply_unit_is_valid(const char *label) {
        static const char *const l[] = {
                "other", "unknown", "tenThousandthsOfInches", "micrometers", "impressions", "sheets",
                "hours", "thousandthsOfOunces", "tenthsOfGrams", "hundrethsOfFluidOunces",
                "tenthsOfMilliliters", "feet", "meters", "items", "percent",
        };
        return in_list(l, ELEMENTSOF(l), label);
}

void supply_done(Supply *s) {
        free(s->description);
        free(s->colorant);
        s->description = s->colorant = NULL;
}

Snapshot *snapshot_free(Snapshot *s) {
        if (!s)
                return NULL;
        free(s->serial);
        free(s->model);
        free(s->counters);
        free(s->markers);
        for (size_t i = 0; i < s->n_supplies; i++)
                supply_done(&s->supplies[i]);
        free(s->supplies);
        for (size_t i = 0; i < s->n_errors; i++) {
                free(s->errors[i].name);
                free(s->errors[i].reason);
        }
        free(s->errors);
        for (size_t i = 0; i < s->n_anomalies; i++)
                free(s->anomalies[i].counter);
        free(s->anomalies);
        free(s);
        return NULL;
}

int snapshot_new(Snapshot **ret) {
        Snapshot *s = calloc(1, sizeof(Snapshot));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Capacity goes 4, 8, 16…: reallocate exactly when n reaches it. */
static int grow(void **array, size_t n, size_t size, size_t max) {
        size_t cap;
        void *p;

        if (n >= max)
                return -E2BIG;
        if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
                return 0;
        cap = n == 0 ? 4 : n * 2;
        p = reallocarray(*array, cap, size);
        if (!p)
                return -ENOMEM;
        *array = p;
        return 0;
}

int snapshot_add_counter(Snapshot *s, const char *name, uint64_t observed) {
        const char *unit = billing_counter_unit(name);
        int r;

        if (!unit)
                return -EINVAL;
        /* Names come from one directory (or a fixed list), so they are unique. */
        r = grow((void **) &s->counters, s->n_counters, sizeof(Counter), SNAPSHOT_COUNTERS_MAX);
        if (r < 0)
                return r;
        Counter *c = &s->counters[s->n_counters++];
        *c = (Counter) { .unit = unit, .value = observed, .observed = observed, .state = COUNTER_OK };
        memcpy(c->name, name, strlen(name) + 1);
        return 0;
}

int snapshot_add_marker(Snapshot *s, uint32_t index, const char *unit, uint64_t observed) {
        int r;

        if (!marker_counter_unit_is_valid(unit))
                return -EINVAL;
        /* One index, one marker: a source that offers two must not get both billed. */
        for (size_t i = 0; i < s->n_markers; i++)
                if (s->markers[i].index == index)
                        return -EEXIST;
        r = grow((void **) &s->markers, s->n_markers, sizeof(MarkerLife), SNAPSHOT_MARKERS_MAX);
        if (r < 0)
                return r;
        MarkerLife *m = &s->markers[s->n_markers++];
        *m = (MarkerLife) { .index = index, .value = observed, .observed = observed, .state = COUNTER_OK };
        memcpy(m->unit, unit, strlen(unit) + 1);
        return 0;
}

int snapshot_add_supply(Snapshot *s, const Supply *supply) {
        int r;

        for (size_t i = 0; i < s->n_supplies; i++)
                if (s->supplies[i].index == supply->index)
                        return -EEXIST;
        r = grow((void **) &s->supplies, s->n_supplies, sizeof(Supply), SNAPSHOT_SUPPLIES_MAX);
        if (r < 0)
                return r;
        s->supplies[s->n_supplies++] = *supply;
        return 0;
}

/* Names come from directory entries a source controls: keep them printable
 * ASCII (D-Bus strings must be UTF-8) and short. */
static char *sanitized_copy(const char *s, size_t max) {
        size_t n = strnlen(s, max);
        char *c = malloc(n + 1);

        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++)
                c[i] = s[i] >= 0x20 && s[i] <= 0x7e ? s[i] : '?';
        c[n] = '\0';
        return c;
}

static int add_error(Snapshot *s, const char *name, const char *reason, bool keep) {
        char *n, *m;
        int r;

        if (keep ? s->n_kept_errors >= SNAPSHOT_KEPT_ERRORS_MAX :
                   s->n_errors - s->n_kept_errors >= SNAPSHOT_ERRORS_MAX - 1) {
                /* One last entry says there were more, so nothing is silently cut. */
                if (s->errors_folded)
                        return 0;
                s->errors_folded = true;
                name = "snapshot";
                reason = "too many errors, the rest were not listed";
                keep = false;
        }
        r = grow((void **) &s->errors, s->n_errors, sizeof(CounterError),
                 SNAPSHOT_ERRORS_MAX + SNAPSHOT_KEPT_ERRORS_MAX);
        if (r < 0)
                return r;
        n = sanitized_copy(name, 128);
        m = sanitized_copy(reason, 256);
        if (!n || !m) {
                free(n);
                free(m);
                return -ENOMEM;
        }
        s->errors[s->n_errors++] = (CounterError) { n, m };
        if (keep)
                s->n_kept_errors++;
        return 0;
}

int snapshot_add_error(Snapshot *s, const char *name, const char *reason) {
        return add_error(s, name, reason, false);
}

int snapshot_add_kept_error(Snapshot *s, const char *name, const char *reason) {
        return add_error(s, name, reason, true);
}

int snapshot_add_errorv(Snapshot *s, bool keep, const char *name, const char *format, va_list ap) {
        char buf[256];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        (void) vsnprintf(buf, sizeof(buf), format, ap);
#pragma GCC diagnostic pop
        return add_error(s, name, buf, keep);
}

int snapshot_add_errorf(Snapshot *s, const char *name, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        int r = snapshot_add_errorv(s, false, name, format, ap);
        va_end(ap);
        return r;
}

int snapshot_add_kept_errorf(Snapshot *s, const char *name, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        int r = snapshot_add_errorv(s, true, name, format, ap);
        va_end(ap);
        return r;
}

int snapshot_add_anomaly(Snapshot *s, const char *counter, uint64_t previous, uint64_t observed, const char *reason) {
        char *c;
        int r;

        r = grow((void **) &s->anomalies, s->n_anomalies, sizeof(Anomaly), SNAPSHOT_COUNTERS_MAX + SNAPSHOT_MARKERS_MAX);
        if (r < 0)
                return r;
        c = strdup(counter);
        if (!c)
                return -ENOMEM;
        s->anomalies[s->n_anomalies++] = (Anomaly) { c, previous, observed, reason };
        return 0;
}

void snapshot_remove_counter(Snapshot *s, size_t i) {
        assert(i < s->n_counters);
        memmove(&s->counters[i], &s->counters[i + 1], (s->n_counters - i - 1) * sizeof(Counter));
        s->n_counters--;
}

void snapshot_remove_marker(Snapshot *s, size_t i) {
        assert(i < s->n_markers);
        memmove(&s->markers[i], &s->markers[i + 1], (s->n_markers - i - 1) * sizeof(MarkerLife));
        s->n_markers--;
}

static void format_level(FILE *f, const char *what, LevelValue v) {
        if (v.state == LEVEL_VALUE)
                fprintf(f, " %s=%" PRIi32, what, v.value);
        else
                fprintf(f, " %s=<%s>", what, level_state_to_string(v.state));
}

int snapshot_format(const Snapshot *s, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "serial=%s model=%s\n", strna(s->serial), strna(s->model));
        for (size_t i = 0; i < s->n_counters; i++) {
                const Counter *c = &s->counters[i];
                fprintf(f, "counter %s=%" PRIu64 " observed=%" PRIu64 " %s %s\n", c->name, c->value, c->observed,
                        c->unit, counter_state_to_string(c->state));
        }
        for (size_t i = 0; i < s->n_markers; i++) {
                const MarkerLife *m = &s->markers[i];
                fprintf(f, "marker %" PRIu32 " life=%" PRIu64 " observed=%" PRIu64 " %s %s\n", m->index, m->value,
                        m->observed, m->unit, counter_state_to_string(m->state));
        }
        for (size_t i = 0; i < s->n_supplies; i++) {
                const Supply *p = &s->supplies[i];
                fprintf(f, "supply %" PRIu32 " %s %s \"%s\" %s %s", p->index, p->type, p->class, p->description,
                        p->colorant, p->unit);
                format_level(f, "level", p->level);
                format_level(f, "max", p->max_capacity);
                fputc('\n', f);
        }
        for (size_t i = 0; i < s->n_errors; i++)
                fprintf(f, "error %s: %s\n", s->errors[i].name, s->errors[i].reason);
        for (size_t i = 0; i < s->n_anomalies; i++)
                fprintf(f, "anomaly %s previous=%" PRIu64 " observed=%" PRIu64 " %s\n", s->anomalies[i].counter,
                        s->anomalies[i].previous, s->anomalies[i].observed, s->anomalies[i].reason);
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}
