/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit-files.h"
#include "auditd.h"
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

const OutboxEntry *manager_outbox_find(Manager *m, const char *txn) {
        for (size_t i = 0; i < m->n_outbox; i++)
                if (streq(m->outbox[i].txn, txn))
                        return &m->outbox[i];
        return NULL;
}

typedef struct StartScan {
        Manager *m;
        int index_fd;
        char *checkpoint;
        uint64_t checkpoint_seq;
        int error;
} StartScan;

static int on_start_record(const AuditRecord *rec, const AuditSegmentInfo *seg, uint64_t offset, void *userdata) {
        StartScan *s = userdata;
        int r;

        r = audit_index_update(s->index_fd, rec->seq, rec->hash, offset);
        if (r < 0)
                return r;
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

/* Started as root (tests, a plain init): hand the state directory to the audit
 * user, as systemd's StateDirectory= would, so it can write after the drop. */
static int chown_state_dir(Manager *m) {
        uid_t uid;
        gid_t gid;
        DIR *d;
        struct dirent *de;
        int fd, r;

        if (geteuid() != 0)
                return 0;
        r = confine_lookup_user(confine_profile_user(CONFINE_PROFILE_AUDITD), &uid, &gid);
        if (r < 0)
                return log_error_errno(r, "Cannot find the user %s: %m", confine_profile_user(CONFINE_PROFILE_AUDITD));
        if (fchown(m->dir_fd, uid, gid) < 0)
                return log_error_errno(errno, "Cannot hand %s to the audit user: %m", m->state_dir);
        fd = openat(m->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Cannot list %s: %m", m->state_dir);
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return log_error_errno(errno, "Cannot list %s: %m", m->state_dir);
        }
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && fchownat(m->dir_fd, de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = log_error_errno(errno, "Cannot hand %s/%s to the audit user: %m", m->state_dir, de->d_name);
                        closedir(d);
                        return r;
                }
        closedir(d);
        return 0;
}

static void set_broken(Manager *m, const char *what) {
        free(m->broken);
        m->broken = strdup(what);
        log_error("Appends refused: %s", what);
}

int manager_open_log(Manager *m) {
        _cleanup_(audit_seal_key_freep) AuditSealKey *key = NULL;
        _cleanup_close_ int key_fd = -EBADF, index_fd = -EBADF;
        uint8_t priv[32];
        CheckpointVerifier vkey;
        AuditScanResult res;
        AuditScanOptions o = {};
        AuditWriterOptions wo;
        StartScan ss = { .m = m, .index_fd = -EBADF };
        char msg[1024];
        int r;

        m->dir_fd = open(m->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (m->dir_fd < 0)
                return log_error_errno(errno, "Cannot open the state directory %s: %m", m->state_dir);
        r = chown_state_dir(m);
        if (r < 0)
                return r;
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
        r = audit_load_checkpoint_priv(m->dir_fd, priv);
        if (r < 0)
                return log_error_errno(r, "Cannot read %s/%s: %m", m->state_dir, CHECKPOINT_KEY_FILE);

        index_fd = openat(m->dir_fd, AUDIT_INDEX_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (index_fd < 0) {
                OPENSSL_cleanse(priv, sizeof(priv));
                return log_error_errno(errno, "Cannot open %s/%s: %m", m->state_dir, AUDIT_INDEX_FILE);
        }
        ss.index_fd = index_fd;
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
                        free(ss.checkpoint);
                        ss.checkpoint = NULL;
                        r = audit_log_scan(m->dir_fd, &o, &res);
                }
        }
        if (r < 0) {
                OPENSSL_cleanse(priv, sizeof(priv));
                free(ss.checkpoint);
                return log_error_errno(r, "Cannot read the log in %s: %m", m->state_dir);
        }
        if (res.broken) {
                (void) snprintf(msg, sizeof(msg),
                                "the log is damaged at seq %" PRIu64 " (file %s, offset %" PRIu64 "): %s. This is not a "
                                "torn write (good records may follow), so it is not repaired. Keep the directory as "
                                "evidence, run 'callhome-audit verify --dir=%s', then move it aside and run "
                                "'callhome-audit setup-keys' to start a new log.",
                                res.violation.seq, res.violation.file, res.violation.offset, res.violation.what,
                                m->state_dir);
                set_broken(m, msg);
                OPENSSL_cleanse(priv, sizeof(priv));
                free(ss.checkpoint);
                return 0;
        }

        if (res.torn) {
                _cleanup_close_ int fd = openat(m->dir_fd, res.torn_file, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0 || ftruncate(fd, (off_t) res.torn_offset) < 0 || fsync(fd) < 0) {
                        OPENSSL_cleanse(priv, sizeof(priv));
                        free(ss.checkpoint);
                        return log_error_errno(errno, "Cannot cut the torn tail of %s: %m", res.torn_file);
                }
                m->recovered_bytes = res.torn_bytes;
                log_warning("Recovery: cut a torn record of %" PRIu64 " bytes at the end of %s (offset %" PRIu64
                            "); the last good record is seq %" PRIu64 ".",
                            res.torn_bytes, res.torn_file, res.torn_offset, res.next_seq - 1);
        }

        /* Seal record on disk but the key not yet moved on: finish what the crash interrupted. */
        if (audit_seal_key_epoch(key) + 1 == res.epoch) {
                r = audit_seal_key_evolve(key);
                if (r >= 0)
                        r = audit_key_file_write(key_fd, key);
                if (r < 0) {
                        OPENSSL_cleanse(priv, sizeof(priv));
                        free(ss.checkpoint);
                        return log_error_errno(r, "Cannot move the sealing key on: %m");
                }
                log_info("Moved the sealing key on to epoch %" PRIu64 " after an interrupted seal.", res.epoch);
        }
        if (audit_seal_key_epoch(key) != res.epoch) {
                (void) snprintf(msg, sizeof(msg),
                                "the sealing key is at epoch %" PRIu64 " but the log is at epoch %" PRIu64
                                ": the log was cut behind a seal, or the key belongs to another log. Keep the "
                                "directory as evidence, run 'callhome-audit verify --dir=%s', then start a new log.",
                                audit_seal_key_epoch(key), res.epoch, m->state_dir);
                set_broken(m, msg);
                OPENSSL_cleanse(priv, sizeof(priv));
                free(ss.checkpoint);
                return 0;
        }

        wo = (AuditWriterOptions) {
                .segment_size = m->segment_size,
                .retention_size = m->retention_size,
                .origin = vkey.name,
                .vkey = m->vkey_text,
                .checkpoint_priv = priv,
        };
        r = audit_writer_open(m->dir_fd, &res, key, key_fd, &wo, &m->writer);
        OPENSSL_cleanse(priv, sizeof(priv));
        if (r < 0) {
                free(ss.checkpoint);
                return log_error_errno(r, "Cannot open the log for appending: %m");
        }
        TAKE_PTR(key);
        TAKE_FD(key_fd);
        if (ss.checkpoint)
                audit_writer_set_last_checkpoint(m->writer, ss.checkpoint, strlen(ss.checkpoint), ss.checkpoint_seq);
        free(ss.checkpoint);

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
        if (r < 0) {
                log_error_errno(r, "Cannot append to the log: %m");
                return sd_bus_error_setf(error, SD_BUS_ERROR_IO_ERROR, "Cannot append to the log: %s", strerror(-r));
        }
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

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Cannot allocate the event loop: %m");
        (void) sd_event_add_signal(m->event, NULL, SIGTERM, NULL, NULL);
        (void) sd_event_add_signal(m->event, NULL, SIGINT, NULL, NULL);

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

        r = bus_open_system_attached(m->event, &m->bus);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the system bus: %m");
        r = manager_bus_register(m);
        if (r < 0)
                return log_error_errno(r, "Cannot register the bus objects: %m");
        r = bus_request_name_strict(m->bus, AUDIT_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Cannot own %s: %m", AUDIT_BUS_NAME);
        return 0;
}
