/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "audit-cli.h"
#include "cli-output.h"

static void journal_field(FILE *f, const char *name, const void *data, size_t len) {
        /* Journal Export Format: text fields as NAME=value, binary ones length-prefixed. */
        if (text_printable(data, len, false)) {
                fprintf(f, "%s=", name);
                fwrite(data, 1, len, f);
                fputc('\n', f);
        } else {
                uint8_t le[8];
                audit_put_le64(le, len);
                fprintf(f, "%s\n", name);
                fwrite(le, 1, 8, f);
                fwrite(data, 1, len, f);
                fputc('\n', f);
        }
}

void journal_record(FILE *f, const AuditRecord *rec) {
        char hex[2 * AUDIT_BOOT_ID_SIZE + 1], buf[64];

        fprintf(f, "__REALTIME_TIMESTAMP=%" PRIu64 "\n__MONOTONIC_TIMESTAMP=%" PRIu64 "\n", rec->realtime_usec,
                rec->monotonic_usec);
        audit_hex(rec->boot_id, AUDIT_BOOT_ID_SIZE, hex);
        fprintf(f, "_BOOT_ID=%s\n", hex);
        fprintf(f, "SYSLOG_IDENTIFIER=callhome-audit\n");
        (void) snprintf(buf, sizeof(buf), "%" PRIu64, rec->seq);
        journal_field(f, "AUDIT_SEQ", buf, strlen(buf));
        journal_field(f, "AUDIT_TYPE", rec->type, rec->type_len);
        journal_field(f, "AUDIT_DIRECTION", audit_direction_to_string(rec->direction),
                      strlen(audit_direction_to_string(rec->direction)));
        if (rec->txn_len)
                journal_field(f, "AUDIT_TXN", rec->txn, rec->txn_len);
        journal_field(f, "MESSAGE", rec->payload, rec->payload_len);
        fputc('\n', f);
}
