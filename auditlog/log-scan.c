/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "log-scan-internal.h"

_printf_(5, 6) void violation(AuditScanResult *s, uint64_t seq, const char *file, uint64_t offset,
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

void seal_count_violation(AuditScanResult *s, uint64_t seq, const char *file, uint64_t off, uint64_t epoch,
                                 uint64_t counted, uint64_t held) {
        violation(s, seq, file, off,
                  "seal of epoch %" PRIu64 " counts %" PRIu64 " records, the log holds %" PRIu64
                  " (records of this epoch missing or added)",
                  epoch, counted, held);
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

/* How far a scan may evolve the key: checking a record's MAC means deriving its
 * epoch's key one epoch at a time, so the epoch number must not set the work.
 * Every epoch ends in a seal of at least AUDIT_RECORD_MIN_SIZE bytes, so the
 * epochs a log can justify are bounded by its size: the key moves at most
 * that many epochs beyond the one given, and deriving them costs less than
 * reading the bytes. (A log trimmed by retention far past the key's epoch
 * cannot be checked with that key.) */
uint64_t epoch_reach(const AuditScanOptions *o, const AuditSegmentInfo *segs, size_t n) {
        uint64_t total = 0;

        for (size_t i = 0; i < n; i++)
                total += segs[i].size;
        return o->key ? audit_seal_key_epoch(o->key) + total / AUDIT_RECORD_MIN_SIZE : 0;
}

/* The first segment's header sets where the log starts. Returns false when the
 * segment's records must not be read. */
bool start_at_first_header(ScanContext *c, const AuditSegmentInfo *seg, const AuditSegmentHeader *h) {
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
void check_continuation(ScanContext *c, const AuditSegmentInfo *seg, const AuditSegmentHeader *h) {
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
int scan_records(ScanContext *c, const AuditSegmentInfo *seg, const uint8_t *map, uint64_t size, uint64_t off,
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
void finish_scan(ScanContext *c, int dir_fd, const AuditSegmentInfo *segs, size_t n) {
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

void scan_result_init(const AuditScanOptions *o, AuditScanResult *s) {
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
