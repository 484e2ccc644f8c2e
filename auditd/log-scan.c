/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
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
                if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
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
                list[n].size = (uint64_t) st.st_size;
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

typedef struct ScanContext {
        const AuditScanOptions *o;
        AuditScanResult *s;
        bool started_mid_log;   /* first segment is not the start of the log */
        bool started_mid_epoch; /* … so the first epoch's record count is unknown */
        AuditSegmentHeader start;
        bool have_retention, retention_matches;
        uint64_t retention_first_kept;
        bool witness_root_done;
        uint8_t witness_root[AUDIT_HASH_SIZE];
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

/* Compares a retention record's description of the first kept segment with that segment's header. */
static bool retention_matches_start(json_object *j, const AuditSegmentHeader *h) {
        uint8_t prev[AUDIT_HASH_SIZE];
        const char *ph = json_get_str(j, "prev_hash");
        json_object *fr;
        uint64_t epoch;

        if (!ph || audit_unhex(ph, prev, sizeof(prev)) < 0 || !hash_eq(prev, h->prev_hash))
                return false;
        if (!json_get_u64(j, "epoch", &epoch) || epoch != h->epoch)
                return false;
        if (!json_object_object_get_ex(j, "frontier", &fr) || !json_object_is_type(fr, json_type_array) ||
            json_object_array_length(fr) != h->n_frontier)
                return false;
        for (size_t i = 0; i < h->n_frontier; i++) {
                json_object *e = json_object_array_get_idx(fr, i);
                uint8_t x[AUDIT_HASH_SIZE];
                if (!json_object_is_type(e, json_type_string) ||
                    audit_unhex(json_object_get_string(e), x, sizeof(x)) < 0 || !hash_eq(x, h->frontier[i]))
                        return false;
        }
        return true;
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
                else if (!c->started_mid_epoch && n != s->epoch_records)
                        violation(s, rec->seq, file, off,
                                  "seal of epoch %" PRIu64 " counts %" PRIu64 " records, the log holds %" PRIu64
                                  " (records of this epoch missing or added)",
                                  e, n, s->epoch_records);
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
                c->retention_matches = c->started_mid_log && first_kept == s->first_seq &&
                                       retention_matches_start(j, &c->start);
                break;
        }
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
        if (o->key) {
                uint8_t mac[AUDIT_MAC_SIZE];
                uint64_t ke = audit_seal_key_epoch(o->key);

                if (ke < rec->epoch && audit_seal_key_evolve_to(o->key, rec->epoch) < 0) {
                        violation(s, rec->seq, file, off, "cannot derive the key of epoch %" PRIu64, rec->epoch);
                        return;
                }
                if (audit_seal_key_epoch(o->key) == rec->epoch) {
                        if (audit_seal_key_mac(o->key, h, mac) < 0 || memcmp(mac, rec->mac, AUDIT_MAC_SIZE) != 0) {
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
        if (rec->kind == AUDIT_KIND_SEAL) {
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

static int scan_segment(ScanContext *c, int dir_fd, const AuditSegmentInfo *seg, bool first, bool last) {
        const AuditScanOptions *o = c->o;
        AuditScanResult *s = c->s;
        _cleanup_close_ int fd = -EBADF;
        AuditSegmentHeader h;
        const char *reason = NULL;
        AuditParseResult pr;
        uint8_t *map;
        struct stat st;
        uint64_t off;
        int r = 0;

        fd = openat(dir_fd, seg->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_size == 0) {
                violation(s, first ? seg->first_seq : s->next_seq, seg->name, 0, "empty segment file");
                return 0;
        }
        map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
                return negative_errno();
        (void) madvise(map, (size_t) st.st_size, MADV_SEQUENTIAL | MADV_WILLNEED);

        pr = audit_segment_header_parse(map, (size_t) st.st_size, &h, &reason);
        if (pr != AUDIT_PARSE_OK) {
                violation(s, first ? seg->first_seq : s->next_seq, seg->name, 0, "segment header: %s",
                          pr == AUDIT_PARSE_SHORT ? "truncated" : reason);
                goto finish;
        }
        if (h.first_seq != seg->first_seq) {
                violation(s, first ? seg->first_seq : s->next_seq, seg->name, 0,
                          "segment header says it starts at seq %" PRIu64 ", its name says %" PRIu64, h.first_seq,
                          seg->first_seq);
                goto finish;
        }
        if (first) {
                if (h.first_seq == 1 && (!all_zero(h.prev_hash, AUDIT_HASH_SIZE) || h.epoch != 0)) {
                        violation(s, 1, seg->name, 0, "first segment of the log does not start from the empty state");
                        goto finish;
                }
                c->started_mid_log = h.first_seq != 1;
                c->started_mid_epoch = c->started_mid_log;
                c->start = h;
                s->first_seq = s->next_seq = h.first_seq;
                memcpy(s->prev_hash, h.prev_hash, AUDIT_HASH_SIZE);
                s->epoch = h.epoch;
                (void) merkle_frontier_set(&s->frontier, h.first_seq - 1, (const uint8_t(*)[AUDIT_HASH_SIZE]) h.frontier,
                                           h.n_frontier);
                if (o->witness && o->witness->size == h.first_seq - 1) {
                        (void) merkle_frontier_root(&s->frontier, c->witness_root);
                        c->witness_root_done = true;
                        if (!hash_eq(c->witness_root, o->witness->root))
                                violation(s, h.first_seq, seg->name, 0,
                                          "the Merkle root over records 1..%" PRIu64
                                          " differs from the checkpoint held elsewhere",
                                          o->witness->size);
                }
        } else {
                bool same_frontier = h.n_frontier == s->frontier.n;
                for (unsigned i = 0; same_frontier && i < h.n_frontier; i++)
                        same_frontier = hash_eq(h.frontier[i], s->frontier.hash[i]);
                if (h.first_seq != s->next_seq) {
                        violation(s, s->next_seq, seg->name, 0,
                                  "segment starts at seq %" PRIu64 " but the previous one ended before seq %" PRIu64
                                  " (records or segment missing)",
                                  h.first_seq, s->next_seq);
                        goto finish;
                }
                if (!hash_eq(h.prev_hash, s->prev_hash) || h.epoch != s->epoch || !same_frontier) {
                        violation(s, s->next_seq, seg->name, 0,
                                  "segment header does not continue the chain of the previous segment");
                        goto finish;
                }
        }

        off = h.header_size;
        while (off < (uint64_t) st.st_size && !s->broken) {
                size_t avail = (size_t) ((uint64_t) st.st_size - off);
                AuditRecord rec;

                pr = audit_record_parse(map + off, avail, true, &rec, &reason);
                if (pr == AUDIT_PARSE_SHORT || (pr == AUDIT_PARSE_BAD && last && all_zero(map + off, avail))) {
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
                                goto finish;
                }
                off += rec.size;
        }
        s->last_segment = *seg;
        s->last_segment.size = (uint64_t) st.st_size;
finish:
        (void) munmap(map, (size_t) st.st_size);
        return r;
}

int audit_log_scan(int dir_fd, const AuditScanOptions *o, AuditScanResult *ret) {
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        ScanContext c = { .o = o, .s = ret };
        uint64_t total = 0, done = 0;
        size_t n = 0;
        int r;

        memset(ret, 0, sizeof(*ret));
        ret->first_seq = ret->next_seq = 1;
        ret->macs_checked = !!o->key;
        if (o->vkey) {
                ret->vkey = *o->vkey;
                ret->have_vkey = true;
        }
        r = audit_segments_list(dir_fd, &segs, &n);
        if (r < 0)
                return r;
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

        if (c.started_mid_log && !(c.have_retention && c.retention_matches))
                violation(ret, ret->first_seq, n ? segs[0].name : "", 0,
                          "the log starts at seq %" PRIu64 " but no retention record accounts for the records "
                          "before it (segments deleted)",
                          ret->first_seq);
        else if (o->witness && ret->frontier.size < o->witness->size)
                violation(ret, ret->next_seq, ret->last_segment.name, ret->last_segment.size,
                          "the log ends after seq %" PRIu64 " but the checkpoint held elsewhere covers %" PRIu64
                          " records (log truncated)",
                          ret->next_seq - 1, o->witness->size);
        ret->witness_checked = c.witness_root_done;
        return 0;
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
