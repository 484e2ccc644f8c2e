/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit-files.h"
#include "auditd-bus.h"
#include "auditd-manager.h"
#include "bus-util.h"
#include "confine.h"
#include "log.h"
#include "macro.h"

int manager_new(Manager **ret) {
        Manager *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        m->dir_fd = -EBADF;
        m->policy_uid = (uid_t) -1;
        m->admin_gid = (gid_t) -1;
        m->segment_size = 8U << 20;
        m->retention_size = 256U << 20;
        m->epoch_usec = 15U * 60U * 1000000U;
        m->checkpoint_usec = 60U * 60U * 1000000U;
        m->group_commit_max = 64;
        m->outbox_max = 100000;
        merkle_blocks_init(&m->proof_blocks, MERKLE_BLOCK_SHIFT_DEFAULT);
        *ret = m;
        return 0;
}

static void pending_reply_done(PendingReply *p) {
        sd_bus_message_unref(p->call);
        free(p->type);
        free(p->txn);
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_pending; i++)
                pending_reply_done(&m->pending[i]);
        free(m->pending);
        for (size_t i = 0; i < m->n_outbox; i++)
                free(m->outbox[i].txn);
        free(m->outbox);
        manager_bus_done(m);
        merkle_blocks_done(&m->proof_blocks);
        sd_event_source_unref(m->commit_source);
        sd_event_source_unref(m->seal_timer);
        sd_event_source_unref(m->checkpoint_timer);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        audit_writer_free(m->writer);
        safe_close(m->dir_fd);
        free(m->state_dir);
        free(m->vkey_text);
        free(m->broken);
        free(m->last_error);
        free(m);
        return NULL;
}

/* Room for one more entry. New outbound appends are bounded: past the bound one
 * is refused before anything is written (manager_append()). What the log already
 * holds is listed whole at start, even past a bound lowered since. */
static int outbox_reserve(Manager *m, bool bounded) {
        if (bounded && m->n_outbox >= m->outbox_max)
                return -ENOBUFS;
        if (m->n_outbox == m->outbox_allocated) {
                size_t na = m->outbox_allocated ? m->outbox_allocated * 2 : 16;
                OutboxEntry *n = realloc(m->outbox, na * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                m->outbox = n;
                m->outbox_allocated = na;
        }
        return 0;
}

/* Takes txn; cannot fail after outbox_reserve(). */
static void outbox_insert(Manager *m, uint64_t seq, char *txn) {
        assert(m->n_outbox < m->outbox_allocated);
        m->outbox[m->n_outbox++] = (OutboxEntry) { .seq = seq, .txn = txn };
}

static int outbox_add(Manager *m, uint64_t seq, const char *txn, size_t len) {
        char *t;
        int r;

        r = outbox_reserve(m, false);
        if (r < 0)
                return r;
        t = strndup(txn, len);
        if (!t)
                return -ENOMEM;
        outbox_insert(m, seq, t);
        return 0;
}

static void outbox_remove_seq(Manager *m, uint64_t seq) {
        for (size_t i = 0; i < m->n_outbox; i++)
                if (m->outbox[i].seq == seq) {
                        free(m->outbox[i].txn);
                        memmove(m->outbox + i, m->outbox + i + 1, (m->n_outbox - i - 1) * sizeof(*m->outbox));
                        m->n_outbox--;
                        /* Shrink after a long outage drained, so memory does not stay at its peak. */
                        if (m->n_outbox == 0 && m->outbox_allocated > 64) {
                                free(m->outbox);
                                m->outbox = NULL;
                                m->outbox_allocated = 0;
                        }
                        return;
                }
}

/* Retention keeps the oldest pending outbound record and everything after it. */
static uint64_t outbox_retention_floor(void *userdata) {
        Manager *m = userdata;

        /* the outbox is in log order: entries are added as records are appended, removed in place */
        return m->n_outbox > 0 ? m->outbox[0].seq : UINT64_MAX;
}

const OutboxEntry *manager_outbox_find(Manager *m, const char *txn) {
        for (size_t i = 0; i < m->n_outbox; i++)
                if (streq(m->outbox[i].txn, txn))
                        return &m->outbox[i];
        return NULL;
}

typedef struct StartScan {
        Manager *m;
        AuditIndexCursor index;
        char *checkpoint;
        uint64_t checkpoint_seq;
        /* the last good record, to hold the key file to */
        bool have_last;
        uint8_t last_kind;
        uint64_t last_epoch;
        uint8_t last_hash[AUDIT_HASH_SIZE];
        uint8_t last_mac[AUDIT_MAC_SIZE];
} StartScan;

static int on_start_record(const AuditRecord *rec, const AuditSegmentInfo *seg, uint64_t offset, void *userdata) {
        StartScan *s = userdata;
        int r;

        r = audit_index_note(&s->index, s->m->dir_fd, seg, rec, offset);
        if (r < 0)
                return r;
        s->have_last = true;
        s->last_kind = rec->kind;
        s->last_epoch = rec->epoch;
        memcpy(s->last_hash, rec->hash, AUDIT_HASH_SIZE);
        memcpy(s->last_mac, rec->mac, AUDIT_MAC_SIZE);
        if (rec->kind == AUDIT_KIND_DATA && rec->direction == AUDIT_DIRECTION_OUTBOUND && rec->txn_len > 0) {
                r = outbox_add(s->m, rec->seq, rec->txn, rec->txn_len);
                if (r < 0)
                        return r;
        } else if (rec->kind == AUDIT_KIND_DELIVERY && rec->payload_len == 8)
                outbox_remove_seq(s->m, audit_le64(rec->payload));
        else if (rec->kind == AUDIT_KIND_CHECKPOINT) {
                free(s->checkpoint);
                s->checkpoint = strndup((const char *) rec->payload, rec->payload_len);
                if (!s->checkpoint)
                        return -ENOMEM;
                s->checkpoint_seq = rec->seq;
        }
        return 0;
}

/* A segment is created as "<name>.tmp" and renamed: a stray .tmp of an existing
 * segment's name is what a crash left of an earlier attempt. */
static int remove_stray_segment_files(Manager *m) {
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        size_t n = 0;
        int r;

        r = audit_segments_list(m->dir_fd, &segs, &n);
        if (r < 0)
                return log_error_errno(r, "Cannot list %s: %m", m->state_dir);
        for (size_t i = 0; i < n; i++) {
                char name[AUDIT_FILE_NAME_MAX + 8];

                (void) snprintf(name, sizeof(name), "%s.tmp", segs[i].name);
                (void) unlinkat(m->dir_fd, name, 0);
        }
        return 0;
}

/* The newest retention record condemned the segments before first_kept and a
 * crash kept some of them: remove them now, oldest first, as the writer does. */
static int finish_retention(Manager *m, uint64_t first_kept) {
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        size_t n = 0, removed = 0;
        int r;

        r = audit_segments_list(m->dir_fd, &segs, &n);
        if (r < 0)
                return log_error_errno(r, "Cannot list %s: %m", m->state_dir);
        for (size_t i = 0; i < n && segs[i].first_seq < first_kept; i++) {
                if (unlinkat(m->dir_fd, segs[i].name, 0) < 0 && errno != ENOENT)
                        return log_error_errno(errno, "Cannot remove %s: %m", segs[i].name);
                removed++;
        }
        if (fsync(m->dir_fd) < 0)
                return log_error_errno(errno, "Cannot sync %s: %m", m->state_dir);
        log_notice("Retention: removed %zu segment(s) before seq %" PRIu64 " that an interrupted removal had left.",
                   removed, first_kept);
        return 0;
}

static void outbox_clear(Manager *m) {
        for (size_t i = 0; i < m->n_outbox; i++)
                free(m->outbox[i].txn);
        m->n_outbox = 0;
}

static void set_broken(Manager *m, const char *what) {
        free(m->broken);
        m->broken = strdup(what);
        log_error("Appends refused: %s", what);
}

static void start_scan_done(StartScan *ss) {
        audit_index_cursor_done(&ss->index);
        free(ss->checkpoint);
        ss->checkpoint = NULL;
}

/* Refuses the log (appends and reads) with a reason and what the operator does next. */
_printf_(2, 3) static void refuse_log(Manager *m, const char *fmt, ...) {
        char what[1024], msg[1536];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        (void) snprintf(msg, sizeof(msg),
                        "%s. Keep the directory as evidence, run 'callhome-audit verify --dir=%s', then move it "
                        "aside and run 'callhome-audit setup-keys' to start a new log.",
                        what, m->state_dir);
        set_broken(m, msg);
}

/* The key file against the log, before the key is used or moved on: it must
 * have made the log's last MAC (or be one epoch past the seal that ends the
 * log). A key one epoch behind is a seal whose key update a crash interrupted
 * only if the log ends with that very seal under that very key; anything
 * else is a key file rolled back or from another log. Returns 1 if the key
 * fits (and was moved on if need be), 0 if the log was refused. */
static int check_key(Manager *m, const StartScan *ss, const AuditScanResult *res, AuditSealKey *key, int key_fd) {
        uint8_t mac[AUDIT_MAC_SIZE];
        uint64_t e = audit_seal_key_epoch(key);
        int r;

        if (ss->have_last && ss->last_epoch == e) {
                r = audit_seal_key_mac(key, ss->last_hash, mac);
                if (r < 0)
                        return log_error_errno(r, "Cannot compute a MAC: %m");
                if (CRYPTO_memcmp(mac, ss->last_mac, AUDIT_MAC_SIZE) != 0) {
                        refuse_log(m, "the sealing key (epoch %" PRIu64 ") did not make the MAC of the log's last "
                                   "record: the key file was replaced or belongs to another log", e);
                        return 0;
                }
                if (e + 1 == res->epoch) {
                        /* The seal is on disk and checked; its key was not moved on: finish that. */
                        if (ss->last_kind != AUDIT_KIND_SEAL) {
                                refuse_log(m, "the log's last record is not the seal its epoch counter says");
                                return 0;
                        }
                        r = audit_seal_key_evolve(key);
                        if (r >= 0)
                                r = audit_key_file_write(key_fd, key);
                        if (r < 0)
                                return log_error_errno(r, "Cannot move the sealing key on: %m");
                        log_info("Moved the sealing key on to epoch %" PRIu64 " after an interrupted seal.", res->epoch);
                        return 1;
                }
        } else if (e + 1 == res->epoch) {
                refuse_log(m, "the sealing key is at epoch %" PRIu64 ", behind the log (epoch %" PRIu64 "), and records "
                           "were written after the seal of its epoch: the key file was rolled back", e, res->epoch);
                return 0;
        }
        if (e != res->epoch) {
                refuse_log(m, "the sealing key is at epoch %" PRIu64 " but the log is at epoch %" PRIu64
                           ": the log was cut behind a seal, or the key belongs to another log", e, res->epoch);
                return 0;
        }
        return 1;
}

int manager_open_log(Manager *m) {
        _cleanup_(audit_seal_key_freep) AuditSealKey *key = NULL;
        _cleanup_close_ int key_fd = -EBADF;
        uint8_t priv[32];
        CheckpointVerifier vkey;
        AuditScanResult res;
        AuditScanOptions o = {};
        AuditWriterOptions wo;
        StartScan ss = { .m = m, .index = AUDIT_INDEX_CURSOR_INIT };
        char why[512];
        int r;

        /* A file-size limit (RLIMIT_FSIZE) is an error to handle (EFBIG: a new
         * segment), not a signal that kills the daemon into a restart loop. */
        (void) signal(SIGXFSZ, SIG_IGN);

        m->dir_fd = open(m->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (m->dir_fd < 0)
                return log_error_errno(errno, "Cannot open the state directory %s: %m", m->state_dir);
        r = remove_stray_segment_files(m);
        if (r < 0)
                return r;

        key_fd = openat(m->dir_fd, AUDIT_KEY_FILE, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (key_fd < 0)
                return log_error_errno(errno, "Cannot open the sealing key %s/%s: %m. Run 'callhome-audit setup-keys --dir=%s' first.",
                                       m->state_dir, AUDIT_KEY_FILE, m->state_dir);
        r = audit_key_file_read(key_fd, &key);
        if (r < 0)
                return log_error_errno(r, "The sealing key %s/%s is damaged: %m", m->state_dir, AUDIT_KEY_FILE);
        r = audit_load_vkey(m->dir_fd, &vkey, &m->vkey_text);
        if (r < 0)
                return log_error_errno(r, "Cannot read %s/%s: %m", m->state_dir, CHECKPOINT_PUB_FILE);
        m->vkey = vkey;
        r = audit_load_checkpoint_priv(m->dir_fd, priv);
        if (r < 0)
                return log_error_errno(r, "Cannot read %s/%s: %m", m->state_dir, CHECKPOINT_KEY_FILE);

        o.vkey = &vkey;
        o.allow_torn_tail = true;
        o.on_record = on_start_record;
        o.userdata = &ss;
        r = audit_log_scan(m->dir_fd, &o, &res);
        if (r >= 0 && !res.broken && res.retention_leftover > 0) {
                /* Finish the removal, then read the log again as it now is. */
                r = finish_retention(m, res.retention_first_kept);
                if (r >= 0) {
                        outbox_clear(m);
                        start_scan_done(&ss);
                        ss.have_last = false;
                        r = audit_log_scan(m->dir_fd, &o, &res);
                }
        }
        audit_index_cursor_done(&ss.index);
        if (r < 0) {
                OPENSSL_cleanse(priv, sizeof(priv));
                start_scan_done(&ss);
                return log_error_errno(r, "Cannot read the log in %s: %m", m->state_dir);
        }
        if (res.broken) {
                refuse_log(m, "the log is damaged at seq %" PRIu64 " (file %s, offset %" PRIu64 "): %s. This is not a "
                           "torn write (good records may follow), so it is not repaired",
                           res.violation.seq, res.violation.file, res.violation.offset, res.violation.what);
                OPENSSL_cleanse(priv, sizeof(priv));
                start_scan_done(&ss);
                return 0;
        }

        /* Before anything is cut or moved on: the daemon's own traces (the index
         * files, the key file) must not know of more than the log holds. */
        r = audit_log_tail_check(m->dir_fd, &res, why, sizeof(why));
        if (r > 0) {
                refuse_log(m, "the log was cut: %s", why);
                r = 0;
        } else if (r == 0)
                r = check_key(m, &ss, &res, key, key_fd);
        if (r <= 0) {
                OPENSSL_cleanse(priv, sizeof(priv));
                start_scan_done(&ss);
                return r < 0 ? log_error_errno(r, "Cannot check the end of the log in %s: %m", m->state_dir) : 0;
        }

        if (res.torn) {
                _cleanup_close_ int fd = openat(m->dir_fd, res.torn_file, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0 || ftruncate(fd, (off_t) res.torn_offset) < 0 || fsync(fd) < 0) {
                        OPENSSL_cleanse(priv, sizeof(priv));
                        start_scan_done(&ss);
                        return log_error_errno(errno, "Cannot cut the torn tail of %s: %m", res.torn_file);
                }
                m->recovered_bytes = res.torn_bytes;
                log_warning("Recovery: cut a torn record of %" PRIu64 " bytes at the end of %s (offset %" PRIu64
                            "); the last good record is seq %" PRIu64 ".",
                            res.torn_bytes, res.torn_file, res.torn_offset, res.next_seq - 1);
        }

        wo = (AuditWriterOptions) {
                .segment_size = m->segment_size,
                .retention_size = m->retention_size,
                .origin = vkey.name,
                .vkey = m->vkey_text,
                .checkpoint_priv = priv,
                .retention_floor = outbox_retention_floor,
                .userdata = m,
        };
        r = audit_writer_open(m->dir_fd, &res, key, key_fd, &wo, &m->writer);
        OPENSSL_cleanse(priv, sizeof(priv));
        if (r < 0) {
                start_scan_done(&ss);
                return log_error_errno(r, "Cannot open the log for appending: %m");
        }
        /* Both are the writer's now. */
        TAKE_PTR(key);
        TAKE_FD(key_fd);
        if (ss.checkpoint)
                audit_writer_set_last_checkpoint(m->writer, ss.checkpoint, strlen(ss.checkpoint), ss.checkpoint_seq);
        start_scan_done(&ss);

        if (res.torn) {
                r = audit_writer_recovery(m->writer, res.torn_file, res.torn_offset, res.torn_bytes, res.next_seq - 1);
                if (r < 0)
                        return log_error_errno(r, "Cannot record the recovery: %m");
        }
        m->epoch_start_usec = res.epoch_start_usec;
        m->last_checkpoint_usec = res.last_checkpoint_usec;
        log_info("Log in %s: %" PRIu64 " records, epoch %" PRIu64 ", %zu pending outbound transaction(s).", m->state_dir,
                 audit_writer_next_seq(m->writer) - 1, audit_writer_epoch(m->writer), m->n_outbox);
        return 0;
}

/* An error after a record was written (a segment removal that failed) is
 * logged and shown in the LastError property, never returned as an append's
 * error: the record is there, and a client told otherwise would log it twice. */
void manager_note_writer_error(Manager *m) {
        char *e;
        int r;

        if (!m->writer)
                return;
        r = audit_writer_take_error(m->writer);
        if (r == 0)
                return;
        log_error_errno(r, "After a record was written: the oldest segments could not be removed: %m. The log keeps "
                        "growing until this is fixed.");
        if (asprintf(&e, "the oldest segments could not be removed: %s", strerror(-r)) < 0)
                return;
        free(m->last_error);
        m->last_error = e;
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, AUDIT_BUS_PATH, AUDIT_BUS_INTERFACE, "LastError", NULL);
}

static int fail_pending(Manager *m, int error) {
        for (size_t i = 0; i < m->n_pending; i++) {
                (void) sd_bus_reply_method_errorf(m->pending[i].call, SD_BUS_ERROR_IO_ERROR,
                                                  "The record could not be made durable: %s", strerror(-error));
                pending_reply_done(&m->pending[i]);
        }
        m->n_pending = 0;
        m->pending_bytes = 0;
        return error;
}

int manager_flush(Manager *m) {
        size_t n = m->n_pending;
        int r;

        if (!m->writer)
                return 0;
        r = audit_writer_sync(m->writer);
        if (r < 0) {
                log_error_errno(r, "fdatasync of the log failed: %m. Stopping: the state on disk is unknown.");
                (void) fail_pending(m, r);
                (void) sd_event_exit(m->event, r);
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                PendingReply *p = &m->pending[i];
                if (p->delivery)
                        r = sd_bus_reply_method_return(p->call, "t", p->seq);
                else {
                        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                        r = sd_bus_message_new_method_return(p->call, &reply);
                        if (r >= 0)
                                r = sd_bus_message_append(reply, "t", p->seq);
                        if (r >= 0)
                                r = sd_bus_message_append_array(reply, 'y', p->hash, AUDIT_HASH_SIZE);
                        if (r >= 0)
                                r = sd_bus_send(NULL, reply, NULL);
                }
                if (r < 0)
                        log_debug_errno(r, "Cannot reply to an append (caller gone?): %m");
                (void) manager_emit_appended(m, p->seq, p->type, p->txn);
                pending_reply_done(p);
        }
        m->n_pending = 0;
        m->pending_bytes = 0;
        if (m->pending_allocated > 256) {
                free(m->pending);
                m->pending = NULL;
                m->pending_allocated = 0;
        }
        if (n > 0)
                (void) manager_emit_head_changed(m);
        manager_note_writer_error(m);
        return 0;
}

static int on_commit(sd_event_source *s, void *userdata) {
        return manager_flush(userdata);
}

/* Payload bytes held by the calls awaiting one group commit (see manager_append()). */
#define GROUP_COMMIT_BYTES_MAX (1U << 20)

int manager_append(Manager *m, sd_bus_message *call, AuditRecordFields *f, bool delivery, sd_bus_error *error) {
        bool outbound = f->kind == AUDIT_KIND_DATA && f->direction == AUDIT_DIRECTION_OUTBOUND && f->txn && *f->txn;
        _cleanup_free_ char *txn = NULL;
        PendingReply *p;
        uint64_t seq;
        uint8_t hash[AUDIT_HASH_SIZE];
        int r;

        if (m->broken || !m->writer)
                return sd_bus_error_setf(error, AUDIT_ERROR_LOG_BROKEN, "The log does not accept records: %s",
                                         strna(m->broken));
        /* Retention removes only what a witness covers: a log no witness keeps up with grows past
         * --retention-size, and at twice that refuses new transactions (deliveries and witness
         * records still go in, and the latter let retention free space). */
        if (f->kind == AUDIT_KIND_DATA && m->retention_size > 0 &&
            audit_writer_total_size(m->writer) >= 2 * m->retention_size) {
                log_warning("The log holds %" PRIu64 " bytes, twice --retention-size, that no witness has covered: "
                            "refusing new records until the server cosigns a checkpoint or the customer acknowledges one.",
                            audit_writer_total_size(m->writer));
                return sd_bus_error_setf(error, AUDIT_ERROR_LOG_FULL,
                                         "The log is full: %" PRIu64 " bytes, twice the retention size, that no witness "
                                         "has covered yet. Let the server cosign a checkpoint, or acknowledge one "
                                         "(Acknowledge), so that old records may be removed.",
                                         audit_writer_total_size(m->writer));
        }
        /* An outbound record that the outbox could not list would never be sent
         * again after a crash: make room first, or refuse before writing. */
        if (outbound) {
                r = outbox_reserve(m, true);
                if (r == -ENOBUFS)
                        return sd_bus_error_setf(error, AUDIT_ERROR_OUTBOX_FULL,
                                                 "%zu outbound transactions await delivery (the bound is %zu): "
                                                 "record deliveries before more outbound transactions",
                                                 m->n_outbox, m->outbox_max);
                if (r < 0)
                        return r;
                txn = strdup(f->txn);
                if (!txn)
                        return -ENOMEM;
        }
        if (m->n_pending == m->pending_allocated) {
                size_t na = m->pending_allocated ? m->pending_allocated * 2 : 16;
                PendingReply *n = realloc(m->pending, na * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                m->pending = n;
                m->pending_allocated = na;
        }
        r = audit_writer_append(m->writer, f, &seq, hash);
        if (r == -EFBIG) {
                log_error_errno(r, "Cannot append a record of %zu payload bytes: it does not fit under the file-size "
                                "limit (RLIMIT_FSIZE) even in a new segment, refusing it.", f->payload_len);
                return sd_bus_error_set(error, SD_BUS_ERROR_IO_ERROR,
                                        "Cannot append to the log: the record does not fit under the file-size limit "
                                        "(RLIMIT_FSIZE) of callhome-auditd; nothing was written.");
        }
        if (r < 0) {
                log_error_errno(r, "Cannot append to the log: %m");
                return sd_bus_error_setf(error, SD_BUS_ERROR_IO_ERROR, "Cannot append to the log: %s", strerror(-r));
        }
        /* Written: whatever went wrong after that is not this append's error. */
        manager_note_writer_error(m);
        if (outbound)
                outbox_insert(m, seq, TAKE_PTR(txn));
        else if (f->kind == AUDIT_KIND_DELIVERY)
                outbox_remove_seq(m, audit_le64(f->payload));

        p = &m->pending[m->n_pending++];
        *p = (PendingReply) { .call = sd_bus_message_ref(call), .seq = seq, .delivery = delivery };
        memcpy(p->hash, hash, AUDIT_HASH_SIZE);
        p->type = strdup(f->type);
        p->txn = strdup(f->txn ?: "");

        /* Group commit: one fdatasync for every append that arrived while the
         * bus had more to read; at most group_commit_max records wait, and the
         * calls they answer (each holding its payload) at most
         * GROUP_COMMIT_BYTES_MAX: large appends are made durable one by one. */
        m->pending_bytes += f->payload_len + f->meta_len;
        if (m->n_pending >= m->group_commit_max || m->pending_bytes >= GROUP_COMMIT_BYTES_MAX) {
                r = manager_flush(m);
                if (r < 0)
                        return 1;
        } else
                (void) sd_event_source_set_enabled(m->commit_source, SD_EVENT_ONESHOT);
        return 1;
}

int manager_consistency_proof(Manager *m, uint64_t old_size, uint64_t new_size,
                              uint8_t ret_proof[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE], unsigned *ret_count) {
        int r;

        /* Only the leaves appended since the last proof are read here; the proof
         * then reads at most a few blocks of leaves and combines block roots (and,
         * after retention, the first kept segment's frontier over the removed leaves). */
        r = audit_writer_base_frontier(m->writer, &m->proof_blocks.base);
        if (r >= 0)
                r = merkle_blocks_extend(&m->proof_blocks, audit_writer_leaf, m->writer, new_size);
        if (r >= 0)
                r = merkle_consistency_proof(&m->proof_blocks, audit_writer_leaf, m->writer, old_size, new_size, ret_proof,
                                             ret_count);
        return r;
}

int manager_add_witness(Manager *m, sd_bus_message *call, const char *by, uint64_t size,
                        const uint8_t root[AUDIT_HASH_SIZE], const char *const *fields, sd_bus_error *error) {
        uint8_t proof[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE], now[AUDIT_HASH_SIZE];
        AuditRecordFields f = { .kind = AUDIT_KIND_WITNESS, .direction = AUDIT_DIRECTION_INTERNAL,
                                .type = "audit.witness" };
        _cleanup_free_ char *payload = NULL;
        unsigned count = 0;
        uint64_t tree;
        int r;

        assert(m);
        assert(by);
        assert(root);
        if (m->broken || !m->writer)
                return sd_bus_error_setf(error, AUDIT_ERROR_LOG_BROKEN, "The log does not accept records: %s",
                                         strna(m->broken));
        tree = audit_writer_next_seq(m->writer) - 1;
        if (size == 0 || size > tree)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The checkpoint covers %" PRIu64 " records; this log holds 1..%" PRIu64 ".", size,
                                         tree);
        /* The proof that the log as it is extends the witnessed checkpoint goes into the record. */
        r = manager_consistency_proof(m, size, tree, proof, &count);
        if (r == -ENODATA)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The checkpoint of size %" PRIu64 " is older than the first kept segment "
                                         "(seq %" PRIu64 "): %s",
                                         size, m->proof_blocks.base.size + 1, MANAGER_REMOVED_SEGMENTS_ERROR);
        if (r >= 0)
                r = audit_writer_root(m->writer, now);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_IO_ERROR, "Cannot prove the log extends the checkpoint: %s",
                                         strerror(-r));
        if (merkle_verify_consistency(size, tree, root, now, (const uint8_t(*)[AUDIT_HASH_SIZE]) proof, count) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The checkpoint of size %" PRIu64 " is not one this log extends "
                                         "(another log's, or this one was rewritten).",
                                         size);
        r = audit_witness_payload(by, size, root, (const uint8_t(*)[AUDIT_HASH_SIZE]) proof, count, fields, &payload);
        if (r < 0)
                return r;
        f.payload = (const uint8_t *) payload;
        f.payload_len = strlen(payload);
        log_info("Witness (%s): records 1..%" PRIu64 " are covered outside the device.", by, size);
        return manager_append(m, call, &f, true, error);
}

static int on_seal_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int r;

        if (!m->broken && m->writer) {
                r = manager_flush(m);
                if (r < 0)
                        return 0;
                r = audit_writer_seal(m->writer);
                if (r < 0) {
                        log_error_errno(r, "Cannot seal epoch %" PRIu64 ": %m. Stopping.", audit_writer_epoch(m->writer));
                        return sd_event_exit(m->event, r);
                }
                log_debug("Sealed; now in epoch %" PRIu64 ".", audit_writer_epoch(m->writer));
                (void) manager_emit_head_changed(m);
        }
        (void) sd_event_source_set_time_relative(s, m->epoch_usec);
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

static int on_checkpoint_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int r;

        if (!m->broken && m->writer) {
                r = audit_writer_checkpoint(m->writer, false);
                if (r > 0)
                        r = manager_flush(m);
                if (r > 0 || r == 0)
                        (void) manager_emit_head_changed(m);
                if (r < 0)
                        log_error_errno(r, "Cannot write a checkpoint: %m");
        }
        (void) sd_event_source_set_time_relative(s, m->checkpoint_usec);
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* The first seal (checkpoint) after a start comes when the epoch open in the
 * log (the last checkpoint) is a period old, not a period after the start: a
 * daemon restarted more often than that would otherwise never seal, never move
 * its key on, never checkpoint. With no `since` (0: no checkpoint yet), or a
 * wall clock behind it (no RTC, reset at boot), it waits a whole period. */
static uint64_t first_due(uint64_t since, uint64_t period) {
        struct timespec ts;
        uint64_t now, age;

        if (since == 0 || clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return period;
        now = (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
        if (now < since)
                return period;
        age = now - since;
        return age >= period ? 1 : period - age;
}

int manager_start(Manager *m) {
        int r;

        r = sd_event_add_defer(m->event, &m->commit_source, on_commit, m);
        if (r < 0)
                return log_error_errno(r, "Cannot add the commit source: %m");
        /* Lowest priority: runs only once the bus has nothing more to hand us. */
        (void) sd_event_source_set_priority(m->commit_source, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_enabled(m->commit_source, SD_EVENT_OFF);

        r = sd_event_add_time_relative(m->event, &m->seal_timer, CLOCK_MONOTONIC, first_due(m->epoch_start_usec, m->epoch_usec), 0, on_seal_timer,
                                       m);
        if (r < 0)
                return log_error_errno(r, "Cannot add the seal timer: %m");
        r = sd_event_add_time_relative(m->event, &m->checkpoint_timer, CLOCK_MONOTONIC,
                                       first_due(m->last_checkpoint_usec, m->checkpoint_usec), 0, on_checkpoint_timer, m);
        if (r < 0)
                return log_error_errno(r, "Cannot add the checkpoint timer: %m");

        r = manager_bus_register(m);
        if (r < 0)
                return log_error_errno(r, "Cannot register the bus objects: %m");
        return 0;
}
