/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "log-store.h"
#include "macro.h"

#define AUDIT_SEGMENTS_MAX 65536U
#define INTERNAL_JSON_MAX 65536U

void audit_segment_name(uint64_t first_seq, char ret[AUDIT_FILE_NAME_MAX]) {
        (void) snprintf(ret, AUDIT_FILE_NAME_MAX, "%016" PRIx64 AUDIT_SEGMENT_SUFFIX, first_seq);
}

static int parse_segment_name(const char *name, uint64_t *ret) {
        uint64_t v = 0;

        if (strlen(name) != 16 + strlen(AUDIT_SEGMENT_SUFFIX) || !streq(name + 16, AUDIT_SEGMENT_SUFFIX))
                return -EINVAL;
        for (int i = 0; i < 16; i++) {
                char c = name[i];
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                if (d < 0)
                        return -EINVAL;
                v = v << 4 | (uint64_t) d;
        }
        if (v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int segment_cmp(const void *a, const void *b) {
        const AuditSegmentInfo *x = a, *y = b;
        return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

int audit_segments_list(int dir_fd, AuditSegmentInfo **ret, size_t *ret_n) {
        _cleanup_free_ AuditSegmentInfo *list = NULL;
        size_t n = 0, allocated = 0;
        DIR *d;
        struct dirent *de;
        int fd;

        fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return negative_errno();
        }
        while ((errno = 0, de = readdir(d))) {
                uint64_t first;
                struct stat st;

                if (parse_segment_name(de->d_name, &first) < 0)
                        continue;
                if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue; /* removed since readdir() */
                        int r = negative_errno();
                        closedir(d);
                        return r;
                }
                if (n >= AUDIT_SEGMENTS_MAX) {
                        closedir(d);
                        return -E2BIG;
                }
                if (n == allocated) {
                        size_t na = allocated ? allocated * 2 : 16;
                        AuditSegmentInfo *nl = realloc(list, na * sizeof(*nl));
                        if (!nl) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        list = nl;
                        allocated = na;
                }
                list[n].first_seq = first;
                list[n].not_regular = S_ISREG(st.st_mode) ? 0 : (uint32_t) (st.st_mode & S_IFMT);
                list[n].size = S_ISREG(st.st_mode) ? (uint64_t) st.st_size : 0;
                audit_segment_name(first, list[n].name);
                n++;
        }
        if (errno != 0) {
                int r = negative_errno();
                closedir(d);
                return r;
        }
        closedir(d);
        if (n > 0)
                qsort(list, n, sizeof(*list), segment_cmp);
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

/* The first seal record of a segment scanned on its own: whether it counts the
 * records of its epoch right depends on how many came before the segment, so
 * the check waits until the segments are joined in order. */
typedef struct DeferredSeal {
        bool pending;
        uint64_t seq, offset;
        uint64_t epoch, counted;
        uint64_t records_before; /* records of its epoch earlier in the same segment */
} DeferredSeal;

typedef struct ScanContext {
        const AuditScanOptions *o;
        AuditScanResult *s;
        AuditSealKey *key;      /* o->key, or a worker's own copy */
        uint64_t key_epoch_max; /* the key is never evolved past this epoch (see epoch_reach()) */
        bool started_mid_log;   /* first segment is not the start of the log */
        bool started_mid_epoch; /* … so the first epoch's record count is unknown */
        AuditSegmentHeader start;
        bool have_retention;
        AuditSegmentHeader retention_desc; /* the first kept segment's header, as the newest retention record describes it */
        bool retention_desc_ok;
        uint64_t retention_first_kept;
        uint64_t retention_evidence_seq;     /* the witness record the newest retention record names */
        bool retention_evidence_resolved;    /* … looked up (a worker defers it when its segment had none before) */
        AuditWitnessInfo retention_evidence;
        bool witness_root_done;
        uint8_t witness_root[AUDIT_HASH_SIZE];

        /* a worker of a parallel scan, on one segment */
        bool defer_first_seal;
        DeferredSeal deferred;
        const bool *stop;       /* set when the result is no longer needed */
        bool aborted;
} ScanContext;

_printf_(5, 6) static void violation(AuditScanResult *s, uint64_t seq, const char *file, uint64_t offset,
                                     const char *fmt, ...) {
        va_list ap;

        if (s->broken)
                return;
        s->broken = true;
        s->violation.seq = seq;
        (void) snprintf(s->violation.file, sizeof(s->violation.file), "%s", file);
        s->violation.offset = offset;
        va_start(ap, fmt);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        (void) vsnprintf(s->violation.what, sizeof(s->violation.what), fmt, ap);
#pragma GCC diagnostic pop
        va_end(ap);
}

static void seal_count_violation(AuditScanResult *s, uint64_t seq, const char *file, uint64_t off, uint64_t epoch,
                                 uint64_t counted, uint64_t held) {
        violation(s, seq, file, off,
                  "seal of epoch %" PRIu64 " counts %" PRIu64 " records, the log holds %" PRIu64
                  " (records of this epoch missing or added)",
                  epoch, counted, held);
}

static json_object *parse_internal_json(const AuditRecord *rec) {
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

static const char *json_get_str(json_object *j, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(j, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool hash_eq(const uint8_t *a, const uint8_t *b) {
        return memcmp(a, b, AUDIT_HASH_SIZE) == 0;
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

static bool segment_header_same(const AuditSegmentHeader *a, const AuditSegmentHeader *b) {
        if (a->first_seq != b->first_seq || a->epoch != b->epoch || !hash_eq(a->prev_hash, b->prev_hash) ||
            a->n_frontier != b->n_frontier)
                return false;
        for (unsigned i = 0; i < a->n_frontier; i++)
                if (!hash_eq(a->frontier[i], b->frontier[i]))
                        return false;
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
static void retention_evidence_resolve(ScanContext *c, const AuditWitnessInfo *last) {
        c->retention_evidence = (AuditWitnessInfo) {};
        if (c->retention_evidence_seq != 0 && last->seq == c->retention_evidence_seq &&
            last->size + 1 >= c->retention_first_kept)
                c->retention_evidence = *last;
        c->retention_evidence_resolved = true;
}

static void check_kind(ScanContext *c, const AuditRecord *rec, const char *file, uint64_t off) {
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

static void check_record(ScanContext *c, const AuditRecord *rec, const char *file, uint64_t off) {
        AuditScanResult *s = c->s;
        const AuditScanOptions *o = c->o;
        uint8_t h[AUDIT_HASH_SIZE], leaf[AUDIT_HASH_SIZE];

        if (rec->seq != s->next_seq) {
                violation(s, s->next_seq, file, off,
                          "sequence number %" PRIu64 " where %" PRIu64 " was expected (records deleted, reordered or inserted)",
                          rec->seq, s->next_seq);
                return;
        }
        if (audit_chain_hash(s->prev_hash, rec->hashed, rec->hashed_len, h) < 0 || !hash_eq(h, rec->hash)) {
                violation(s, rec->seq, file, off, "chain hash mismatch (record altered, or its predecessor)");
                return;
        }
        if (rec->epoch != s->epoch) {
                violation(s, rec->seq, file, off, "epoch %" PRIu64 " where %" PRIu64 " was expected (epoch not sealed or skipped)",
                          rec->epoch, s->epoch);
                return;
        }
        if (c->key) {
                uint8_t mac[AUDIT_MAC_SIZE];
                uint64_t ke = audit_seal_key_epoch(c->key);

                if (ke < rec->epoch && rec->epoch > c->key_epoch_max) {
                        violation(s, rec->seq, file, off,
                                  "record in epoch %" PRIu64 ", %" PRIu64 " epochs after the key given: more than "
                                  "the log's bytes can hold seals for (a forged epoch, or a log trimmed by retention "
                                  "far beyond the key's epoch)",
                                  rec->epoch, rec->epoch - ke);
                        return;
                }
                if (ke < rec->epoch && audit_seal_key_evolve_to(c->key, rec->epoch) < 0) {
                        violation(s, rec->seq, file, off, "cannot derive the key of epoch %" PRIu64, rec->epoch);
                        return;
                }
                if (audit_seal_key_epoch(c->key) == rec->epoch) {
                        if (audit_seal_key_mac(c->key, h, mac) < 0 || memcmp(mac, rec->mac, AUDIT_MAC_SIZE) != 0) {
                                violation(s, rec->seq, file, off,
                                          "MAC mismatch under the key of epoch %" PRIu64 " (record forged without the key)",
                                          rec->epoch);
                                return;
                        }
                } else
                        s->macs_checked = false; /* the key given is newer than this record */
        }

        check_kind(c, rec, file, off);
        if (s->broken)
                return;

        if (merkle_leaf_hash(h, AUDIT_HASH_SIZE, leaf) < 0 || merkle_frontier_append(&s->frontier, leaf) < 0) {
                violation(s, rec->seq, file, off, "internal error while hashing");
                return;
        }
        if (o->witness && !c->witness_root_done && s->frontier.size == o->witness->size) {
                (void) merkle_frontier_root(&s->frontier, c->witness_root);
                c->witness_root_done = true;
                if (!hash_eq(c->witness_root, o->witness->root))
                        violation(s, rec->seq, file, off,
                                  "the Merkle root over records 1..%" PRIu64 " differs from the checkpoint held elsewhere "
                                  "(log rewritten or forked)",
                                  o->witness->size);
        }

        memcpy(s->prev_hash, h, AUDIT_HASH_SIZE);
        s->next_seq++;
        s->n_records++;
        s->n_bytes += rec->size;
        s->last_realtime_usec = rec->realtime_usec;
        if (s->epoch_start_usec == 0)
                s->epoch_start_usec = rec->realtime_usec;
        if (rec->kind == AUDIT_KIND_SEAL) {
                s->epoch_start_usec = s->last_seal_usec = rec->realtime_usec;
                s->epoch++;
                s->epoch_records = 0;
                s->last_seal_seq = rec->seq;
                s->unsealed = 0;
                s->n_seals++;
                c->started_mid_epoch = false;
        } else {
                s->epoch_records++;
                s->unsealed++;
        }
}

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

/* A torn write is the last thing written: nothing whole can lie behind it. The
 * offset of the first CRC-valid record after `off`, 0 if there is none, or
 * UINT64_MAX when the bytes after `off` hold more record-like headers than
 * could be checked in time linear in their size. A record's size field
 * enlarged in place must not pass for a torn tail and let start-up recovery cut
 * the good records it now seems to cover.
 *
 * Each candidate costs a CRC over the size its header claims, and crafted bytes
 * can put a plausible header every 8 bytes, each claiming to reach the end: a
 * quadratic search. The bytes checked are capped at AUDIT_TAIL_CHECK_FACTOR
 * times those after `off` (an honest torn tail is part of one record, whose
 * payload rarely looks like headers at all); a tail that exhausts the cap is
 * not a torn write, and is reported as damage, never cut. */
#define AUDIT_TAIL_CHECK_FACTOR 4U

static uint64_t whole_record_after(const uint8_t *map, uint64_t size, uint64_t off) {
        uint64_t budget = AUDIT_TAIL_CHECK_FACTOR * (size - off);

        for (uint64_t p = off + 8; p + AUDIT_RECORD_MIN_SIZE <= size; p += 8) {
                uint32_t claimed = audit_record_peek_size(map + p, (size_t) (size - p));
                AuditRecord rec;

                if (claimed < AUDIT_RECORD_MIN_SIZE || claimed > size - p)
                        continue; /* no magic, or cannot be whole: rejected without reading it */
                if (claimed > budget)
                        return UINT64_MAX;
                budget -= claimed;
                if (audit_record_parse(map + p, (size_t) (size - p), true, &rec, NULL) == AUDIT_PARSE_OK)
                        return p;
        }
        return 0;
}

static const char *file_type_name(uint32_t type) {
        switch (type) {
        case S_IFLNK:
                return "a symbolic link";
        case S_IFIFO:
                return "a FIFO";
        case S_IFDIR:
                return "a directory";
        case S_IFSOCK:
                return "a socket";
        case S_IFCHR:
                return "a character device";
        case S_IFBLK:
                return "a block device";
        default:
                return "of an unknown type";
        }
}

/* Maps a segment file; an empty one gives *ret_size = 0 and no map. */
static int segment_map(int dir_fd, const AuditSegmentInfo *seg, uint8_t **ret_map, uint64_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        uint8_t *map;

        /* Never blocks (a FIFO put there since the listing) nor follows a link. */
        fd = openat(dir_fd, seg->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size == 0) {
                *ret_map = NULL;
                *ret_size = 0;
                return 0;
        }
        map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
                return negative_errno();
        (void) madvise(map, (size_t) st.st_size, MADV_SEQUENTIAL | MADV_WILLNEED);
        *ret_map = map;
        *ret_size = (uint64_t) st.st_size;
        return 0;
}

/* The header on its own: well-formed and agreeing with the file name. The
 * violation names fault_seq, the record expected at this point. */
static bool segment_header_check(AuditScanResult *s, const AuditSegmentInfo *seg, const uint8_t *map, uint64_t size,
                                 uint64_t fault_seq, AuditSegmentHeader *h) {
        const char *reason = NULL;
        AuditParseResult pr;

        pr = audit_segment_header_parse(map, (size_t) size, h, &reason);
        if (pr != AUDIT_PARSE_OK) {
                violation(s, fault_seq, seg->name, 0, "segment header: %s", pr == AUDIT_PARSE_SHORT ? "truncated" : reason);
                return false;
        }
        if (h->first_seq != seg->first_seq) {
                violation(s, fault_seq, seg->name, 0,
                          "segment header says it starts at seq %" PRIu64 ", its name says %" PRIu64, h->first_seq,
                          seg->first_seq);
                return false;
        }
        return true;
}

/* Each epoch ends in a seal record, so no epoch number is larger than the
 * number of records before it: a log that starts at seq 1 starts in epoch 0, a
 * log trimmed by retention starts at most first_seq - 1 epochs in. */
static const char *first_header_implausible(const AuditSegmentHeader *h) {
        if (h->first_seq == 1 && (!all_zero(h->prev_hash, AUDIT_HASH_SIZE) || h->epoch != 0))
                return "first segment of the log does not start from the empty state";
        if (h->epoch > h->first_seq - 1)
                return "first segment of the log starts in an epoch beyond the records before it";
        return NULL;
}

/* How far a scan may evolve the key: checking a record's MAC means deriving its
 * epoch's key one epoch at a time, so the epoch number must not set the work.
 * Every epoch ends in a seal of at least AUDIT_RECORD_MIN_SIZE bytes, so the
 * epochs a log can justify are bounded by its size: the key moves at most
 * that many epochs beyond the one given, and deriving them costs less than
 * reading the bytes. (A log trimmed by retention far past the key's epoch
 * cannot be checked with that key.) */
static uint64_t epoch_reach(const AuditScanOptions *o, const AuditSegmentInfo *segs, size_t n) {
        uint64_t total = 0;

        for (size_t i = 0; i < n; i++)
                total += segs[i].size;
        return o->key ? audit_seal_key_epoch(o->key) + total / AUDIT_RECORD_MIN_SIZE : 0;
}

/* The first segment's header sets where the log starts. Returns false when the
 * segment's records must not be read. */
static bool start_at_first_header(ScanContext *c, const AuditSegmentInfo *seg, const AuditSegmentHeader *h) {
        const AuditScanOptions *o = c->o;
        AuditScanResult *s = c->s;
        const char *implausible = first_header_implausible(h);

        if (implausible) {
                violation(s, h->first_seq, seg->name, 0, "%s", implausible);
                return false;
        }
        c->started_mid_log = h->first_seq != 1;
        c->started_mid_epoch = c->started_mid_log;
        c->start = *h;
        s->first_seq = s->next_seq = h->first_seq;
        memcpy(s->prev_hash, h->prev_hash, AUDIT_HASH_SIZE);
        s->epoch = h->epoch;
        (void) merkle_frontier_set(&s->frontier, h->first_seq - 1, (const uint8_t(*)[AUDIT_HASH_SIZE]) h->frontier,
                                   h->n_frontier);
        if (o->witness && o->witness->size == h->first_seq - 1) {
                (void) merkle_frontier_root(&s->frontier, c->witness_root);
                c->witness_root_done = true;
                if (!hash_eq(c->witness_root, o->witness->root))
                        violation(s, h->first_seq, seg->name, 0,
                                  "the Merkle root over records 1..%" PRIu64 " differs from the checkpoint held elsewhere",
                                  o->witness->size);
        }
        return true;
}

/* A later segment's header must carry exactly the chain state the previous segment ended in. */
static void check_continuation(ScanContext *c, const AuditSegmentInfo *seg, const AuditSegmentHeader *h) {
        AuditScanResult *s = c->s;
        bool same_frontier = h->n_frontier == s->frontier.n;

        for (unsigned i = 0; same_frontier && i < h->n_frontier; i++)
                same_frontier = hash_eq(h->frontier[i], s->frontier.hash[i]);
        if (h->first_seq != s->next_seq) {
                violation(s, s->next_seq, seg->name, 0,
                          "segment starts at seq %" PRIu64 " but the previous one ended before seq %" PRIu64
                          " (records or segment missing)",
                          h->first_seq, s->next_seq);
                return;
        }
        if (!hash_eq(h->prev_hash, s->prev_hash) || h->epoch != s->epoch || !same_frontier)
                violation(s, s->next_seq, seg->name, 0, "segment header does not continue the chain of the previous segment");
}

/* The records of a mapped segment from `off` on. Returns on_record's error, else 0. */
static int scan_records(ScanContext *c, const AuditSegmentInfo *seg, const uint8_t *map, uint64_t size, uint64_t off,
                        bool last) {
        const AuditScanOptions *o = c->o;
        AuditScanResult *s = c->s;
        const char *reason = NULL;
        AuditParseResult pr;
        int r;

        while (off < size && !s->broken) {
                size_t avail = (size_t) (size - off);
                AuditRecord rec;

                if (c->stop && __atomic_load_n(c->stop, __ATOMIC_RELAXED)) {
                        c->aborted = true;
                        break;
                }
                pr = audit_record_parse(map + off, avail, true, &rec, &reason);
                if (pr == AUDIT_PARSE_SHORT || (pr == AUDIT_PARSE_BAD && last && all_zero(map + off, avail))) {
                        uint64_t behind = whole_record_after(map, size, off);
                        const char *what = pr == AUDIT_PARSE_SHORT ? "record size reaches past the end of the segment"
                                                                   : reason;

                        if (behind == UINT64_MAX) {
                                violation(s, s->next_seq, seg->name, off,
                                          "%s, and the bytes after it are full of record headers "
                                          "(damage or tampering, not a torn write)",
                                          what);
                                break;
                        }
                        if (behind > 0) {
                                violation(s, s->next_seq, seg->name, off,
                                          "%s, yet a whole record follows at offset %" PRIu64
                                          " (damage or tampering, not a torn write)",
                                          what, behind);
                                break;
                        }
                        if (last && o->allow_torn_tail) {
                                s->torn = true;
                                (void) snprintf(s->torn_file, sizeof(s->torn_file), "%s", seg->name);
                                s->torn_offset = off;
                                s->torn_bytes = avail;
                                break;
                        }
                        violation(s, s->next_seq, seg->name, off,
                                  "incomplete record, %zu bytes up to the end of the segment%s", avail,
                                  last ? " (a torn write: callhome-auditd cuts it when it starts)" : "");
                        break;
                }
                if (pr == AUDIT_PARSE_BAD) {
                        violation(s, s->next_seq, seg->name, off, "%s", reason);
                        break;
                }
                check_record(c, &rec, seg->name, off);
                if (s->broken)
                        break;
                if (o->on_record) {
                        r = o->on_record(&rec, seg, off, o->userdata);
                        if (r < 0)
                                return r;
                }
                off += rec.size;
        }
        return 0;
}

static int scan_segment(ScanContext *c, int dir_fd, const AuditSegmentInfo *seg, bool first, bool last) {
        AuditScanResult *s = c->s;
        AuditSegmentHeader h;
        uint8_t *map;
        uint64_t size;
        int r;

        if (seg->not_regular) {
                violation(s, first ? seg->first_seq : s->next_seq, seg->name, 0, "segment file is %s, not a regular file",
                          file_type_name(seg->not_regular));
                return 0;
        }
        r = segment_map(dir_fd, seg, &map, &size);
        if (r < 0)
                return r;
        if (size == 0) {
                violation(s, first ? seg->first_seq : s->next_seq, seg->name, 0, "empty segment file");
                return 0;
        }
        if (!segment_header_check(s, seg, map, size, first ? seg->first_seq : s->next_seq, &h))
                goto finish;
        if (first) {
                if (!start_at_first_header(c, seg, &h))
                        goto finish;
        } else {
                check_continuation(c, seg, &h);
                if (s->broken)
                        goto finish;
        }
        r = scan_records(c, seg, map, size, h.header_size, last);
        if (r < 0)
                goto finish;
        s->last_segment = *seg;
        s->last_segment.size = size;
finish:
        (void) munmap(map, (size_t) size);
        return r;
}

/* Whether the newest retention record describes segment k's header (segment 0's
 * was read at the start; a later one was checked to continue the chain). */
static bool retention_describes(ScanContext *c, int dir_fd, const AuditSegmentInfo *seg, size_t k) {
        AuditScanResult scratch = {};
        AuditSegmentHeader h;
        uint8_t *map;
        uint64_t size;
        bool same;

        if (!c->retention_desc_ok)
                return false;
        if (k == 0)
                return segment_header_same(&c->retention_desc, &c->start);
        if (segment_map(dir_fd, seg, &map, &size) < 0 || size == 0)
                return false;
        same = segment_header_check(&scratch, seg, map, size, 0, &h) && segment_header_same(&c->retention_desc, &h);
        (void) munmap(map, (size_t) size);
        return same;
}

/* Checks that need the whole log: the retention hand-over and a truncation behind the witness. */
static void finish_scan(ScanContext *c, int dir_fd, const AuditSegmentInfo *segs, size_t n) {
        const AuditScanOptions *o = c->o;
        AuditScanResult *s = c->s;
        bool accounted = false;

        /* The newest retention record keeps the segment starting at its first
         * kept seq. Segments before it still on disk are those a crash kept from
         * being removed (the record is written first, then they are unlinked). */
        if (c->have_retention) {
                size_t k = 0;

                while (k < n && segs[k].first_seq < c->retention_first_kept)
                        k++;
                if (k < n && segs[k].first_seq == c->retention_first_kept && retention_describes(c, dir_fd, &segs[k], k)) {
                        accounted = true;
                        s->retention_leftover = k;
                        s->retention_first_kept = c->retention_first_kept;
                }
        }
        if (c->have_retention && !c->retention_evidence_resolved)
                retention_evidence_resolve(c, &(AuditWitnessInfo) {});
        if (accounted)
                s->retention_evidence = c->retention_evidence;
        if (c->started_mid_log && !accounted)
                violation(s, s->first_seq, n ? segs[0].name : "", 0,
                          "the log starts at seq %" PRIu64 " but no retention record accounts for the records "
                          "before it (segments deleted)",
                          s->first_seq);
        else if (c->started_mid_log && s->retention_evidence.by == AUDIT_WITNESS_NONE)
                violation(s, s->first_seq, segs[0].name, 0,
                          "the log starts at seq %" PRIu64 " but no witness record covers the records removed "
                          "before it: only what a witness saw may be removed (log cut or replaced)",
                          s->first_seq);
        else if (o->witness && c->started_mid_log && o->witness->size + 1 < s->first_seq &&
                 !(s->retention_evidence.by == AUDIT_WITNESS_SERVER && s->retention_evidence.checked &&
                   s->retention_evidence.size >= o->witness->size))
                violation(s, s->first_seq, segs[0].name, 0,
                          "the log starts at seq %" PRIu64 ", past the checkpoint held elsewhere (size %" PRIu64
                          "), and no checkpoint the witness cosigned (checked with --witness-key) vouches for the "
                          "records removed (log cut or replaced)",
                          s->first_seq, o->witness->size);
        else if (o->witness && s->frontier.size < o->witness->size)
                violation(s, s->next_seq, s->last_segment.name, s->last_segment.size,
                          "the log ends after seq %" PRIu64 " but the checkpoint held elsewhere covers %" PRIu64
                          " records (log truncated)",
                          s->next_seq - 1, o->witness->size);
        s->witness_checked = c->witness_root_done;
}

static void scan_result_init(const AuditScanOptions *o, AuditScanResult *s) {
        memset(s, 0, sizeof(*s));
        s->first_seq = s->next_seq = 1;
        s->macs_checked = !!o->key;
        if (o->vkey) {
                s->vkey = *o->vkey;
                s->have_vkey = true;
        }
}

static int scan_sequential(int dir_fd, const AuditScanOptions *o, const AuditSegmentInfo *segs, size_t n,
                           AuditScanResult *ret) {
        ScanContext c = { .o = o, .s = ret, .key = o->key, .key_epoch_max = epoch_reach(o, segs, n) };
        uint64_t total = 0, done = 0;
        int r;

        scan_result_init(o, ret);
        ret->n_segments = n;
        for (size_t i = 0; i < n; i++)
                total += segs[i].size;

        for (size_t i = 0; i < n && !ret->broken; i++) {
                r = scan_segment(&c, dir_fd, &segs[i], i == 0, i == n - 1);
                if (r < 0)
                        return r;
                done += segs[i].size;
                if (o->on_progress)
                        o->on_progress(done, total, o->userdata);
        }
        if (ret->broken)
                return 0;
        finish_scan(&c, dir_fd, segs, n);
        return 0;
}

/* Parallel verification. Every segment header carries the chain state at its
 * start, so workers scan whole segments independently, each from its own
 * header; the main thread then joins the results in log order: each header
 * must equal the state the previous segment ended in (as the sequential scan
 * checks), the first seal of each segment is counted against the records
 * before it, and the first violation in log order is the one reported, with
 * the same record, file, offset and text as the sequential scan. Results are
 * joined while later segments are still being scanned, and workers run at most
 * `window` segments ahead of the join, so memory stays bounded. */
#define SCAN_THREADS_MAX 64U

typedef struct SegmentResult {
        bool done;
        int r;                   /* I/O error */
        bool header_violation;   /* s.violation, with the seq to be filled in from the previous segment */
        bool skipped;            /* header epoch beyond reach: the join must fail at this header */
        bool aborted;
        uint64_t size;
        AuditSegmentHeader h;
        AuditScanResult s;       /* the state at the end of the segment, counters of this segment only */
        bool have_retention, retention_desc_ok;
        AuditSegmentHeader retention_desc;
        uint64_t retention_first_kept;
        uint64_t retention_evidence_seq;
        bool retention_evidence_resolved;
        AuditWitnessInfo retention_evidence;
        bool witness_root_done;
        DeferredSeal deferred;
} SegmentResult;

typedef struct ParallelScan {
        int dir_fd;
        const AuditScanOptions *o;
        const AuditSegmentInfo *segs;
        size_t n;

        /* from the first segment, read before the workers start */
        AuditSegmentHeader start;
        bool have_vkey;          /* the verifier key after the start record */
        CheckpointVerifier vkey;
        AuditSealKey *base_key;  /* o->key evolved to the first header's epoch, once for all workers */

        pthread_mutex_t lock;
        pthread_cond_t cond;
        size_t next;             /* next segment to claim */
        size_t merged;           /* segments joined so far */
        size_t window;
        size_t last_needed;      /* a segment with a violation or error: none after it matters */
        uint64_t key_epoch_max;
        uint64_t claimed_bytes, done_bytes;
        bool stop;
        SegmentResult *slots;    /* segment i in slots[i % window] */
} ParallelScan;

static void parallel_scan_freep(ParallelScan **p) {
        if (!*p)
                return;
        audit_seal_key_free((*p)->base_key);
        free(*p);
}

/* Reads the first segment's header and start record, which every worker needs.
 * Returns false when the log should rather be scanned sequentially (it then
 * fails at its first segment anyway). */
static bool parallel_prepare(ParallelScan *p) {
        const AuditSegmentInfo *seg = &p->segs[0];
        AuditScanResult scratch = {};
        AuditRecord rec;
        uint8_t *map;
        uint64_t size;
        bool ok = false;

        if (segment_map(p->dir_fd, seg, &map, &size) < 0 || size == 0)
                return false;
        if (!segment_header_check(&scratch, seg, map, size, 0, &p->start))
                goto finish;
        if (first_header_implausible(&p->start))
                goto finish;
        if (p->o->key) {
                /* The sequential scan fails at the first record of an epoch beyond reach. */
                if (p->start.epoch > p->key_epoch_max || audit_seal_key_dup(p->o->key, &p->base_key) < 0)
                        goto finish;
                if (audit_seal_key_epoch(p->base_key) < p->start.epoch &&
                    audit_seal_key_evolve_to(p->base_key, p->start.epoch) < 0)
                        goto finish;
        }
        if (p->o->vkey) {
                p->vkey = *p->o->vkey;
                p->have_vkey = true;
        }
        /* Checkpoints after record 1 are checked with the key the start record names
         * (check_kind() takes it from there once record 1 passed; if it does not, the
         * scan stops at record 1 and nothing later matters). */
        if (p->start.first_seq == 1 &&
            audit_record_parse(map + p->start.header_size, (size_t) (size - p->start.header_size), true, &rec, NULL) ==
                    AUDIT_PARSE_OK &&
            rec.seq == 1 && rec.kind == AUDIT_KIND_START) {
                json_object *j = parse_internal_json(&rec);
                const char *vk = j ? json_get_str(j, "checkpoint_vkey") : NULL;
                CheckpointVerifier v;

                if (vk && checkpoint_vkey_parse(vk, strlen(vk), &v) >= 0) {
                        p->vkey = v;
                        p->have_vkey = true;
                }
                json_object_put(j);
        }
        ok = true;
finish:
        (void) munmap(map, (size_t) size);
        return ok;
}

static void scan_segment_part(ParallelScan *p, size_t i, uint64_t bytes_before, AuditSealKey **key, SegmentResult *res) {
        const AuditScanOptions *o = p->o;
        const AuditSegmentInfo *seg = &p->segs[i];
        AuditScanResult *s = &res->s;
        ScanContext c = {
                .o = o,
                .s = s,
                .started_mid_log = p->start.first_seq != 1,
                .start = p->start,
                .defer_first_seal = true,
                .stop = &p->stop,
                .key_epoch_max = p->key_epoch_max,
        };
        const AuditSegmentHeader *h = &res->h;
        uint8_t *map;
        uint64_t size;

        scan_result_init(o, s);
        s->first_seq = p->start.first_seq;
        if (i > 0) {
                s->vkey = p->vkey;
                s->have_vkey = p->have_vkey;
        }

        if (seg->not_regular) {
                violation(s, 0, seg->name, 0, "segment file is %s, not a regular file", file_type_name(seg->not_regular));
                res->header_violation = true;
                return;
        }
        res->r = segment_map(p->dir_fd, seg, &map, &size);
        if (res->r < 0)
                return;
        res->size = size;
        if (size == 0) {
                violation(s, 0, seg->name, 0, "empty segment file");
                res->header_violation = true;
                return;
        }
        if (!segment_header_check(s, seg, map, size, 0, &res->h)) {
                res->header_violation = true;
                goto finish;
        }
        /* Each record moves the epoch on by one at most: a header epoch beyond what
         * the bytes before this segment can hold cannot continue the chain, and
         * deriving its key could take long. The join fails at this header. */
        if (i > 0 && h->epoch > p->start.epoch && h->epoch - p->start.epoch > bytes_before / AUDIT_RECORD_MIN_SIZE) {
                res->skipped = true;
                goto finish;
        }

        s->next_seq = h->first_seq;
        memcpy(s->prev_hash, h->prev_hash, AUDIT_HASH_SIZE);
        s->epoch = h->epoch;
        (void) merkle_frontier_set(&s->frontier, h->first_seq - 1, (const uint8_t(*)[AUDIT_HASH_SIZE]) h->frontier,
                                   h->n_frontier);
        if (o->key) {
                /* The sequential scan holds the key of max(given epoch, this epoch) here; a
                 * copy evolved further by an earlier segment starts over from the base (the
                 * key given, evolved to the log's first epoch: no later header is before it
                 * in a log whose segments join). */
                if (!*key || (audit_seal_key_epoch(*key) > h->epoch &&
                              audit_seal_key_epoch(*key) > audit_seal_key_epoch(p->base_key))) {
                        *key = audit_seal_key_free(*key);
                        res->r = audit_seal_key_dup(p->base_key, key);
                        if (res->r < 0)
                                goto finish;
                }
                c.key = *key;
        }
        (void) scan_records(&c, seg, map, size, h->header_size, i == p->n - 1);
        res->aborted = c.aborted;
        res->have_retention = c.have_retention;
        res->retention_desc_ok = c.retention_desc_ok;
        res->retention_desc = c.retention_desc;
        res->retention_first_kept = c.retention_first_kept;
        res->retention_evidence_seq = c.retention_evidence_seq;
        res->retention_evidence_resolved = c.retention_evidence_resolved;
        res->retention_evidence = c.retention_evidence;
        res->witness_root_done = c.witness_root_done;
        res->deferred = c.deferred;
finish:
        (void) munmap(map, (size_t) size);
}

static void *scan_worker(void *userdata) {
        ParallelScan *p = userdata;
        AuditSealKey *key = NULL;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                SegmentResult *res;
                uint64_t before;
                size_t i;

                while (!__atomic_load_n(&p->stop, __ATOMIC_RELAXED) && p->next < p->n && p->next <= p->last_needed &&
                       p->next >= p->merged + p->window)
                        pthread_cond_wait(&p->cond, &p->lock);
                if (__atomic_load_n(&p->stop, __ATOMIC_RELAXED) || p->next >= p->n || p->next > p->last_needed)
                        break;
                i = p->next++;
                before = p->claimed_bytes;
                p->claimed_bytes += p->segs[i].size;
                res = &p->slots[i % p->window];
                memset(res, 0, sizeof(*res));
                pthread_mutex_unlock(&p->lock);

                scan_segment_part(p, i, before, &key, res);

                pthread_mutex_lock(&p->lock);
                res->done = true;
                p->done_bytes += p->segs[i].size;
                if ((res->r < 0 || res->header_violation || res->skipped || res->s.broken) && i < p->last_needed)
                        p->last_needed = i;
                pthread_cond_broadcast(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
        audit_seal_key_free(key);
        audit_crypto_thread_cleanup();
        return NULL;
}

/* Joins segment k's result onto the state of the segments before it, exactly
 * as the sequential scan would have gone on. Sets *ret_redo when the
 * result cannot be used (the files changed under the scan). */
static int join_segment(ParallelScan *p, ScanContext *c, size_t k, const SegmentResult *res, bool *ret_redo) {
        const AuditSegmentInfo *seg = &p->segs[k];
        const AuditScanResult *r = &res->s;
        AuditScanResult *s = c->s;

        if (res->r < 0)
                return res->r;
        if (res->header_violation) {
                violation(s, k == 0 ? seg->first_seq : s->next_seq, seg->name, 0, "%s", r->violation.what);
                return 0;
        }
        if (k == 0) {
                if (!start_at_first_header(c, seg, &res->h))
                        return 0;
                if (s->broken) { /* the witness at the header: the sequential scan reads no record */
                        s->last_segment = *seg;
                        s->last_segment.size = res->size;
                        return 0;
                }
        } else {
                check_continuation(c, seg, &res->h);
                if (s->broken)
                        return 0;
        }
        if (res->skipped || res->aborted) {
                *ret_redo = true;
                return 0;
        }

        s->last_segment = *seg;
        s->last_segment.size = res->size;
        if (res->deferred.pending && !c->started_mid_epoch &&
            res->deferred.counted != s->epoch_records + res->deferred.records_before) {
                seal_count_violation(s, res->deferred.seq, seg->name, res->deferred.offset, res->deferred.epoch,
                                     res->deferred.counted, s->epoch_records + res->deferred.records_before);
                return 0;
        }
        if (r->broken) {
                s->broken = true;
                s->violation = r->violation;
                return 0;
        }

        s->next_seq = r->next_seq;
        memcpy(s->prev_hash, r->prev_hash, AUDIT_HASH_SIZE);
        s->epoch = r->epoch;
        s->frontier = r->frontier;
        if (r->n_seals > 0 || s->epoch_start_usec == 0)
                s->epoch_start_usec = r->epoch_start_usec;
        if (r->n_seals > 0) {
                s->epoch_records = r->epoch_records;
                s->unsealed = r->unsealed;
                s->last_seal_seq = r->last_seal_seq;
                c->started_mid_epoch = false;
        } else {
                s->epoch_records += r->epoch_records;
                s->unsealed += r->unsealed;
        }
        if (r->n_checkpoints > 0) {
                s->last_checkpoint_seq = r->last_checkpoint_seq;
                s->last_checkpoint_usec = r->last_checkpoint_usec;
        }
        if (r->n_records > 0)
                s->last_realtime_usec = r->last_realtime_usec;
        if (r->n_seals > 0)
                s->last_seal_usec = r->last_seal_usec;
        s->n_records += r->n_records;
        s->n_bytes += r->n_bytes;
        s->n_seals += r->n_seals;
        s->n_checkpoints += r->n_checkpoints;
        s->n_recoveries += r->n_recoveries;
        if (!r->macs_checked)
                s->macs_checked = false;
        if (k == 0) {
                /* The key the later segments were checked with must be the one record 1 left. */
                if (r->have_vkey != p->have_vkey ||
                    (r->have_vkey && (!streq(r->vkey.name, p->vkey.name) || memcmp(r->vkey.pub, p->vkey.pub, 32) != 0 ||
                                      memcmp(r->vkey.key_id, p->vkey.key_id, 4) != 0))) {
                        *ret_redo = true;
                        return 0;
                }
                s->have_vkey = r->have_vkey;
                s->vkey = r->vkey;
        }
        if (res->have_retention) {
                c->have_retention = true;
                c->retention_first_kept = res->retention_first_kept;
                c->retention_desc_ok = res->retention_desc_ok;
                c->retention_desc = res->retention_desc;
                c->retention_evidence_seq = res->retention_evidence_seq;
                c->retention_evidence = res->retention_evidence;
                if (res->retention_evidence_resolved)
                        c->retention_evidence_resolved = true;
                else /* no witness record before it in its segment: the last one of the segments before */
                        retention_evidence_resolve(c, &s->last_witness);
        }
        if (r->last_witness.seq != 0)
                s->last_witness = r->last_witness;
        if (res->witness_root_done)
                c->witness_root_done = true;
        return 0;
}

static void parallel_stop(ParallelScan *p) {
        pthread_mutex_lock(&p->lock);
        __atomic_store_n(&p->stop, true, __ATOMIC_RELAXED);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

/* Returns 1 when the log must be scanned sequentially instead. */
static int scan_parallel(int dir_fd, const AuditScanOptions *o, const AuditSegmentInfo *segs, size_t n,
                         unsigned n_threads, AuditScanResult *ret) {
        _cleanup_free_ SegmentResult *slots = NULL;
        _cleanup_(parallel_scan_freep) ParallelScan *p = NULL;
        ScanContext c = { .o = o, .s = ret };
        pthread_t threads[SCAN_THREADS_MAX];
        unsigned started = 0;
        uint64_t total = 0, reported = 0;
        bool redo = false;
        int r = 0;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        *p = (ParallelScan) {
                .dir_fd = dir_fd,
                .o = o,
                .segs = segs,
                .n = n,
                .window = 2 * (size_t) n_threads,
                .last_needed = n,
                .key_epoch_max = epoch_reach(o, segs, n),
        };
        if (!parallel_prepare(p))
                return 1;
        slots = calloc(p->window, sizeof(*slots));
        if (!slots)
                return -ENOMEM;
        p->slots = slots;
        for (size_t i = 0; i < n; i++)
                total += segs[i].size;
        scan_result_init(o, ret);
        ret->n_segments = n;

        if (pthread_mutex_init(&p->lock, NULL) != 0)
                return -ENOMEM;
        if (pthread_cond_init(&p->cond, NULL) != 0) {
                pthread_mutex_destroy(&p->lock);
                return -ENOMEM;
        }
        for (; started < n_threads; started++)
                if (pthread_create(&threads[started], NULL, scan_worker, p) != 0)
                        break;
        if (started == 0) {
                redo = true;
                goto finish;
        }

        for (size_t k = 0; k < n; k++) {
                SegmentResult *res = &slots[k % p->window];

                pthread_mutex_lock(&p->lock);
                for (;;) {
                        uint64_t done = p->done_bytes;
                        if (o->on_progress && done != reported) {
                                /* drawn here only, so the callback needs no locking of its own */
                                pthread_mutex_unlock(&p->lock);
                                o->on_progress(done, total, o->userdata);
                                reported = done;
                                pthread_mutex_lock(&p->lock);
                                continue;
                        }
                        if (res->done)
                                break;
                        pthread_cond_wait(&p->cond, &p->lock);
                }
                pthread_mutex_unlock(&p->lock);

                r = join_segment(p, &c, k, res, &redo);
                if (r < 0 || redo || ret->broken)
                        break;

                pthread_mutex_lock(&p->lock);
                res->done = false; /* the slot is free for segment k + window */
                p->merged = k + 1;
                pthread_cond_broadcast(&p->cond);
                pthread_mutex_unlock(&p->lock);
        }

finish:
        parallel_stop(p);
        for (unsigned i = 0; i < started; i++)
                (void) pthread_join(threads[i], NULL);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        if (redo)
                return 1;
        if (r < 0 || ret->broken)
                return r;
        if (o->on_progress && reported != total)
                o->on_progress(total, total, o->userdata);
        finish_scan(&c, dir_fd, segs, n);
        return 0;
}

int audit_log_scan(int dir_fd, const AuditScanOptions *o, AuditScanResult *ret) {
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        size_t n = 0;
        int r;

        r = audit_segments_list(dir_fd, &segs, &n);
        if (r < 0) {
                scan_result_init(o, ret);
                return r;
        }
        if (o->n_threads > 1 && n > 1 && !o->on_record && !o->allow_torn_tail) {
                unsigned t = MIN(MIN(o->n_threads, SCAN_THREADS_MAX), (unsigned) MIN(n, (size_t) SCAN_THREADS_MAX));
                r = scan_parallel(dir_fd, o, segs, n, t, ret);
                if (r <= 0)
                        return r;
        }
        return scan_sequential(dir_fd, o, segs, n, ret);
}

int audit_record_read(int seg_fd, uint64_t offset, uint8_t **ret_buf, AuditRecord *ret) {
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t head[8];
        uint32_t size;
        ssize_t n;

        n = pread(seg_fd, head, sizeof(head), (off_t) offset);
        if (n < 0)
                return negative_errno();
        if (n != sizeof(head))
                return -EBADMSG;
        size = audit_record_peek_size(head, sizeof(head));
        if (size < AUDIT_RECORD_MIN_SIZE || size > AUDIT_RECORD_MAX_SIZE)
                return -EBADMSG;
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        n = pread(seg_fd, buf, size, (off_t) offset);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != size || audit_record_parse(buf, size, true, ret, NULL) != AUDIT_PARSE_OK)
                return -EBADMSG;
        *ret_buf = TAKE_PTR(buf);
        return 0;
}
