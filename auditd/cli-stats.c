/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-audit stats: number and bytes of records by type, direction and day. */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>

#include "audit-cli.h"
#include "macro.h"

void stats_add(json_object *table, const char *key, uint64_t bytes) {
        json_object *e, *v;

        if (!json_object_object_get_ex(table, key, &e)) {
                e = json_object_new_object();
                json_object_object_add(e, "records", json_object_new_int64(0));
                json_object_object_add(e, "bytes", json_object_new_int64(0));
                json_object_object_add(table, key, e);
        }
        json_object_object_get_ex(e, "records", &v);
        json_object_set_int64(v, json_object_get_int64(v) + 1);
        json_object_object_get_ex(e, "bytes", &v);
        json_object_set_int64(v, json_object_get_int64(v) + (int64_t) bytes);
}

static void print_stats_table(const char *title, json_object *t) {
        printf("%-24s %10s %14s\n", title, "RECORDS", "PAYLOAD BYTES");
        json_object_object_foreach(t, k, v) {
                json_object *n, *b;
                json_object_object_get_ex(v, "records", &n);
                json_object_object_get_ex(v, "bytes", &b);
                printf("%-24s %10" PRId64 " %14" PRId64 "\n", k, json_object_get_int64(n), json_object_get_int64(b));
        }
        printf("\n");
}

int cmd_stats(void) {
        _cleanup_close_ int dir_fd = -EBADF;
        ShowContext c = { .out = stdout, .min_seq = 1, .stats = true };
        int r;

        r = open_dir(&dir_fd);
        if (r < 0)
                return -r;
        c.by_type = json_object_new_object();
        c.by_day = json_object_new_object();
        c.by_direction = json_object_new_object();
        r = scan_for_reading(dir_fd, &c, true);
        if (arg_json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "records", json_object_new_int64((int64_t) c.count));
                json_object_object_add(o, "bytes", json_object_new_int64((int64_t) c.bytes));
                json_object_object_add(o, "by_type", json_object_get(c.by_type));
                json_object_object_add(o, "by_day", json_object_get(c.by_day));
                json_object_object_add(o, "by_direction", json_object_get(c.by_direction));
                printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
        } else {
                printf("%" PRIu64 " records, %" PRIu64 " payload bytes\n\n", c.count, c.bytes);
                print_stats_table("TYPE", c.by_type);
                print_stats_table("DIRECTION", c.by_direction);
                print_stats_table("DAY", c.by_day);
        }
        json_object_put(c.by_type);
        json_object_put(c.by_day);
        json_object_put(c.by_direction);
        return r < 0 ? -r : 0;
}
