/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log-scan-internal.h"

/* Parallel verification. Every segment header carries the chain state at its
 * start, so workers scan whole segments independently, each from its own
 * header; the main thread then joins the results in log order: each header
 * must equal the state the previous segment ended in (as the sequential scan
 * checks), the first seal of each segment is counted against the records
 * before it, and the first violation in log order is the one reported, with
 * the same record, file, offset and text as the sequential scan. Results are
 * joined while later segments are still being scanned, and workers run at most
 * `window` segments ahead of the join, so memory stays bounded. */
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
int scan_parallel(int dir_fd, const AuditScanOptions *o, const AuditSegmentInfo *segs, size_t n,
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
