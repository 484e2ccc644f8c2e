/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the segment header and record parser, metadata and the
 * checkpoint note parser, on arbitrary bytes. Input: a segment file (header,
 * records), as found on disk. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "checkpoint.h"
#include "log-format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char vkey_text[] =
                "callhome.audit/fuzz+1f8ac1c2+AcB1RNC5Y6U5NT5hoGgJtP3eynqFyHqKaO8kH1xVyfPZ";
        static CheckpointVerifier fixed;
        static bool have_fixed;
        AuditSegmentHeader h;
        CheckpointVerifier v;
        size_t off = 0;

        /* A fixed verifier key, so that signatures are checked and not just parsed. */
        if (!have_fixed)
                have_fixed = checkpoint_vkey_parse(vkey_text, strlen(vkey_text), &fixed) >= 0;

        if (size > (1U << 20))
                return 0;
        if (audit_segment_header_parse(data, size, &h, NULL) == AUDIT_PARSE_OK)
                off = h.header_size;
        while (off < size) {
                AuditRecord rec;
                AuditParseResult r = audit_record_parse(data + off, size - off, false, &rec, NULL);

                if (r != AUDIT_PARSE_OK)
                        break;
                (void) audit_meta_foreach(rec.meta, rec.meta_len, NULL, NULL);
                if (rec.kind == AUDIT_KIND_CHECKPOINT)
                        (void) checkpoint_parse_verify((const char *) rec.payload, rec.payload_len,
                                                       have_fixed ? &fixed : NULL, NULL);
                off += rec.size;
        }
        /* The note and verifier key parsers on the raw input too. */
        (void) checkpoint_parse_verify((const char *) data, size, NULL, NULL);
        (void) checkpoint_parse_verify((const char *) data, size, have_fixed ? &fixed : NULL, NULL);
        (void) checkpoint_vkey_parse((const char *) data, size < 512 ? size : 512, &v);
        return 0;
}
