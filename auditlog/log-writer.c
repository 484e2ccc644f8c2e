/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-id128.h>
#include <time.h>

#include "log-index.h"
#include "log-store.h"
#include "macro.h"

#define ENCODE_BUF_KEEP (64U << 10) /* larger encode buffers are freed after use */
#define INDEX_MARK_USEC 1000000U     /* the synced-through mark is written at most this often, and at close */

struct AuditWriter {
        int dir_fd;
        int seg_fd;
        int index_fd; /* the index file of the segment written, -EBADF until (re)opened */
        int key_fd;
        AuditSegmentInfo *segments; /* kept segments, oldest first; the last is the one written */
        size_t n_segments;
        uint64_t total_size;

        uint64_t next_seq;
        uint8_t prev_hash[AUDIT_HASH_SIZE];
        uint64_t epoch;
        uint64_t epoch_records;
        uint64_t last_seal_seq;
        MerkleFrontier frontier;
        AuditSealKey *key;
        uint8_t boot_id[AUDIT_BOOT_ID_SIZE];

        uint64_t segment_size, retention_size;
        uint64_t (*retention_floor)(void *userdata);
        void *userdata;
        uint64_t witness_seq, witness_size; /* the newest witness record: records 1..witness_size may go */
        char *origin;
        char *vkey;
        uint8_t checkpoint_priv[32];
        bool have_checkpoint_key;
        char *last_checkpoint;
        uint64_t last_checkpoint_seq;

        uint8_t *buf;
        size_t buf_size;
        bool dirty;
        bool in_retention;
        int post_error; /* the first error after a record was already written */
        uint64_t synced_seq;  /* the last record made durable */
        uint64_t marked_seq;  /* ... and the last one the index header says so of */
        uint64_t marked_usec; /* CLOCK_MONOTONIC, when the index header was last written */
        int old_fd; /* one older segment kept open for reads, with its index */
        int old_index_fd;
        uint64_t old_first;
};

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;
        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}


/* Tells the index of the segment written up to which record it is durable.
 * Only ever a value the segment's fdatasync already covered. */
static void index_mark(AuditWriter *w) {
        uint64_t first = w->segments[w->n_segments - 1].first_seq;

        if (w->synced_seq < first || w->synced_seq == w->marked_seq)
                return;
        if (audit_index_header_write(w->index_fd, &(AuditIndexHeader) { .first_seq = first,
                                                                        .synced_through = w->synced_seq }) >= 0)
                w->marked_seq = w->synced_seq;
        w->marked_usec = now_usec(CLOCK_MONOTONIC);
}

AuditWriter *audit_writer_free(AuditWriter *w) {
        if (!w)
                return NULL;
        safe_close(w->seg_fd);
        /* A clean close leaves the exact mark on disk. */
        if (w->index_fd >= 0 && w->n_segments > 0) {
                index_mark(w);
                (void) fdatasync(w->index_fd);
        }
        safe_close(w->index_fd);
        safe_close(w->key_fd);
        safe_close(w->old_fd);
        safe_close(w->old_index_fd);
        audit_seal_key_free(w->key);
        OPENSSL_cleanse(w->checkpoint_priv, sizeof(w->checkpoint_priv));
        free(w->segments);
        free(w->origin);
        free(w->vkey);
        free(w->last_checkpoint);
        free(w->buf);
        free(w);
        return NULL;
}

static int fsync_dir(int dir_fd) {
        return fsync(dir_fd) < 0 ? negative_errno() : 0;
}

/* The index of the segment being written, opened again if an earlier attempt failed. */
static int current_index(AuditWriter *w) {
        if (w->index_fd >= 0)
                return 0;
        return audit_index_open(w->dir_fd, w->segments[w->n_segments - 1].first_seq, true, &w->index_fd);
}

/* --- segments ------------------------------------------------------------- */

static int segment_create(AuditWriter *w) {
        uint8_t hdr[AUDIT_SEGMENT_HEADER_MAX];
        AuditSegmentHeader h = {
                .first_seq = w->next_seq,
                .epoch = w->epoch,
                .n_frontier = w->frontier.n,
        };
        char name[AUDIT_FILE_NAME_MAX], tmp[AUDIT_FILE_NAME_MAX + 8];
        AuditSegmentInfo *nl;
        _cleanup_close_ int fd = -EBADF;
        int size, r;

        memcpy(h.prev_hash, w->prev_hash, AUDIT_HASH_SIZE);
        memcpy(h.frontier, w->frontier.hash, sizeof(h.frontier[0]) * w->frontier.n);
        size = audit_segment_header_encode(&h, hdr, sizeof(hdr));
        if (size < 0)
                return size;
        audit_segment_name(w->next_seq, name);
        (void) snprintf(tmp, sizeof(tmp), "%s.tmp", name);

        nl = realloc(w->segments, (w->n_segments + 1) * sizeof(*nl));
        if (!nl)
                return -ENOMEM;
        w->segments = nl;

        /* Written under a temporary name and renamed: a segment file never exists without its header. */
        (void) unlinkat(w->dir_fd, tmp, 0);
        fd = openat(w->dir_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0)
                return negative_errno();
        r = audit_pwrite_all(fd, hdr, (size_t) size, 0);
        if (r >= 0 && fdatasync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && renameat(w->dir_fd, tmp, w->dir_fd, name) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlinkat(w->dir_fd, tmp, 0);
                return r;
        }
        r = fsync_dir(w->dir_fd);
        if (r < 0)
                return r;

        w->segments[w->n_segments] = (AuditSegmentInfo) { .first_seq = w->next_seq, .size = (uint64_t) size };
        memcpy(w->segments[w->n_segments].name, name, sizeof(name));
        w->n_segments++;
        w->total_size += (uint64_t) size;
        safe_close(w->seg_fd);
        w->seg_fd = TAKE_FD(fd);
        w->index_fd = safe_close(w->index_fd);
        /* A missing index is opened again at the next append. */
        (void) current_index(w);
        return 0;
}

/* The segment written is made durable and closed; its index says so, and that
 * a later segment exists (only once that segment does, so a crash in between
 * never looks like a removed segment). */
static int segment_roll(AuditWriter *w) {
        _cleanup_close_ int old_index = -EBADF;
        uint64_t old_first = w->segments[w->n_segments - 1].first_seq;
        int r;

        if (fdatasync(w->seg_fd) < 0)
                return negative_errno();
        w->dirty = false;
        w->synced_seq = w->next_seq - 1;
        old_index = TAKE_FD(w->index_fd);
        r = segment_create(w);
        if (r < 0) {
                w->index_fd = TAKE_FD(old_index);
                return r;
        }
        if (old_index >= 0)
                (void) audit_index_header_write(old_index, &(AuditIndexHeader) { .first_seq = old_first,
                                                                      .synced_through = w->next_seq - 1,
                                                                      .next_segment = w->next_seq });
        return 0;
}

/* The header of the i-th kept segment. */
static int segment_header_read(AuditWriter *w, size_t i, AuditSegmentHeader *ret) {
        uint8_t hdr[AUDIT_SEGMENT_HEADER_MAX];
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        fd = openat(w->dir_fd, w->segments[i].name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        n = pread(fd, hdr, sizeof(hdr), 0);
        if (n < 0)
                return negative_errno();
        if (audit_segment_header_parse(hdr, (size_t) n, ret, NULL) != AUDIT_PARSE_OK)
                return -EBADMSG;
        return 0;
}

/* --- opening ---------------------------------------------------------------- */

static int writer_open_log(AuditWriter *w) {
        size_t n = 0;
        int r;

        r = audit_segments_list(w->dir_fd, &w->segments, &n);
        if (r < 0)
                return r;
        w->n_segments = n;
        for (size_t i = 0; i < n; i++)
                w->total_size += w->segments[i].size;

        /* Earlier versions kept one index for the whole log; per-segment files replace it. */
        (void) unlinkat(w->dir_fd, AUDIT_INDEX_LEGACY_FILE, 0);
        r = audit_index_prune(w->dir_fd);
        if (r < 0)
                return r;

        if (n > 0) {
                w->seg_fd = openat(w->dir_fd, w->segments[n - 1].name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                if (w->seg_fd < 0)
                        return negative_errno();
                r = current_index(w);
        } else
                r = segment_create(w);
        if (r < 0)
                return r;
        r = current_index(w);
        if (r < 0)
                return r;

        if (w->next_seq == 1) {
                /* A new log: the first record names the checkpoint key, under the MAC of epoch 0. */
                _cleanup_free_ char *payload = NULL;
                json_object *j = json_object_new_object();
                AuditRecordFields f = { .kind = AUDIT_KIND_START, .direction = AUDIT_DIRECTION_INTERNAL,
                                        .type = "audit.start" };

                if (!j)
                        return -ENOMEM;
                json_object_object_add(j, "format", json_object_new_int(AUDIT_FORMAT_VERSION));
                json_object_object_add(j, "origin", json_object_new_string(w->origin));
                json_object_object_add(j, "checkpoint_vkey", json_object_new_string(w->vkey));
                payload = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(j);
                if (!payload)
                        return -ENOMEM;
                f.payload = (const uint8_t *) payload;
                f.payload_len = strlen(payload);
                r = audit_writer_append(w, &f, NULL, NULL);
                if (r >= 0)
                        r = audit_writer_sync(w);
                if (r < 0)
                        return r;
        }
        return 0;
}

int audit_writer_open(int dir_fd, const AuditScanResult *s, AuditSealKey *key, int key_fd,
                      const AuditWriterOptions *o, AuditWriter **ret) {
        _cleanup_(audit_writer_freep) AuditWriter *w = NULL;
        sd_id128_t boot_id;
        int r;

        if (!key || audit_seal_key_epoch(key) != s->epoch)
                return -EKEYREJECTED;
        /* Every record names the boot it was written in; a log that cannot say
         * so (no /proc/sys, as under ProcSubset=pid) is not opened. */
        r = sd_id128_get_boot(&boot_id);
        if (r < 0)
                return r;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->dir_fd = dir_fd;
        w->seg_fd = w->index_fd = w->old_fd = w->old_index_fd = w->key_fd = -EBADF;
        w->next_seq = s->next_seq;
        memcpy(w->prev_hash, s->prev_hash, AUDIT_HASH_SIZE);
        w->epoch = s->epoch;
        w->epoch_records = s->epoch_records;
        w->last_seal_seq = s->last_seal_seq;
        w->frontier = s->frontier;
        w->last_checkpoint_seq = s->last_checkpoint_seq;
        w->segment_size = o->segment_size ?: (8U << 20);
        w->retention_size = o->retention_size;
        w->retention_floor = o->retention_floor;
        w->userdata = o->userdata;
        if (s->last_witness.by != AUDIT_WITNESS_NONE) {
                w->witness_seq = s->last_witness.seq;
                w->witness_size = s->last_witness.size;
        }
        w->origin = strdup(o->origin ?: "callhome.audit");
        w->vkey = strdup(o->vkey ?: "");
        if (!w->origin || !w->vkey)
                return -ENOMEM;
        if (o->checkpoint_priv) {
                memcpy(w->checkpoint_priv, o->checkpoint_priv, 32);
                w->have_checkpoint_key = true;
        }
        memcpy(w->boot_id, boot_id.bytes, AUDIT_BOOT_ID_SIZE);

        /* The key is lent for the start record; it and its file become the writer's only on success. */
        w->key = key;
        r = writer_open_log(w);
        if (r < 0) {
                w->key = NULL;
                return r;
        }
        w->key_fd = key_fd;
        *ret = TAKE_PTR(w);
        return 0;
}

static int retention_enforce(AuditWriter *w);

/* The size a witness record covers (its payload as audit_witness_payload() makes it), or 0. */
static uint64_t witness_record_size(const AuditRecordFields *f) {
        json_tokener *tok = json_tokener_new();
        json_object *j = NULL, *v;
        uint64_t size = 0;

        if (!tok)
                return 0;
        j = json_tokener_parse_ex(tok, (const char *) f->payload, (int) f->payload_len);
        if (j && json_object_object_get_ex(j, "size", &v) && json_object_is_type(v, json_type_int) &&
            json_object_get_int64(v) > 0)
                size = (uint64_t) json_object_get_int64(v);
        json_object_put(j);
        json_tokener_free(tok);
        return size;
}

int audit_writer_append(AuditWriter *w, AuditRecordFields *f, uint64_t *ret_seq, uint8_t ret_hash[AUDIT_HASH_SIZE]) {
        uint8_t hash[AUDIT_HASH_SIZE], mac[AUDIT_MAC_SIZE], leaf[AUDIT_HASH_SIZE];
        size_t need, type_len = strlen(f->type), txn_len = f->txn ? strlen(f->txn) : 0;
        AuditSegmentInfo *cur;
        MerkleFrontier frontier;
        uint64_t offset, first_kept;
        int size, r;
        bool rolled = false;
        uint64_t witnessed = 0;

        if (f->kind == AUDIT_KIND_WITNESS) {
                witnessed = witness_record_size(f);
                if (witnessed == 0 || witnessed >= w->next_seq)
                        return -EINVAL;
        }
        if (type_len > AUDIT_TYPE_MAX || txn_len > AUDIT_TXN_MAX || f->meta_len > AUDIT_META_MAX ||
            f->payload_len > AUDIT_PAYLOAD_MAX)
                return -E2BIG;
        need = audit_record_size_for(type_len, txn_len, f->meta_len, f->payload_len);
        if (need > w->buf_size) {
                uint8_t *nb = realloc(w->buf, need);
                if (!nb)
                        return -ENOMEM;
                w->buf = nb;
                w->buf_size = need;
        }

        cur = &w->segments[w->n_segments - 1];
        if (cur->size + need > w->segment_size && cur->first_seq != w->next_seq) {
                /* The full segment is made durable before the next one starts. */
                r = segment_roll(w);
                if (r < 0)
                        return r;
                cur = &w->segments[w->n_segments - 1];
                rolled = true;
        }

        f->seq = w->next_seq;
        f->epoch = w->epoch;
        f->realtime_usec = now_usec(CLOCK_REALTIME);
        f->monotonic_usec = now_usec(CLOCK_MONOTONIC);
        memcpy(f->boot_id, w->boot_id, AUDIT_BOOT_ID_SIZE);
        size = audit_record_encode(f, w->buf, w->buf_size);
        if (size < 0)
                return size;
        r = audit_chain_hash(w->prev_hash, w->buf, (size_t) size - AUDIT_RECORD_TRAILER_SIZE, hash);
        if (r < 0)
                return r;
        r = audit_seal_key_mac(w->key, hash, mac);
        if (r < 0)
                return r;
        audit_record_finish(w->buf, (size_t) size, hash, mac);
        r = merkle_leaf_hash(hash, AUDIT_HASH_SIZE, leaf);
        if (r < 0)
                return r;
        /* Everything that can fail is done before the write. */
        frontier = w->frontier;
        r = merkle_frontier_append(&frontier, leaf);
        if (r < 0)
                return r;

        offset = cur->size;
        r = audit_pwrite_all(w->seg_fd, w->buf, (size_t) size, offset);
        if (r == -EFBIG && cur->first_seq != w->next_seq) {
                /* The file-size limit (RLIMIT_FSIZE): go on in a new segment, once. */
                r = ftruncate(w->seg_fd, (off_t) offset) < 0 ? -EFBIG : segment_roll(w);
                if (r >= 0) {
                        cur = &w->segments[w->n_segments - 1];
                        rolled = true;
                        offset = cur->size;
                        r = audit_pwrite_all(w->seg_fd, w->buf, (size_t) size, offset);
                }
        }
        if (r < 0) {
                /* Leave no partial record behind (if this fails, the scan at the next start cuts it). */
                if (ftruncate(w->seg_fd, (off_t) offset) < 0)
                        return r;
                return r;
        }
        if (w->buf_size > ENCODE_BUF_KEEP) {
                free(w->buf);
                w->buf = NULL;
                w->buf_size = 0;
        }
        /* From here on the record is written: nothing below fails the append. */
        w->frontier = frontier;
        cur->size += (uint64_t) size;
        w->total_size += (uint64_t) size;
        memcpy(w->prev_hash, hash, AUDIT_HASH_SIZE);
        if (f->kind == AUDIT_KIND_SEAL) {
                w->last_seal_seq = f->seq;
                w->epoch_records = 0;
        } else
                w->epoch_records++;
        w->next_seq++;
        w->dirty = true;
        /* The index is derived data, rebuilt from the segments at start: not synced. */
        if (current_index(w) >= 0)
                (void) audit_index_entry_update(w->index_fd, cur->first_seq, f->seq, hash, offset);

        if (ret_seq)
                *ret_seq = f->seq;
        if (ret_hash)
                memcpy(ret_hash, hash, AUDIT_HASH_SIZE);

        if (witnessed > 0) {
                /* records 1..witnessed may go now */
                w->witness_seq = f->seq;
                w->witness_size = witnessed;
        }
        if ((rolled || witnessed > 0) && w->retention_size > 0 && !w->in_retention) {
                first_kept = w->segments[0].first_seq;
                r = retention_enforce(w);
                if (r < 0 && w->post_error == 0)
                        w->post_error = r;
                if (w->segments[0].first_seq != first_kept)
                        (void) audit_index_prune(w->dir_fd);
        }
        return 0;
}

int audit_writer_take_error(AuditWriter *w) {
        int r = w->post_error;

        w->post_error = 0;
        return r;
}

int audit_writer_sync(AuditWriter *w) {
        if (!w->dirty)
                return 0;
        if (fdatasync(w->seg_fd) < 0)
                return negative_errno();
        w->dirty = false;
        w->synced_seq = w->next_seq - 1;
        /* Only now may the index say these records are durable (audit_log_tail_check()):
         * at most once a second, so a burst of syncs does not rewrite the same page each time. */
        if (w->index_fd >= 0 && now_usec(CLOCK_MONOTONIC) - w->marked_usec >= INDEX_MARK_USEC)
                index_mark(w);
        return 0;
}

static int append_internal_json(AuditWriter *w, AuditKind kind, const char *type, json_object *j, uint64_t *ret_seq) {
        AuditRecordFields f = { .kind = kind, .direction = AUDIT_DIRECTION_INTERNAL, .type = type };
        const char *s = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        if (!s)
                return -ENOMEM;
        f.payload = (const uint8_t *) s;
        f.payload_len = strlen(s);
        return audit_writer_append(w, &f, ret_seq, NULL);
}

static int retention_enforce(AuditWriter *w) {
        AuditSegmentHeader h;
        size_t drop = 0;
        uint64_t after = w->total_size;
        json_object *j, *fr;
        int r;
        /* Only records an outside witness covers go, and never a pending outbound one (nor
         * anything after it): segment `drop` may go if the next one starts at or before `floor`. */
        uint64_t floor = w->witness_seq != 0 ? w->witness_size + 1 : 1;

        if (w->retention_floor)
                floor = MIN(floor, w->retention_floor(w->userdata));
        /* Keep the segment being written, and the one before it. */
        while (drop + 2 < w->n_segments && after > w->retention_size && w->segments[drop + 1].first_seq <= floor) {
                after -= w->segments[drop].size;
                drop++;
        }
        if (drop == 0)
                return 0;

        /* Describe where verification starts now, in a record, before anything is removed. */
        r = segment_header_read(w, drop, &h);
        if (r < 0)
                return r;

        j = json_object_new_object();
        fr = json_object_new_array();
        if (!j || !fr) {
                json_object_put(j);
                json_object_put(fr);
                return -ENOMEM;
        }
        {
                char hex[2 * AUDIT_HASH_SIZE + 1];
                audit_hex(h.prev_hash, AUDIT_HASH_SIZE, hex);
                json_object_object_add(j, "removed_first_seq", json_object_new_int64((int64_t) w->segments[0].first_seq));
                json_object_object_add(j, "first_kept_seq", json_object_new_int64((int64_t) h.first_seq));
                json_object_object_add(j, "prev_hash", json_object_new_string(hex));
                json_object_object_add(j, "epoch", json_object_new_int64((int64_t) h.epoch));
                for (unsigned i = 0; i < h.n_frontier; i++) {
                        audit_hex(h.frontier[i], AUDIT_HASH_SIZE, hex);
                        json_object_array_add(fr, json_object_new_string(hex));
                }
                json_object_object_add(j, "frontier", fr);
                json_object_object_add(j, "checkpoint_vkey", json_object_new_string(w->vkey));
                /* the witness record that covers what goes: verification checks it */
                json_object_object_add(j, "evidence_seq", json_object_new_int64((int64_t) w->witness_seq));
                json_object_object_add(j, "witnessed_size", json_object_new_int64((int64_t) w->witness_size));
        }
        w->in_retention = true;
        r = append_internal_json(w, AUDIT_KIND_RETENTION, "audit.retention", j, NULL);
        w->in_retention = false;
        json_object_put(j);
        if (r < 0)
                return r;
        r = audit_writer_sync(w);
        if (r < 0)
                return r;

        for (size_t i = 0; i < drop; i++) {
                if (unlinkat(w->dir_fd, w->segments[i].name, 0) < 0 && errno != ENOENT)
                        return negative_errno();
                w->total_size -= w->segments[i].size;
        }
        w->old_fd = safe_close(w->old_fd);
        memmove(w->segments, w->segments + drop, (w->n_segments - drop) * sizeof(*w->segments));
        w->n_segments -= drop;
        return fsync_dir(w->dir_fd);
}

int audit_writer_seal(AuditWriter *w) {
        json_object *j = json_object_new_object();
        int r;

        if (!j)
                return -ENOMEM;
        json_object_object_add(j, "epoch", json_object_new_int64((int64_t) w->epoch));
        json_object_object_add(j, "records", json_object_new_int64((int64_t) w->epoch_records));
        r = append_internal_json(w, AUDIT_KIND_SEAL, "audit.seal", j, NULL);
        json_object_put(j);
        if (r < 0)
                return r;
        /* The seal is on disk before the key that made it is destroyed. */
        r = audit_writer_sync(w);
        if (r < 0)
                return r;
        r = audit_seal_key_evolve(w->key);
        if (r < 0)
                return r;
        w->epoch++;
        if (w->key_fd >= 0)
                return audit_key_file_write(w->key_fd, w->key);
        return 0;
}

int audit_writer_checkpoint(AuditWriter *w, bool force) {
        Checkpoint c = {};
        char note[CHECKPOINT_NOTE_MAX];
        AuditRecordFields f = { .kind = AUDIT_KIND_CHECKPOINT, .direction = AUDIT_DIRECTION_INTERNAL,
                                .type = "audit.checkpoint" };
        uint64_t seq;
        int r;

        if (!w->have_checkpoint_key)
                return -ENOKEY;
        /* Nothing new since the last checkpoint: no checkpoint of a checkpoint. */
        if (!force && w->last_checkpoint_seq + 1 == w->next_seq)
                return 0;
        if (strlen(w->origin) >= sizeof(c.origin))
                return -EINVAL;
        memcpy(c.origin, w->origin, strlen(w->origin) + 1);
        c.size = w->next_seq - 1;
        r = merkle_frontier_root(&w->frontier, c.root);
        if (r < 0)
                return r;
        r = checkpoint_sign(w->checkpoint_priv, w->origin, &c, note, sizeof(note));
        if (r < 0)
                return r;
        f.payload = (const uint8_t *) note;
        f.payload_len = strlen(note);
        r = audit_writer_append(w, &f, &seq, NULL);
        if (r < 0)
                return r;
        audit_writer_set_last_checkpoint(w, note, strlen(note), seq);
        return 1;
}

int audit_witness_payload(const char *by, uint64_t size, const uint8_t root[AUDIT_HASH_SIZE],
                          const uint8_t (*proof)[AUDIT_HASH_SIZE], unsigned n_proof, const char *const *fields,
                          char **ret) {
        char hex[2 * AUDIT_HASH_SIZE + 1];
        json_object *j, *pr;
        char *text;

        assert(by);
        assert(root);
        assert(ret);
        j = json_object_new_object();
        pr = json_object_new_array();
        if (!j || !pr) {
                json_object_put(j);
                json_object_put(pr);
                return -ENOMEM;
        }
        json_object_object_add(j, "by", json_object_new_string(by));
        json_object_object_add(j, "size", json_object_new_int64((int64_t) size));
        audit_hex(root, AUDIT_HASH_SIZE, hex);
        json_object_object_add(j, "root", json_object_new_string(hex));
        for (unsigned i = 0; i < n_proof; i++) {
                audit_hex(proof[i], AUDIT_HASH_SIZE, hex);
                json_object_array_add(pr, json_object_new_string(hex));
        }
        json_object_object_add(j, "proof", pr);
        for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2)
                json_object_object_add(j, fields[i], json_object_new_string(fields[i + 1]));
        text = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}

uint64_t audit_writer_total_size(const AuditWriter *w) {
        return w->total_size;
}

int audit_writer_root(const AuditWriter *w, uint8_t ret[AUDIT_HASH_SIZE]) {
        return merkle_frontier_root(&w->frontier, ret);
}

int audit_writer_recovery(AuditWriter *w, const char *file, uint64_t offset, uint64_t dropped, uint64_t last_good_seq) {
        json_object *j = json_object_new_object();
        int r;

        if (!j)
                return -ENOMEM;
        json_object_object_add(j, "segment", json_object_new_string(file));
        json_object_object_add(j, "offset", json_object_new_int64((int64_t) offset));
        json_object_object_add(j, "dropped_bytes", json_object_new_int64((int64_t) dropped));
        json_object_object_add(j, "last_good_seq", json_object_new_int64((int64_t) last_good_seq));
        r = append_internal_json(w, AUDIT_KIND_RECOVERY, "audit.recovery", j, NULL);
        json_object_put(j);
        if (r < 0)
                return r;
        return audit_writer_sync(w);
}

uint64_t audit_writer_next_seq(const AuditWriter *w) {
        return w->next_seq;
}

void audit_writer_head(const AuditWriter *w, uint64_t *ret_seq, uint8_t ret_hash[AUDIT_HASH_SIZE],
                       uint64_t *ret_sealed_through) {
        *ret_seq = w->next_seq - 1;
        memcpy(ret_hash, w->prev_hash, AUDIT_HASH_SIZE);
        *ret_sealed_through = w->last_seal_seq;
}

uint64_t audit_writer_epoch(const AuditWriter *w) {
        return w->epoch;
}

const char *audit_writer_last_checkpoint(const AuditWriter *w) {
        return w->last_checkpoint ?: "";
}

void audit_writer_set_last_checkpoint(AuditWriter *w, const char *note, size_t len, uint64_t seq) {
        char *c = strndup(note, len);

        if (!c)
                return;
        free(w->last_checkpoint);
        w->last_checkpoint = c;
        w->last_checkpoint_seq = seq;
}

/* The segment holding seq (by list position), its fd and its index fd. */
static int locate_segment(AuditWriter *w, uint64_t seq, size_t *ret_i, int *ret_fd, int *ret_index_fd) {
        size_t lo = 0, hi = w->n_segments;
        int r;

        if (seq == 0 || seq >= w->next_seq || w->n_segments == 0 || seq < w->segments[0].first_seq)
                return -ENOENT;
        /* the last segment whose first_seq ≤ seq */
        while (hi - lo > 1) {
                size_t mid = (lo + hi) / 2;
                if (w->segments[mid].first_seq <= seq)
                        lo = mid;
                else
                        hi = mid;
        }
        if (lo == w->n_segments - 1) {
                r = current_index(w);
                if (r < 0)
                        return r;
                *ret_fd = w->seg_fd;
                *ret_index_fd = w->index_fd;
        } else {
                /* Older segments are opened on demand; one stays open for the next read. */
                if (w->old_fd < 0 || w->old_index_fd < 0 || w->old_first != w->segments[lo].first_seq) {
                        _cleanup_close_ int fd = -EBADF, ifd = -EBADF;

                        fd = openat(w->dir_fd, w->segments[lo].name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                        if (fd < 0)
                                return negative_errno();
                        r = audit_index_open(w->dir_fd, w->segments[lo].first_seq, false, &ifd);
                        if (r < 0)
                                return r;
                        safe_close(w->old_fd);
                        safe_close(w->old_index_fd);
                        w->old_fd = TAKE_FD(fd);
                        w->old_index_fd = TAKE_FD(ifd);
                        w->old_first = w->segments[lo].first_seq;
                }
                *ret_fd = w->old_fd;
                *ret_index_fd = w->old_index_fd;
        }
        *ret_i = lo;
        return 0;
}

int audit_writer_locate(AuditWriter *w, uint64_t seq, int *ret_fd, uint64_t *ret_offset) {
        uint64_t offset;
        size_t i;
        int fd, ifd, r;

        r = locate_segment(w, seq, &i, &fd, &ifd);
        if (r < 0)
                return r;
        r = audit_index_entry_read(ifd, w->segments[i].first_seq, seq, NULL, &offset);
        if (r < 0)
                return r;
        *ret_fd = fd;
        *ret_offset = offset;
        return 0;
}

int audit_writer_base_frontier(AuditWriter *w, MerkleFrontier *ret) {
        AuditSegmentHeader h;
        int r;

        if (w->n_segments == 0 || w->segments[0].first_seq == 1) {
                merkle_frontier_init(ret);
                return 0;
        }
        r = segment_header_read(w, 0, &h);
        if (r < 0)
                return r;
        return merkle_frontier_set(ret, h.first_seq - 1, (const uint8_t (*)[AUDIT_HASH_SIZE]) h.frontier, h.n_frontier);
}

int audit_writer_leaf(uint64_t index, uint8_t ret[AUDIT_HASH_SIZE], void *userdata) {
        AuditWriter *w = userdata;
        uint8_t h[AUDIT_HASH_SIZE];
        size_t i;
        int fd, ifd, r;

        if (index + 1 >= w->next_seq)
                return -ENOENT;
        if (w->n_segments == 0 || index + 1 < w->segments[0].first_seq)
                return -ENODATA; /* a leaf of a segment that retention removed, with its index */
        r = locate_segment(w, index + 1, &i, &fd, &ifd);
        if (r < 0)
                return r;
        r = audit_index_entry_read(ifd, w->segments[i].first_seq, index + 1, h, NULL);
        if (r < 0)
                return r;
        return merkle_leaf_hash(h, AUDIT_HASH_SIZE, ret);
}
