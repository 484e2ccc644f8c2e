/* SPDX-License-Identifier: Apache-2.0 */
/* One client of the Append benchmark: durable appends of a 512-byte payload,
 * one after the other, each waiting for its reply, for SECONDS (or COUNT
 * appends with -n). Prints how many went through. A C client, so that the
 * figures are the daemon's and the disk's, not an interpreter's.
 *
 *   bench-append-client NAME SECONDS | bench-append-client -n NAME COUNT
 *   (DBUS_SYSTEM_BUS_ADDRESS selects the bus; run as callhome-policy) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus-util.h"

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int append(sd_bus *bus, const char *name, unsigned long i) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        static uint8_t payload[512];
        char txn[64];
        int r;

        memset(payload, 'm', sizeof(payload));
        (void) snprintf(txn, sizeof(txn), "%s-%lu", name, i);
        r = sd_bus_message_new_method_call(bus, &m, "org.callhome.Audit1", "/org/callhome/Audit1",
                                           "org.callhome.Audit1", "Append");
        if (r >= 0)
                r = sd_bus_message_append(m, "sss", "meter-reads", "inbound", txn);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', payload, sizeof(payload));
        if (r >= 0)
                r = sd_bus_message_append(m, "a{ss}", 0);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                fprintf(stderr, "Append: %s\n", error.message ?: strerror(-r));
        return r;
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        bool by_count = argc == 4 && strcmp(argv[1], "-n") == 0;
        const char *name;
        double limit, end;
        unsigned long n = 0;
        int r;

        if (argc != 3 && !by_count)
                return fprintf(stderr, "usage: bench-append-client NAME SECONDS | -n NAME COUNT\n"), 2;
        name = argv[by_count ? 2 : 1];
        limit = strtod(argv[by_count ? 3 : 2], NULL);
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return fprintf(stderr, "bus: %s\n", strerror(-r)), 1;
        end = now() + limit;
        while (by_count ? (double) n < limit : now() < end) {
                if (append(bus, name, n) < 0)
                        return 1;
                n++;
        }
        printf("%lu\n", n);
        return 0;
}
