/* SPDX-License-Identifier: Apache-2.0 */
/* In-process snapshot cost, for callgrind: reads TREE N times through the
 * collector's own code (sysfs reader + high-water judgement), or, with
 * --baseline, with the simplest possible reader (open, read, close every
 * file, no checks, no parsing), so the cost of the safety checks shows as a
 * ratio. With a bus (DBUS_SYSTEM_BUS_ADDRESS), each snapshot is also
 * serialized into a D-Bus message, as the daemon's reply would be.
 *
 *   bench-read [--baseline] TREE N */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector-bus.h"

static unsigned long baseline_walk(int dfd, int depth) {
        unsigned long n = 0;
        DIR *d = fdopendir(dfd);
        struct dirent *de;
        char buf[4097];

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                if (de->d_type == DT_DIR && depth < 3)
                        n += baseline_walk(fd, depth + 1);
                else {
                        while (read(fd, buf, sizeof(buf)) > 0)
                                ;
                        close(fd);
                        n++;
                }
        }
        closedir(d);
        return n;
}

int main(int argc, char *argv[]) {
        bool baseline = argc == 4 && streq(argv[1], "--baseline");
        const char *tree = argv[baseline ? 2 : 1];
        SourceLimits limits = { SOURCE_FILE_SIZE_DEFAULT, SOURCE_FILES_DEFAULT };
        _cleanup_(source_freep) Source *src = NULL;
        HighWater *hw;
        struct timespec a, b;
        unsigned long n;
        char spec[4200];

        if (argc != (baseline ? 4 : 3))
                return fprintf(stderr, "Usage: bench-read [--baseline] TREE N\n"), 2;
        n = strtoul(argv[baseline ? 3 : 2], NULL, 10);
        (void) snprintf(spec, sizeof(spec), "sysfs:%s", tree);
        if (source_new(spec, &limits, &src) < 0)
                return fprintf(stderr, "cannot open %s\n", tree), 1;
        if (highwater_new(-EBADF, &hw) < 0)
                return 1;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        if (secure_getenv("DBUS_SYSTEM_BUS_ADDRESS") && sd_bus_open_system(&bus) < 0)
                return fprintf(stderr, "cannot connect to the bus\n"), 1;

        clock_gettime(CLOCK_MONOTONIC, &a);
        for (unsigned long i = 0; i < n; i++) {
                if (baseline) {
                        (void) baseline_walk(open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC), 0);
                        continue;
                }
                _cleanup_free_ const char **known = NULL;
                HighWaterClock now;
                size_t n_known;
                Snapshot *s;

                highwater_clock_now(&now);
                if (highwater_names(hw, &known, &n_known) < 0 || snapshot_new(&s) < 0 ||
                    source_read(src, known, n_known, s) < 0 || highwater_apply(hw, s, &now, NULL) < 0)
                        return 1;
                if (bus) {
                        sd_bus_message *m = NULL;
                        if (sd_bus_message_new_signal(bus, &m, "/org/callhome/Collector1", "org.callhome.Collector1",
                                                      "Bench") < 0 ||
                            collector_bus_append_snapshot(m, s, "bench") < 0)
                                return fprintf(stderr, "serialization failed\n"), 1;
                        sd_bus_message_unref(m);
                }
                if (i == 0)
                        printf("counters=%zu markers=%zu supplies=%zu errors=%zu files=%u\n", s->n_counters,
                               s->n_markers, s->n_supplies, s->n_errors, s->files_read);
                snapshot_free(s);
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%s: %lu snapshots, %.1f us each\n", baseline ? "baseline" : "collector", n,
               ((double) (b.tv_sec - a.tv_sec) * 1e9 + (double) (b.tv_nsec - a.tv_nsec)) / 1e3 / (double) (n ?: 1));
        highwater_free(hw);
        return 0;
}
