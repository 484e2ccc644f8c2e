/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <string.h>

#include "log-scan-internal.h"

#define INTERNAL_JSON_MAX 65536U

json_object *parse_internal_json(const AuditRecord *rec) {
        json_tokener *tok;
        json_object *j;

        if (rec->payload_len == 0 || rec->payload_len > INTERNAL_JSON_MAX)
                return NULL;
        tok = json_tokener_new_ex(8);
        if (!tok)
                return NULL;
        j = json_tokener_parse_ex(tok, (const char *) rec->payload, (int) rec->payload_len);
        if (j && (json_tokener_get_error(tok) != json_tokener_success ||
                  json_tokener_get_parse_end(tok) != rec->payload_len || !json_object_is_type(j, json_type_object))) {
                json_object_put(j);
                j = NULL;
        }
        json_tokener_free(tok);
        return j;
}

static bool json_get_u64(json_object *j, const char *key, uint64_t *ret) {
        json_object *v;
        int64_t x;

        if (!json_object_object_get_ex(j, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        x = json_object_get_int64(v);
        if (x < 0)
                return false;
        *ret = (uint64_t) x;
        return true;
}

const char *json_get_str(json_object *j, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(j, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

/* A retention record's description of the first kept segment's header. */
static bool retention_desc_parse(json_object *j, uint64_t first_kept, AuditSegmentHeader *ret) {
        const char *ph = json_get_str(j, "prev_hash");
        json_object *fr;
        size_t n;

        *ret = (AuditSegmentHeader) { .first_seq = first_kept };
        if (!ph || audit_unhex(ph, ret->prev_hash, sizeof(ret->prev_hash)) < 0 || !json_get_u64(j, "epoch", &ret->epoch))
                return false;
        if (!json_object_object_get_ex(j, "frontier", &fr) || !json_object_is_type(fr, json_type_array))
                return false;
        n = json_object_array_length(fr);
        if (n > AUDIT_FRONTIER_MAX)
                return false;
        ret->n_frontier = (uint32_t) n;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(fr, i);
                if (!json_object_is_type(e, json_type_string) ||
                    audit_unhex(json_object_get_string(e), ret->frontier[i], AUDIT_HASH_SIZE) < 0)
                        return false;
        }
        return true;
}

/* A witness record: its checkpoint (size, root) must be one the records before it extend (the
 * consistency proof it carries, against the root the scan computed), and its cosignature or
 * acknowledgement tag must be valid under the key given, if any. */
static void check_witness(ScanContext *c, const AuditRecord *rec, const char *file, uint64_t off, json_object *j) {
        const AuditScanOptions *o = c->o;
        AuditScanResult *s = c->s;
        uint8_t proof[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE], now[AUDIT_HASH_SIZE];
        AuditWitnessInfo w = { .seq = rec->seq, .usec = rec->realtime_usec };
        Checkpoint cp = {};
        const char *by = j ? json_get_str(j, "by") : NULL, *root = j ? json_get_str(j, "root") : NULL;
        json_object *pr;
        size_t n = 0;

        if (!by || !root || !json_get_u64(j, "size", &cp.size) || cp.size == 0 || cp.size >= rec->seq ||
            audit_unhex(root, cp.root, AUDIT_HASH_SIZE) < 0 || !json_object_object_get_ex(j, "proof", &pr) ||
            !json_object_is_type(pr, json_type_array) || (n = json_object_array_length(pr)) > AUDIT_FRONTIER_MAX) {
                violation(s, rec->seq, file, off, "malformed witness record");
                return;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(pr, i);
                if (!json_object_is_type(e, json_type_string) ||
                    audit_unhex(json_object_get_string(e), proof[i], AUDIT_HASH_SIZE) < 0) {
                        violation(s, rec->seq, file, off, "malformed witness record");
                        return;
                }
        }
        w.size = cp.size;
        if (merkle_frontier_root(&s->frontier, now) < 0 ||
            merkle_verify_consistency(cp.size, rec->seq - 1, cp.root, now, (const uint8_t(*)[AUDIT_HASH_SIZE]) proof,
                                      (unsigned) n) < 0) {
                violation(s, rec->seq, file, off,
                          "the witnessed checkpoint of size %" PRIu64 " is not one the records before it extend "
                          "(log rewritten, or a forged witness record)",
                          cp.size);
                return;
        }
        if (!s->have_vkey) {
                violation(s, rec->seq, file, off, "witness record cannot be checked: no checkpoint key (give --checkpoint-key)");
                return;
        }
        memcpy(cp.origin, s->vkey.name, sizeof(cp.origin));
        if (streq(by, "witness")) {
                const char *note = json_get_str(j, "checkpoint");
                Checkpoint signed_cp;

                w.by = AUDIT_WITNESS_SERVER;
                if (!note || checkpoint_parse_verify(note, strlen(note), &s->vkey, &signed_cp) < 0 ||
                    signed_cp.size != cp.size || !hash_eq(signed_cp.root, cp.root)) {
                        violation(s, rec->seq, file, off, "witness record: its checkpoint is not the log's, signed, of size %" PRIu64,
                                  cp.size);
                        return;
                }
                if (o->witness_key) {
                        if (checkpoint_cosignature_verify(note, strlen(note), o->witness_key, &w.cosigned) < 0) {
                                violation(s, rec->seq, file, off,
                                          "witness record: the checkpoint of size %" PRIu64
                                          " carries no valid cosignature by witness %s (forged)",
                                          cp.size, o->witness_key->name);
                                return;
                        }
                        w.checked = true;
                }
        } else if (streq(by, "customer")) {
                const char *tag = json_get_str(j, "tag");
                uint8_t t[CHECKPOINT_ACK_SIZE], want[CHECKPOINT_ACK_SIZE];

                w.by = AUDIT_WITNESS_CUSTOMER;
                if (!tag || audit_unhex(tag, t, sizeof(t)) < 0) {
                        violation(s, rec->seq, file, off, "malformed witness record");
                        return;
                }
                if (o->ack_key) {
                        if (checkpoint_ack_tag(o->ack_key, &cp, want) < 0 || CRYPTO_memcmp(t, want, sizeof(t)) != 0) {
                                violation(s, rec->seq, file, off,
                                          "the customer's acknowledgement of records 1..%" PRIu64
                                          " was not made with the verification key (forged)",
                                          cp.size);
                                return;
                        }
                        w.checked = true;
                }
        } else {
                violation(s, rec->seq, file, off, "malformed witness record");
                return;
        }
        s->last_witness = w;
}

/* The newest retention record names the witness record it rests on: the last one before it. */
void retention_evidence_resolve(ScanContext *c, const AuditWitnessInfo *last) {
        c->retention_evidence = (AuditWitnessInfo) {};
        if (c->retention_evidence_seq != 0 && last->seq == c->retention_evidence_seq &&
            last->size + 1 >= c->retention_first_kept)
                c->retention_evidence = *last;
        c->retention_evidence_resolved = true;
}

void check_kind(ScanContext *c, const AuditRecord *rec, const char *file, uint64_t off) {
        AuditScanResult *s = c->s;
        json_object *j = NULL;

        switch (rec->kind) {
        case AUDIT_KIND_SEAL: {
                uint64_t e, n;
                j = parse_internal_json(rec);
                if (!j || !json_get_u64(j, "epoch", &e) || !json_get_u64(j, "records", &n)) {
                        violation(s, rec->seq, file, off, "malformed seal record");
                        break;
                }
                if (e != s->epoch)
                        violation(s, rec->seq, file, off, "seal for epoch %" PRIu64 " in epoch %" PRIu64, e, s->epoch);
                else if (c->defer_first_seal) {
                        c->defer_first_seal = false;
                        c->deferred = (DeferredSeal) { .pending = true, .seq = rec->seq, .offset = off, .epoch = e,
                                                       .counted = n, .records_before = s->epoch_records };
                } else if (!c->started_mid_epoch && n != s->epoch_records)
                        seal_count_violation(s, rec->seq, file, off, e, n, s->epoch_records);
                break;
        }
        case AUDIT_KIND_CHECKPOINT: {
                Checkpoint cp;
                uint8_t root[AUDIT_HASH_SIZE];
                int r;

                if (!s->have_vkey) {
                        violation(s, rec->seq, file, off,
                                  "checkpoint cannot be checked: no checkpoint key (give --checkpoint-key)");
                        break;
                }
                r = checkpoint_parse_verify((const char *) rec->payload, rec->payload_len, &s->vkey, &cp);
                if (r == -EPERM) {
                        violation(s, rec->seq, file, off, "checkpoint signature invalid for key %s", s->vkey.name);
                        break;
                }
                if (r < 0) {
                        violation(s, rec->seq, file, off, "malformed checkpoint note");
                        break;
                }
                if (cp.size != rec->seq - 1) {
                        violation(s, rec->seq, file, off, "checkpoint tree size %" PRIu64 ", expected %" PRIu64, cp.size,
                                  rec->seq - 1);
                        break;
                }
                if (merkle_frontier_root(&s->frontier, root) < 0 || !hash_eq(root, cp.root)) {
                        violation(s, rec->seq, file, off, "checkpoint root does not match the records before it");
                        break;
                }
                s->last_checkpoint_seq = rec->seq;
                s->last_checkpoint_usec = rec->realtime_usec;
                s->n_checkpoints++;
                break;
        }
        case AUDIT_KIND_START: {
                CheckpointVerifier v;
                const char *vk;

                j = parse_internal_json(rec);
                if (rec->seq != 1) {
                        violation(s, rec->seq, file, off, "start record in the middle of the log");
                        break;
                }
                vk = j ? json_get_str(j, "checkpoint_vkey") : NULL;
                if (!vk || checkpoint_vkey_parse(vk, strlen(vk), &v) < 0) {
                        violation(s, rec->seq, file, off, "malformed start record");
                        break;
                }
                if (s->have_vkey && (memcmp(v.pub, s->vkey.pub, 32) != 0 || !streq(v.name, s->vkey.name))) {
                        violation(s, rec->seq, file, off, "the log's start record names checkpoint key %s, not the one given",
                                  vk);
                        break;
                }
                s->vkey = v;
                s->have_vkey = true;
                break;
        }
        case AUDIT_KIND_RETENTION: {
                uint64_t first_kept;
                j = parse_internal_json(rec);
                if (!j || !json_get_u64(j, "first_kept_seq", &first_kept) || first_kept >= rec->seq) {
                        violation(s, rec->seq, file, off, "malformed retention record");
                        break;
                }
                c->have_retention = true;
                c->retention_first_kept = first_kept;
                c->retention_desc_ok = retention_desc_parse(j, first_kept, &c->retention_desc);
                if (!json_get_u64(j, "evidence_seq", &c->retention_evidence_seq))
                        c->retention_evidence_seq = 0;
                c->retention_evidence_resolved = false;
                if (s->last_witness.seq != 0)
                        retention_evidence_resolve(c, &s->last_witness);
                break;
        }
        case AUDIT_KIND_WITNESS:
                j = parse_internal_json(rec);
                check_witness(c, rec, file, off, j);
                break;
        case AUDIT_KIND_RECOVERY:
                s->n_recoveries++;
                break;
        case AUDIT_KIND_DELIVERY:
                if (rec->payload_len != 8 || audit_le64(rec->payload) >= rec->seq || rec->txn_len == 0)
                        violation(s, rec->seq, file, off, "malformed delivery record");
                break;
        default:
                break;
        }
        json_object_put(j);
}
