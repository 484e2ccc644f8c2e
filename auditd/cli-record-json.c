/* SPDX-License-Identifier: Apache-2.0 */
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "audit-cli.h"
#include "cli-output.h"
#include "macro.h"

/* A text field in JSON: as it is when it is valid UTF-8; else escaped (\xHH) and, with
 * b64_name, its exact bytes in base64 beside it. */
static void json_add_text(json_object *o, const char *name, const void *data, size_t len, const char *b64_name) {
        if (utf8_valid_strict(data, len)) {
                json_object_object_add(o, name, json_object_new_string_len(data, (int) len));
                return;
        }
        _cleanup_free_ char *e = cli_escape_dup(data, len);
        if (e)
                json_object_object_add(o, name, json_object_new_string(e));
        if (b64_name) {
                _cleanup_free_ char *b64 = malloc(4 * ((len + 2) / 3) + 1);
                if (b64) {
                        (void) EVP_EncodeBlock((unsigned char *) b64, data, (int) len);
                        json_object_object_add(o, b64_name, json_object_new_string(b64));
                }
        }
}

static int meta_to_json(const char *k, size_t kl, const char *v, size_t vl, void *userdata) {
        json_object *o = userdata;
        _cleanup_free_ char *key = NULL;

        key = utf8_valid_strict((const uint8_t *) k, kl) ? strndup(k, kl) : cli_escape_dup((const uint8_t *) k, kl);
        if (!key)
                return -ENOMEM;
        json_add_text(o, key, v, vl, NULL);
        return 0;
}

json_object *record_json(const AuditRecord *rec, const AuditSegmentInfo *seg, uint64_t off, bool payload) {
        json_object *o = json_object_new_object(), *m = json_object_new_object();
        char hex[2 * AUDIT_HASH_SIZE + 1], t[64], sum[128];

        format_time(rec->realtime_usec, t, sizeof(t));
        json_object_object_add(o, "seq", json_object_new_int64((int64_t) rec->seq));
        json_object_object_add(o, "time", json_object_new_string(t));
        json_object_object_add(o, "realtime_usec", json_object_new_int64((int64_t) rec->realtime_usec));
        json_object_object_add(o, "monotonic_usec", json_object_new_int64((int64_t) rec->monotonic_usec));
        audit_hex(rec->boot_id, AUDIT_BOOT_ID_SIZE, hex);
        json_object_object_add(o, "boot_id", json_object_new_string(hex));
        json_object_object_add(o, "epoch", json_object_new_int64((int64_t) rec->epoch));
        json_object_object_add(o, "kind", json_object_new_string(audit_kind_to_string(rec->kind)));
        json_object_object_add(o, "direction", json_object_new_string(audit_direction_to_string(rec->direction)));
        json_add_text(o, "type", rec->type, rec->type_len, "type_base64");
        json_add_text(o, "txn", rec->txn, rec->txn_len, "txn_base64");
        json_object_object_add(o, "size", json_object_new_int64((int64_t) rec->payload_len));
        (void) audit_meta_foreach(rec->meta, rec->meta_len, meta_to_json, m);
        json_object_object_add(o, "metadata", m);
        audit_hex(rec->hash, AUDIT_HASH_SIZE, hex);
        json_object_object_add(o, "hash", json_object_new_string(hex));
        json_object_object_add(o, "segment", json_object_new_string(seg->name));
        json_object_object_add(o, "offset", json_object_new_int64((int64_t) off));
        json_object_object_add(o, "record_size", json_object_new_int64((int64_t) rec->size));
        if (payload) {
                size_t b64len = 4 * ((rec->payload_len + 2) / 3) + 1;
                char *b64 = malloc(b64len);
                if (b64) {
                        (void) EVP_EncodeBlock((unsigned char *) b64, rec->payload, (int) rec->payload_len);
                        json_object_object_add(o, "payload_base64", json_object_new_string(b64));
                        free(b64);
                }
                if (utf8_valid_strict(rec->payload, rec->payload_len))
                        json_object_object_add(o, "payload",
                                               json_object_new_string_len((const char *) rec->payload, (int) rec->payload_len));
        } else {
                summary(rec, sum, sizeof(sum));
                json_object_object_add(o, "summary", json_object_new_string(sum));
        }
        return o;
}
