/* SPDX-License-Identifier: Apache-2.0 */
/* D-Bus round trips against a running collector: N GetSnapshot() calls
 * (each reply fully walked), and N Get("Source") calls as the baseline (the
 * same round trip with no work behind it). Prints latency percentiles.
 *
 *   bench-snapshot N        (DBUS_SYSTEM_BUS_ADDRESS selects the bus) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bus-util.h"

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *t, unsigned n) {
        double sum = 0;

        qsort(t, n, sizeof(uint64_t), cmp);
        for (unsigned i = 0; i < n; i++)
                sum += (double) t[i];
        printf("%-22s n=%u mean=%.1fus p50=%.1fus p95=%.1fus p99=%.1fus max=%.1fus\n", what, n, sum / n / 1e3,
               (double) t[n / 2] / 1e3, (double) t[n * 95 / 100] / 1e3, (double) t[n * 99 / 100] / 1e3,
               (double) t[n - 1] / 1e3);
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        unsigned n = argc > 1 ? (unsigned) strtoul(argv[1], NULL, 10) : 1000;
        uint64_t *snap, *base;
        int r;

        if (n == 0)
                return 2;
        snap = calloc(n, sizeof(uint64_t));
        base = calloc(n, sizeof(uint64_t));
        if (!snap || !base)
                return 1;
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return fprintf(stderr, "bus: %s\n", strerror(-r)), 1;
        for (unsigned i = 0; i < n; i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                uint64_t t0 = now_ns();

                r = sd_bus_call_method(bus, "org.callhome.Collector1", "/org/callhome/Collector1",
                                       "org.callhome.Collector1", "GetSnapshot", &error, &reply, NULL);
                if (r < 0)
                        return fprintf(stderr, "GetSnapshot: %s\n", error.message ?: strerror(-r)), 1;
                r = sd_bus_message_skip(reply, NULL); /* walk the whole reply, as a consumer would */
                if (r < 0)
                        return fprintf(stderr, "reply: %s\n", strerror(-r)), 1;
                snap[i] = now_ns() - t0;
        }
        for (unsigned i = 0; i < n; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_free_ char *s = NULL;
                uint64_t t0 = now_ns();

                r = sd_bus_get_property_string(bus, "org.callhome.Collector1", "/org/callhome/Collector1",
                                               "org.callhome.Collector1", "Source", &error, &s);
                if (r < 0)
                        return fprintf(stderr, "Get Source: %s\n", error.message ?: strerror(-r)), 1;
                base[i] = now_ns() - t0;
        }
        report("GetSnapshot", snap, n);
        report("baseline Get(Source)", base, n);
        qsort(snap, n, sizeof(uint64_t), cmp);
        printf("ratio p50 GetSnapshot / baseline: %.2f\n", (double) snap[n / 2] / (double) base[n / 2]);
        free(snap);
        free(base);
        return 0;
}
