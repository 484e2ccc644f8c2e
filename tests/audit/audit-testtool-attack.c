/* SPDX-License-Identifier: Apache-2.0 */
/* audit-testtool commands of an attacker holding the device's keys:
 *
 *   audit-testtool rewrite DIR FROM-SEQ edit|drop|swap|none [KEY-FILE]
 *        an attacker holding the device's keys: cuts the log before FROM-SEQ and appends
 *        the records from there again (one payload letter of FROM-SEQ changed, FROM-SEQ left
 *        out, FROM-SEQ and the next swapped, or as they were), with fresh chain hashes,
 *        seals, re-signed checkpoints and MACs under KEY-FILE's key (default seal.key)
 *        moved on to each record's epoch where it can be (a key saved earlier, "rolled
 *        back"), else under its own bytes; witness records are left out
 *   audit-testtool cut-start DIR SEGMENT-INDEX none|ack|witness
 *        an attacker holding the device's keys removes the segments before the one at
 *        SEGMENT-INDEX and appends a retention record for them, resting on no witness
 *        record, a made-up acknowledgement, or a checkpoint with a made-up cosignature
 *   audit-testtool new-log DIR FIRST-SEQ none|ack|witness
 *        … or replaces the whole log by one that starts at FIRST-SEQ in the current epoch */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "audit-files.h"
#include "log-store.h"
#include "macro.h"
#include "parse-util.h"
#include "audit-testtool.h"

/* --- the attacker: every key the device holds, none it erased --- */

typedef struct Attacker {
        int dir_fd;
        CheckpointVerifier vkey;
        char *vkey_text;
        uint8_t priv[32];
} Attacker;

static int attacker_open(const char *dir, Attacker *a) {
        int r;

        a->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (a->dir_fd < 0)
                return -errno;
        r = audit_load_vkey(a->dir_fd, &a->vkey, &a->vkey_text);
        if (r < 0)
                return r;
        return audit_load_checkpoint_priv(a->dir_fd, a->priv);
}

static void attacker_done(Attacker *a) {
        safe_close(a->dir_fd);
        free(a->vkey_text);
        OPENSSL_cleanse(a->priv, sizeof(a->priv));
}

/* A key for `epoch` from the bytes of a key file: the true one if the file's key can be moved
 * on to it, else the file's bytes under that epoch's label (its MACs will not verify). */
static int attacker_key(int dir_fd, const char *key_file, uint64_t epoch, AuditSealKey **ret) {
        _cleanup_close_ int fd = openat(key_file ? AT_FDCWD : dir_fd, key_file ?: AUDIT_KEY_FILE, O_RDONLY | O_CLOEXEC);
        AuditSealKey *k = NULL;
        uint8_t raw[AUDIT_KEY_SIZE];
        int r;

        if (fd < 0)
                return -errno;
        r = audit_key_file_read(fd, &k);
        if (r < 0)
                return r;
        if (audit_seal_key_epoch(k) <= epoch) {
                r = audit_seal_key_evolve_to(k, epoch);
                if (r < 0) {
                        audit_seal_key_free(k);
                        return r;
                }
                *ret = k;
                return 0;
        }
        audit_seal_key_raw(k, raw);
        audit_seal_key_free(k);
        r = audit_seal_key_new(epoch, raw, ret);
        OPENSSL_cleanse(raw, sizeof(raw));
        return r;
}

static int attacker_writer(Attacker *a, const AuditScanResult *res, AuditSealKey *key, AuditWriter **ret) {
        AuditWriterOptions wo = { .origin = a->vkey.name, .vkey = a->vkey_text, .checkpoint_priv = a->priv };
        return audit_writer_open(a->dir_fd, res, key, -1, &wo, ret);
}

typedef struct SavedRecord {
        AuditKind kind;
        AuditDirection direction;
        char *type, *txn;
        uint8_t *meta, *payload;
        size_t meta_len, payload_len;
} SavedRecord;

typedef struct Rewrite {
        uint64_t from;
        char cut_file[AUDIT_FILE_NAME_MAX];
        uint64_t cut_offset;
        SavedRecord *recs;
        size_t n;
} Rewrite;

static void rewrite_done(Rewrite *rw) {
        for (size_t i = 0; i < rw->n; i++) {
                free(rw->recs[i].type);
                free(rw->recs[i].txn);
                free(rw->recs[i].meta);
                free(rw->recs[i].payload);
        }
        free(rw->recs);
}

static int on_rewrite_record(const AuditRecord *rec, const AuditSegmentInfo *seg, uint64_t offset, void *userdata) {
        Rewrite *rw = userdata;
        SavedRecord *sr, *nl;

        if (rec->seq == rw->from) {
                memcpy(rw->cut_file, seg->name, sizeof(rw->cut_file));
                rw->cut_offset = offset;
        }
        if (rec->seq < rw->from)
                return 0;
        nl = realloc(rw->recs, (rw->n + 1) * sizeof(*nl));
        if (!nl)
                return -ENOMEM;
        rw->recs = nl;
        sr = &rw->recs[rw->n++];
        *sr = (SavedRecord) { .kind = rec->kind, .direction = rec->direction,
                              .type = strndup(rec->type, rec->type_len), .txn = strndup(rec->txn, rec->txn_len),
                              .meta = malloc(rec->meta_len + 1), .payload = malloc(rec->payload_len + 1),
                              .meta_len = rec->meta_len, .payload_len = rec->payload_len };
        if (!sr->type || !sr->txn || !sr->meta || !sr->payload)
                return -ENOMEM;
        memcpy(sr->meta, rec->meta, rec->meta_len);
        memcpy(sr->payload, rec->payload, rec->payload_len);
        return 0;
}

/* Cuts the log before record `from`: later segments removed, its own truncated. */
static int cut_before(Attacker *a, const Rewrite *rw) {
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        size_t n = 0;
        int r;

        r = audit_segments_list(a->dir_fd, &segs, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                int c = strcmp(segs[i].name, rw->cut_file);
                if (c > 0 || (c == 0 && rw->from == segs[i].first_seq)) {
                        if (unlinkat(a->dir_fd, segs[i].name, 0) < 0)
                                return -errno;
                } else if (c == 0) {
                        _cleanup_close_ int fd = openat(a->dir_fd, segs[i].name, O_RDWR | O_CLOEXEC);
                        if (fd < 0 || ftruncate(fd, (off_t) rw->cut_offset) < 0)
                                return -errno;
                }
        }
        remove_index_files(a->dir_fd);
        return 0;
}

static int reappend(AuditWriter *w, SavedRecord *sr) {
        AuditRecordFields f = { .kind = sr->kind, .direction = sr->direction, .type = sr->type, .txn = sr->txn,
                                .meta = sr->meta, .meta_len = sr->meta_len, .payload = sr->payload,
                                .payload_len = sr->payload_len };

        switch (sr->kind) {
        case AUDIT_KIND_SEAL:
                return audit_writer_seal(w);
        case AUDIT_KIND_CHECKPOINT: {
                int r = audit_writer_checkpoint(w, true);
                return r < 0 ? r : 0;
        }
        case AUDIT_KIND_START:
        case AUDIT_KIND_WITNESS: /* the attacker cannot make one that holds, and leaves it out */
                return 0;
        default:
                return audit_writer_append(w, &f, NULL, NULL);
        }
}

int cmd_rewrite(int argc, char *argv[]) {
        _cleanup_(audit_writer_freep) AuditWriter *w = NULL;
        Attacker a = { .dir_fd = -EBADF };
        _cleanup_(rewrite_done) Rewrite rw = {};
        AuditScanOptions o = { .on_record = on_rewrite_record, .userdata = &rw };
        AuditScanResult res;
        AuditSealKey *key = NULL;
        const char *op;
        int r;

        if (argc < 3 || argc > 4 || safe_atou64(argv[1], &rw.from) < 0 || rw.from == 0)
                return fprintf(stderr, "usage: rewrite DIR FROM-SEQ edit|drop|swap|none [KEY-FILE]\n"), 2;
        op = argv[2];
        r = attacker_open(argv[0], &a);
        if (r < 0)
                return die("keys", r);
        o.vkey = &a.vkey;
        r = audit_log_scan(a.dir_fd, &o, &res);
        if (r < 0 || res.broken || rw.n == 0)
                return die("scan", r < 0 ? r : EBADMSG);
        if (streq(op, "edit") && rw.recs[0].payload_len > 0)
                rw.recs[0].payload[0] ^= 0x01;
        else if (streq(op, "swap") && rw.n > 1) {
                SavedRecord t = rw.recs[0];
                rw.recs[0] = rw.recs[1];
                rw.recs[1] = t;
        } else if (!streq(op, "drop") && !streq(op, "none"))
                return die("operation", EINVAL);
        r = cut_before(&a, &rw);
        if (r < 0)
                return die("cut", r);
        o = (AuditScanOptions) { .vkey = &a.vkey };
        r = audit_log_scan(a.dir_fd, &o, &res);
        if (r < 0 || res.broken)
                return die("scan after the cut", r < 0 ? r : EBADMSG);
        r = attacker_key(a.dir_fd, argc == 4 ? argv[3] : NULL, res.epoch, &key);
        if (r < 0)
                return die("key", r);
        r = attacker_writer(&a, &res, key, &w);
        if (r < 0)
                return die("open", r);
        for (size_t i = streq(op, "drop") ? 1 : 0; i < rw.n; i++) {
                r = reappend(w, &rw.recs[i]);
                if (r < 0)
                        return die("append", r);
        }
        attacker_done(&a);
        return sync_and_print(w);
}

/* Made-up evidence and a retention record for everything before the segment `first`. */
static int forge_retention(Attacker *a, AuditWriter *w, const AuditSegmentHeader *first, const char *mode) {
        uint8_t root[AUDIT_HASH_SIZE], junk[96];
        char hex[2 * AUDIT_HASH_SIZE + 1], b64[128], note[CHECKPOINT_NOTE_MAX + 256], buf[8192];
        _cleanup_free_ char *payload = NULL;
        uint64_t size = audit_writer_next_seq(w) - 1, wseq = 0;
        AuditRecordFields f = { .direction = AUDIT_DIRECTION_INTERNAL };
        size_t len = 0;
        int r;

        r = audit_writer_root(w, root);
        if (r < 0)
                return r;
        for (size_t i = 0; i < sizeof(junk); i++)
                junk[i] = (uint8_t) (i * 37 + 11);
        if (streq(mode, "ack")) {
                audit_hex(junk, AUDIT_HASH_SIZE, hex);
                r = audit_witness_payload("customer", size, root, NULL, 0, (const char *const[]) { "tag", hex, "uid", "0", NULL },
                                          &payload);
        } else if (streq(mode, "witness")) {
                Checkpoint c = { .size = size };
                (void) snprintf(c.origin, sizeof(c.origin), "%s", a->vkey.name);
                memcpy(c.root, root, AUDIT_HASH_SIZE);
                r = checkpoint_sign(a->priv, a->vkey.name, &c, note, CHECKPOINT_NOTE_MAX);
                if (r < 0)
                        return r;
                (void) EVP_EncodeBlock((unsigned char *) b64, junk, 76);
                (void) snprintf(note + strlen(note), sizeof(note) - strlen(note), "\xe2\x80\x94 commserver.test/witness %s\n", b64);
                r = audit_witness_payload("witness", size, root, NULL, 0, (const char *const[]) { "checkpoint", note, NULL },
                                          &payload);
        } else if (!streq(mode, "none"))
                return -EINVAL;
        if (r < 0)
                return r;
        if (payload) {
                f.kind = AUDIT_KIND_WITNESS;
                f.type = "audit.witness";
                f.payload = (const uint8_t *) payload;
                f.payload_len = strlen(payload);
                r = audit_writer_append(w, &f, &wseq, NULL);
                if (r < 0)
                        return r;
        }
        /* the retention record as the writer makes it, naming the made-up evidence */
        audit_hex(first->prev_hash, AUDIT_HASH_SIZE, hex);
        len += (size_t) snprintf(buf + len, sizeof(buf) - len,
                                 "{\"removed_first_seq\":1,\"first_kept_seq\":%" PRIu64 ",\"prev_hash\":\"%s\",\"epoch\":%" PRIu64
                                 ",\"frontier\":[", first->first_seq, hex, first->epoch);
        for (unsigned i = 0; i < first->n_frontier; i++) {
                audit_hex(first->frontier[i], AUDIT_HASH_SIZE, hex);
                len += (size_t) snprintf(buf + len, sizeof(buf) - len, "%s\"%s\"", i ? "," : "", hex);
        }
        (void) snprintf(buf + len, sizeof(buf) - len, "],\"evidence_seq\":%" PRIu64 ",\"witnessed_size\":%" PRIu64 "}", wseq,
                        size);
        f = (AuditRecordFields) { .kind = AUDIT_KIND_RETENTION, .direction = AUDIT_DIRECTION_INTERNAL,
                                  .type = "audit.retention", .payload = (const uint8_t *) buf, .payload_len = strlen(buf) };
        r = audit_writer_append(w, &f, NULL, NULL);
        return r < 0 ? r : audit_writer_sync(w);
}

static int read_header(int dir_fd, const char *name, AuditSegmentHeader *h) {
        _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
        uint8_t hdr[AUDIT_SEGMENT_HEADER_MAX];
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = pread(fd, hdr, sizeof(hdr), 0);
        if (n < 0)
                return -errno;
        return audit_segment_header_parse(hdr, (size_t) n, h, NULL) == AUDIT_PARSE_OK ? 0 : -EBADMSG;
}

int cmd_cut_start(int argc, char *argv[]) {
        _cleanup_(audit_writer_freep) AuditWriter *w = NULL;
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        Attacker a = { .dir_fd = -EBADF };
        AuditScanOptions o = {};
        AuditScanResult res;
        AuditSegmentHeader h;
        AuditSealKey *key = NULL;
        uint64_t k;
        size_t n = 0;
        int r;

        if (argc != 3 || safe_atou64(argv[1], &k) < 0 || k == 0)
                return fprintf(stderr, "usage: cut-start DIR SEGMENT-INDEX none|ack|witness\n"), 2;
        r = attacker_open(argv[0], &a);
        if (r < 0)
                return die("keys", r);
        o.vkey = &a.vkey;
        r = audit_log_scan(a.dir_fd, &o, &res);
        if (r < 0 || res.broken)
                return die("scan", r < 0 ? r : EBADMSG);
        r = audit_segments_list(a.dir_fd, &segs, &n);
        if (r < 0 || k >= n)
                return die("segments", r < 0 ? r : ENOENT);
        r = read_header(a.dir_fd, segs[k].name, &h);
        if (r < 0)
                return die("header", r);
        r = attacker_key(a.dir_fd, NULL, res.epoch, &key);
        if (r >= 0)
                r = attacker_writer(&a, &res, key, &w);
        if (r >= 0)
                r = forge_retention(&a, w, &h, argv[2]);
        if (r < 0)
                return die("forge", r);
        for (size_t i = 0; i < k; i++)
                if (unlinkat(a.dir_fd, segs[i].name, 0) < 0)
                        return die("unlink", errno);
        attacker_done(&a);
        return 0;
}

int cmd_new_log(int argc, char *argv[]) {
        _cleanup_(audit_writer_freep) AuditWriter *w = NULL;
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        Attacker a = { .dir_fd = -EBADF };
        AuditScanResult res = {};
        AuditSegmentHeader h = {};
        AuditSealKey *key = NULL;
        uint8_t fr[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE];
        uint64_t first;
        size_t n = 0;
        int r;

        if (argc != 3 || safe_atou64(argv[1], &first) < 0 || first < 2)
                return fprintf(stderr, "usage: new-log DIR FIRST-SEQ none|ack|witness\n"), 2;
        r = attacker_open(argv[0], &a);
        if (r < 0)
                return die("keys", r);
        r = audit_segments_list(a.dir_fd, &segs, &n);
        if (r < 0)
                return die("segments", r);
        for (size_t i = 0; i < n; i++)
                (void) unlinkat(a.dir_fd, segs[i].name, 0);
        remove_index_files(a.dir_fd);
        {
                _cleanup_close_ int fd = openat(a.dir_fd, AUDIT_KEY_FILE, O_RDONLY | O_CLOEXEC);
                AuditSealKey *cur = NULL;
                if (fd < 0 || audit_key_file_read(fd, &cur) < 0)
                        return die("seal.key", EIO);
                res.epoch = audit_seal_key_epoch(cur);
                audit_seal_key_free(cur);
        }
        /* a plausible history nobody can check: made-up hashes */
        res.first_seq = res.next_seq = first;
        for (size_t i = 0; i < AUDIT_HASH_SIZE; i++)
                res.prev_hash[i] = (uint8_t) (i + 1);
        for (unsigned i = 0; i < AUDIT_FRONTIER_MAX; i++)
                memset(fr[i], (int) (0x40 + i), AUDIT_HASH_SIZE);
        r = merkle_frontier_set(&res.frontier, first - 1, (const uint8_t(*)[AUDIT_HASH_SIZE]) fr,
                                (unsigned) __builtin_popcountll(first - 1));
        if (r < 0)
                return die("frontier", r);
        r = attacker_key(a.dir_fd, NULL, res.epoch, &key);
        if (r >= 0)
                r = attacker_writer(&a, &res, key, &w);
        if (r < 0)
                return die("open", r);
        {
                AuditRecordFields f = { .kind = AUDIT_KIND_DATA, .direction = AUDIT_DIRECTION_INTERNAL, .type = "policy.decision",
                                        .payload = (const uint8_t *) "nothing happened", .payload_len = 16 };
                r = audit_writer_append(w, &f, NULL, NULL);
                if (r < 0)
                        return die("append", r);
        }
        {
                char name[AUDIT_FILE_NAME_MAX];
                audit_segment_name(first, name);
                r = read_header(a.dir_fd, name, &h);
        }
        if (r >= 0)
                r = forge_retention(&a, w, &h, argv[2]);
        if (r < 0)
                return die("forge", r);
        attacker_done(&a);
        return 0;
}
