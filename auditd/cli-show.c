/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-audit show (and --follow) and export: the records, filtered, in a table or an export format. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit-cli.h"
#include "cli-output.h"
#include "log.h"
#include "macro.h"

/* A one-line summary of the payload: its text, escaped, or what it is. */
void summary(const AuditRecord *rec, char *buf, size_t size) {
        size_t done;

        assert(size > SUMMARY_MAX + 4);
        if (rec->payload_len == 0) {
                (void) snprintf(buf, size, "-");
                return;
        }
        if (!text_printable(rec->payload, rec->payload_len, true)) {
                (void) snprintf(buf, size, "<%zu bytes of binary data>", rec->payload_len);
                return;
        }
        done = cli_escape(rec->payload, rec->payload_len, CLI_ESCAPE_SPACES, buf, SUMMARY_MAX + 1);
        if (done < rec->payload_len)
                strcat(buf, "...");
}

static int on_show_record(const AuditRecord *rec, const AuditSegmentInfo *seg, uint64_t off, void *userdata) {
        ShowContext *c = userdata;

        if (rec->seq < c->min_seq)
                return 0;
        c->last_seq = rec->seq;
        if (arg_since && rec->realtime_usec < arg_since)
                return 0;
        if (arg_type && (strlen(arg_type) != rec->type_len || memcmp(arg_type, rec->type, rec->type_len) != 0))
                return 0;
        if (arg_txn && (strlen(arg_txn) != rec->txn_len || memcmp(arg_txn, rec->txn, rec->txn_len) != 0))
                return 0;

        if (c->stats) {
                char type[4 * AUDIT_TYPE_MAX + 1], day[32];
                time_t t = (time_t) (rec->realtime_usec / 1000000U);
                struct tm tm;

                (void) cli_escape((const uint8_t *) rec->type, rec->type_len, 0, type, sizeof(type));
                if (!localtime_r(&t, &tm) || strftime(day, sizeof(day), "%Y-%m-%d", &tm) == 0)
                        (void) snprintf(day, sizeof(day), "?");
                stats_add(c->by_type, type, rec->payload_len);
                stats_add(c->by_day, day, rec->payload_len);
                stats_add(c->by_direction, audit_direction_to_string(rec->direction), rec->payload_len);
                c->count++;
                c->bytes += rec->payload_len;
                return 0;
        }
        if (c->journal) {
                journal_record(c->out, rec);
                return 0;
        }
        if (arg_json || c->export_payload) {
                json_object *o = record_json(rec, seg, off, c->export_payload);
                fprintf(c->out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
        } else {
                char t[64], sum[128], type[4 * AUDIT_TYPE_MAX + 1], txn[4 * AUDIT_TXN_MAX + 1];
                format_time(rec->realtime_usec, t, sizeof(t));
                summary(rec, sum, sizeof(sum));
                (void) cli_escape((const uint8_t *) rec->type, rec->type_len, 0, type, sizeof(type));
                (void) cli_escape((const uint8_t *) rec->txn, rec->txn_len, 0, txn, sizeof(txn));
                fprintf(c->out, "%8" PRIu64 "  %s  %-8s  %-24s  %-28s  %8zu  %s\n", rec->seq, t,
                        audit_direction_to_string(rec->direction), type, rec->txn_len ? txn : "-", rec->payload_len, sum);
        }
        return 0;
}

int scan_for_reading(int dir_fd, ShowContext *c, bool warn) {
        CheckpointVerifier vkey;
        AuditScanOptions o = { .on_record = on_show_record, .userdata = c, .allow_torn_tail = true };
        AuditScanResult res;
        bool have_vkey;
        int r;

        r = load_vkey(dir_fd, &vkey, &have_vkey);
        if (r < 0)
                return r;
        o.vkey = have_vkey ? &vkey : NULL;
        r = audit_log_scan(dir_fd, &o, &res);
        if (r < 0)
                return log_error_errno(r, "Cannot read the log in %s: %m", arg_dir), -EXIT_USAGE;
        fflush(c->out);
        if (res.broken && warn) {
                fprintf(stderr, "WARNING: the log is damaged at seq %" PRIu64 " (file %s, offset %" PRIu64 "): %s; "
                        "records from there on are not shown. Run callhome-audit verify.\n",
                        res.violation.seq, res.violation.file, res.violation.offset, res.violation.what);
                return -EXIT_VIOLATION;
        }
        return 0;
}

/* What a scan would see, cheaply: the segments' names and sizes. --follow scans
 * (and verifies) the log again only when that changed. */
static uint64_t log_fingerprint(int dir_fd) {
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        uint64_t h = 1469598103934665603ULL; /* FNV-1a over (first seq, size) of each segment */
        size_t n = 0;

        if (audit_segments_list(dir_fd, &segs, &n) < 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                uint64_t v[2] = { segs[i].first_seq, segs[i].size };
                const uint8_t *p = (const uint8_t *) v;
                for (size_t j = 0; j < sizeof(v); j++)
                        h = (h ^ p[j]) * 1099511628211ULL;
        }
        return h;
}

int cmd_show(bool export_payload) {
        _cleanup_close_ int dir_fd = -EBADF;
        ShowContext c = { .out = stdout, .min_seq = 1, .export_payload = export_payload, .journal = arg_journal };
        int r;

        r = open_dir(&dir_fd);
        if (r < 0)
                return -r;
        if (!export_payload && !arg_json && !arg_journal)
                printf("%8s  %-19s  %-8s  %-24s  %-28s  %8s  %s\n", "SEQ", "TIME", "DIR", "TYPE", "TRANSACTION", "SIZE",
                       "SUMMARY");
        uint64_t seen = log_fingerprint(dir_fd);
        r = scan_for_reading(dir_fd, &c, true);
        if (r < 0)
                return -r;
        while (arg_follow) {
                uint64_t now;

                (void) usleep(500000);
                now = log_fingerprint(dir_fd);
                if (now == seen)
                        continue;
                seen = now;
                c.min_seq = c.last_seq + 1;
                r = scan_for_reading(dir_fd, &c, true);
                if (r < 0)
                        return -r;
        }
        return 0;
}
