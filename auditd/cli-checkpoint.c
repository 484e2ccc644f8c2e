/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-audit checkpoint: the latest signed checkpoint in the log, as a witness needs it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-cli.h"
#include "cli-output.h"
#include "log.h"
#include "macro.h"

typedef struct LatestCheckpoint {
        char *note;
} LatestCheckpoint;

static int on_checkpoint(const AuditRecord *rec, const AuditSegmentInfo *seg, uint64_t off, void *userdata) {
        LatestCheckpoint *l = userdata;

        if (rec->kind != AUDIT_KIND_CHECKPOINT)
                return 0;
        free(l->note);
        l->note = strndup((const char *) rec->payload, rec->payload_len);
        return l->note ? 0 : -ENOMEM;
}

/* Prints the lines of text escaped one by one (a line that is printable text goes out as it is). */
static int print_lines_escaped(const char *text, size_t len) {
        while (len > 0) {
                const char *eol = memchr(text, '\n', len);
                size_t n = eol ? (size_t) (eol - text) : len;
                _cleanup_free_ char *e = cli_escape_dup((const uint8_t *) text, n);

                if (!e)
                        return -ENOMEM;
                printf("%s\n", e);
                if (!eol)
                        break;
                text += n + 1;
                len -= n + 1;
        }
        return 0;
}

/* The note as a witness needs it: its body and only the signature lines that
 * verify under the log's checkpoint key; other lines are anyone's and unsigned. */
static int print_checkpoint_note(const char *note, const CheckpointVerifier *v) {
        const char *sep = strstr(note, "\n\n"), *p;
        size_t body_len, kept = 0;
        int r;

        if (!sep)
                return -EBADMSG;
        body_len = (size_t) (sep - note) + 1;
        r = print_lines_escaped(note, body_len);
        if (r < 0)
                return r;
        printf("\n");
        for (p = sep + 2; *p;) {
                const char *eol = strchrnul(p, '\n');
                size_t line_len = (size_t) (eol - p) + (*eol ? 1 : 0);
                _cleanup_free_ char *one = NULL;
                Checkpoint cp;

                if (asprintf(&one, "%.*s%.*s", (int) body_len + 1, note, (int) line_len, p) < 0)
                        return -ENOMEM;
                if (checkpoint_parse_verify(one, strlen(one), v, &cp) >= 0) {
                        fwrite(p, 1, line_len, stdout);
                        kept++;
                }
                p += line_len;
        }
        return kept > 0 ? 0 : -EPERM;
}

int cmd_checkpoint(void) {
        _cleanup_close_ int dir_fd = -EBADF;
        LatestCheckpoint l = {};
        CheckpointVerifier vkey;
        AuditScanOptions o = { .on_record = on_checkpoint, .userdata = &l, .allow_torn_tail = true };
        AuditScanResult res;
        bool have_vkey;
        int r;

        r = open_dir(&dir_fd);
        if (r < 0)
                return -r;
        r = load_vkey(dir_fd, &vkey, &have_vkey);
        if (r < 0)
                return -r;
        o.vkey = have_vkey ? &vkey : NULL;
        r = audit_log_scan(dir_fd, &o, &res);
        if (r < 0) {
                free(l.note);
                return log_error_errno(r, "Cannot read the log: %m"), EXIT_USAGE;
        }
        if (!l.note) {
                log_error("The log holds no checkpoint yet.");
                return EXIT_USAGE;
        }
        r = res.have_vkey ? print_checkpoint_note(l.note, &res.vkey) : -EPERM;
        free(l.note);
        if (r < 0) /* the scan checked the note with this key: cannot be */
                return log_error_errno(r, "Cannot print the checkpoint: %m"), EXIT_USAGE;
        return res.broken ? EXIT_VIOLATION : 0;
}
