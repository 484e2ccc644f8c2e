/* SPDX-License-Identifier: Apache-2.0 */
/* org.callhome.Audit1: the vtable and nothing else. See ipc/org.callhome.Audit1.xml. */
#include <inttypes.h>
#include <string.h>

#include "auditd-bus.h"
#include "auditd-manager.h"
#include "bus-peers.h"
#include "bus-util.h"
#include "log.h"
#include "macro.h"

#define LIST_MAX 1000U
#define LIST_SCAN_MAX 100000U
/* Record bytes one ListRecords call reads from disk, past its first record. */
#define LIST_READ_BYTES_MAX (32U << 20)
/* A reply's marshalled size: any one record fits (AUDIT_RECORD_MAX_SIZE
 * marshalled is below 16 MiB + 16 KiB), and it stays far below the bus'
 * message limit (32 MiB by default). */
#define READ_REPLY_MAX ((16U << 20) + (64U << 10))
/* A reply's header, the array's length and the trailing 't', at most. */
#define READ_REPLY_HEADER_MAX 1024U
/* Reply bytes that readers may hold unread at once: what a stalled reader
 * keeps in the bus counts against our incoming limit there (127 MiB by
 * default); past that the bus reads nothing of ours, not even append replies. */
#define READ_UNREAD_MAX (2U * READ_REPLY_MAX)
/* Leaves a first proof hashes per turn of the event loop. */
#define PROOF_LEAVES_PER_TURN 4096U
#define PROOF_WAITERS_MAX 64U
#define RECORD_SIG "(ttssssa{ss}ayay)"

static int check_reader(Manager *m, sd_bus_message *call, sd_bus_error *error) {
        return bus_check_caller(call, m->policy_uid, m->admin_gid, error);
}

static int check_writer(Manager *m, sd_bus_message *call, sd_bus_error *error) {
        return bus_check_caller(call, m->policy_uid, (gid_t) -1, error);
}

static int check_property_reader(sd_bus *bus, Manager *m, sd_bus_error *error) {
        return bus_check_property_caller(bus, m->policy_uid, m->admin_gid, error);
}

static int check_usable(Manager *m, sd_bus_error *error) {
        if (m->broken || !m->writer)
                return sd_bus_error_setf(error, AUDIT_ERROR_LOG_BROKEN, "The log is not usable: %s", strna(m->broken));
        return 0;
}

/* A reader's call on a usable log. */
static int check_readable(Manager *m, sd_bus_message *call, sd_bus_error *error) {
        int r = check_reader(m, call, error);

        return r < 0 ? r : check_usable(m, error);
}

/* Reads a{ss} into encoded metadata. */
static int read_metadata(sd_bus_message *call, uint8_t *buf, size_t size, size_t *ret_len, sd_bus_error *error) {
        const char *keys[AUDIT_META_ENTRIES_MAX], *values[AUDIT_META_ENTRIES_MAX];
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(call, 'a', "{ss}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(call, "{ss}", &keys[n], &values[n])) > 0) {
                if (++n > AUDIT_META_ENTRIES_MAX - 1 && sd_bus_message_at_end(call, false) == 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "At most %u metadata entries are allowed.", AUDIT_META_ENTRIES_MAX);
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(call);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (!audit_meta_key_valid(keys[i]))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Metadata key '%s' is not valid: 1-%u of [A-Za-z0-9._-].", keys[i],
                                                 AUDIT_META_KEY_MAX);
        r = audit_meta_encode(keys, values, n, buf, size, ret_len);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Metadata too large: values at most %u bytes, %u bytes in all.",
                                         AUDIT_META_VALUE_MAX, AUDIT_META_MAX);
        return 0;
}

static int method_append(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *type, *direction, *txn;
        const void *payload;
        size_t payload_len, meta_len = 0;
        _cleanup_free_ uint8_t *meta = NULL;
        AuditRecordFields f = { .kind = AUDIT_KIND_DATA };
        AuditDirection d;
        int r;

        r = check_writer(m, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "sss", &type, &direction, &txn);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(call, 'y', &payload, &payload_len);
        if (r < 0)
                return r;
        meta = malloc(AUDIT_META_MAX);
        if (!meta)
                return -ENOMEM;
        r = read_metadata(call, meta, AUDIT_META_MAX, &meta_len, error);
        if (r < 0)
                return r;

        if (!audit_type_valid(type, false))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Type '%s' is not valid: 1-%u of [a-z0-9._-], not starting with 'audit.'.", type,
                                         AUDIT_TYPE_MAX);
        d = audit_direction_from_string(direction);
        if (d < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Direction '%s' is not valid: outbound, inbound or internal.", direction);
        if (!audit_txn_valid(txn))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Transaction id is not valid: at most %u printable ASCII characters, no spaces.",
                                         AUDIT_TXN_MAX);
        if (d == AUDIT_DIRECTION_OUTBOUND && !*txn)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "An outbound record needs a transaction id (it enters the outbox until delivered).");
        if (payload_len > AUDIT_PAYLOAD_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Payload too large: at most %u bytes.",
                                         AUDIT_PAYLOAD_MAX);
        if (d == AUDIT_DIRECTION_OUTBOUND) {
                const OutboxEntry *e = manager_outbox_find(m, txn);
                if (e)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Transaction %s is already pending (seq %" PRIu64
                                                 "): send it again, do not record it twice.",
                                                 txn, e->seq);
        }
        f.direction = d;
        f.type = type;
        f.txn = txn;
        f.meta = meta;
        f.meta_len = meta_len;
        f.payload = payload;
        f.payload_len = payload_len;
        return manager_append(m, call, &f, false, error);
}

static int method_mark_delivered(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *txn;
        _cleanup_free_ uint8_t *meta = NULL;
        size_t meta_len = 0;
        const OutboxEntry *e;
        uint8_t ref[8];
        AuditRecordFields f = { .kind = AUDIT_KIND_DELIVERY, .direction = AUDIT_DIRECTION_INTERNAL,
                                .type = "audit.delivery" };
        int r;

        r = check_writer(m, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "s", &txn);
        if (r < 0)
                return r;
        meta = malloc(AUDIT_META_MAX);
        if (!meta)
                return -ENOMEM;
        r = read_metadata(call, meta, AUDIT_META_MAX, &meta_len, error);
        if (r < 0)
                return r;
        if (!audit_txn_valid(txn) || !*txn)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Transaction id is empty or not valid.");
        e = manager_outbox_find(m, txn);
        if (!e)
                return sd_bus_error_setf(error, AUDIT_ERROR_NOT_PENDING,
                                         "No pending outbound transaction %s (never recorded, or already delivered).", txn);
        audit_put_le64(ref, e->seq);
        f.txn = txn;
        f.payload = ref;
        f.payload_len = sizeof(ref);
        f.meta = meta;
        f.meta_len = meta_len;
        return manager_append(m, call, &f, true, error);
}

static int meta_append(const char *k, size_t kl, const char *v, size_t vl, void *userdata) {
        sd_bus_message *reply = userdata;
        char key[AUDIT_META_KEY_MAX + 1];
        _cleanup_free_ char *value = strndup(v, vl);

        if (!value)
                return -ENOMEM;
        memcpy(key, k, kl);
        key[kl] = '\0';
        return sd_bus_message_append(reply, "{ss}", key, value);
}

static int append_record(sd_bus_message *reply, const AuditRecord *rec, bool payload) {
        _cleanup_free_ char *type = strndup(rec->type, rec->type_len), *txn = strndup(rec->txn, rec->txn_len);
        int r;

        if (!type || !txn)
                return -ENOMEM;
        r = sd_bus_message_open_container(reply, 'r', "ttssssa{ss}ayay");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "ttssss", rec->seq, rec->realtime_usec, audit_kind_to_string(rec->kind),
                                  audit_direction_to_string(rec->direction), type, txn);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "{ss}");
        if (r < 0)
                return r;
        r = audit_meta_foreach(rec->meta, rec->meta_len, meta_append, reply);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', rec->payload, payload ? rec->payload_len : 0);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', rec->hash, AUDIT_HASH_SIZE);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* The marshalled size of a record in a reply, at worst alignment: what the bus
 * counts, not the payload alone. Metadata: 4 bytes encoded per entry at least,
 * 20 marshalled per entry besides key and value. */
static uint64_t record_reply_size(const AuditRecord *rec, bool payload) {
        return 7 + 8 + 8 + 4 * (3 + 4 + 1) + rec->type_len + rec->txn_len +
               strlen(audit_kind_to_string(rec->kind)) + strlen(audit_direction_to_string(rec->direction)) +
               (3 + 4 + 4) + 6 * (uint64_t) rec->meta_len + (3 + 4) + (payload ? rec->payload_len : 0) +
               (3 + 4 + AUDIT_HASH_SIZE);
}

static uint64_t reply_budget(Manager *m) {
        return MIN((uint64_t) READ_REPLY_MAX, bus_peers_reply_budget(m->peers));
}

static int refuse_unread(Manager *m, uint64_t need, sd_bus_error *error) {
        return sd_bus_error_setf(error, BUS_ERROR_LIMITS_EXCEEDED,
                                 "Replies not yet read by their callers hold %" PRIu64 " of %u bytes and this one needs %" PRIu64
                                 ": try again once they are read.",
                                 bus_peers_unread(m->peers), READ_UNREAD_MAX, need);
}

/* Whether a record of `need` marshalled bytes joins a page of `n` records that
 * holds `*size` bytes so far: 1 it does (counted), 0 the page ends before it
 * (the next page starts with it), negative with LimitsExceeded if not even the
 * first fits in what readers have left unread. One bound for every list. */
static int page_take(Manager *m, uint64_t budget, uint64_t *size, uint64_t need, uint32_t n, sd_bus_error *error) {
        if (*size + need > budget)
                return n == 0 ? refuse_unread(m, *size + need, error) : 0;
        *size += need;
        return 1;
}

static int read_record(Manager *m, uint64_t seq, uint8_t **ret_buf, AuditRecord *ret) {
        uint64_t offset;
        int fd, r;

        r = audit_writer_locate(m->writer, seq, &fd, &offset);
        if (r < 0)
                return r;
        r = audit_record_read(fd, offset, ret_buf, ret);
        if (r < 0)
                return r;
        if (ret->seq != seq) {
                free(*ret_buf);
                *ret_buf = NULL;
                return -EBADMSG;
        }
        return 0;
}

static int method_get_record(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        AuditRecord rec;
        uint64_t seq, size;
        int r;

        r = check_readable(m, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "t", &seq);
        if (r < 0)
                return r;
        r = read_record(m, seq, &buf, &rec);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "No record %" PRIu64 " (the log holds up to %" PRIu64 "; older ones may have been removed).",
                                         seq, audit_writer_next_seq(m->writer) - 1);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_IO_ERROR, "Cannot read record %" PRIu64 ": %s", seq,
                                         strerror(-r));
        size = READ_REPLY_HEADER_MAX + record_reply_size(&rec, true);
        if (size > reply_budget(m))
                return refuse_unread(m, size, error);
        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = append_record(reply, &rec, true);
        if (r < 0)
                return r;
        return bus_peers_send_reply(m->peers, reply, size);
}

typedef struct ListFilter {
        const char *type, *txn, *direction, *kind;
        uint64_t since_usec;
        int payload;
} ListFilter;

static int read_filters(sd_bus_message *call, ListFilter *f, sd_bus_error *error) {
        const char *key;
        int r;

        r = sd_bus_message_enter_container(call, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(call, 'e', "sv")) > 0) {
                r = sd_bus_message_read(call, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "type"))
                        r = sd_bus_message_read(call, "v", "s", &f->type);
                else if (streq(key, "txn"))
                        r = sd_bus_message_read(call, "v", "s", &f->txn);
                else if (streq(key, "direction"))
                        r = sd_bus_message_read(call, "v", "s", &f->direction);
                else if (streq(key, "kind"))
                        r = sd_bus_message_read(call, "v", "s", &f->kind);
                else if (streq(key, "since_usec"))
                        r = sd_bus_message_read(call, "v", "t", &f->since_usec);
                else if (streq(key, "payload"))
                        r = sd_bus_message_read(call, "v", "b", &f->payload);
                else
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Unknown filter '%s' (type, txn, direction, kind, since_usec, payload).", key);
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Filter '%s' has the wrong type.", key);
                r = sd_bus_message_exit_container(call);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(call);
}

static bool field_eq(const char *want, const char *have, size_t len) {
        return !want || (strlen(want) == len && memcmp(want, have, len) == 0);
}

static bool filter_match(const ListFilter *f, const AuditRecord *rec) {
        const char *d = audit_direction_to_string(rec->direction), *k = audit_kind_to_string(rec->kind);

        return field_eq(f->type, rec->type, rec->type_len) && field_eq(f->txn, rec->txn, rec->txn_len) &&
               field_eq(f->direction, d, strlen(d)) && field_eq(f->kind, k, strlen(k)) &&
               rec->realtime_usec >= f->since_usec;
}

static int method_list_records(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        ListFilter f = { .payload = true };
        uint64_t after, last, seq, examined = 0, read_bytes = 0, size = READ_REPLY_HEADER_MAX, budget;
        uint32_t max, n = 0;
        int r;

        r = check_readable(m, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "tu", &after, &max);
        if (r < 0)
                return r;
        r = read_filters(call, &f, error);
        if (r < 0)
                return r;
        if (max == 0 || max > LIST_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Page size must be 1..%u.", LIST_MAX);

        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', RECORD_SIG);
        if (r < 0)
                return r;
        budget = reply_budget(m);
        last = audit_writer_next_seq(m->writer) - 1;
        /* The work of one call is bounded: records examined, bytes read, bytes replied. */
        for (seq = after; seq < last && n < max && examined < LIST_SCAN_MAX && read_bytes < LIST_READ_BYTES_MAX;
             seq++, examined++) {
                _cleanup_free_ uint8_t *buf = NULL;
                AuditRecord rec;

                r = read_record(m, seq + 1, &buf, &rec);
                if (r == -ENOENT)
                        continue; /* removed by retention */
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_IO_ERROR, "Cannot read record %" PRIu64 ": %s",
                                                 seq + 1, strerror(-r));
                read_bytes += rec.size;
                if (!filter_match(&f, &rec))
                        continue;
                r = page_take(m, budget, &size, record_reply_size(&rec, f.payload), n, error);
                if (r < 0)
                        return r;
                if (r == 0)
                        break; /* not examined: the next page starts with it */
                r = append_record(reply, &rec, f.payload);
                if (r < 0)
                        return r;
                n++;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        /* Where to go on from: the last record looked at, matched or not. */
        r = sd_bus_message_append(reply, "t", seq);
        if (r < 0)
                return r;
        return bus_peers_send_reply(m->peers, reply, size);
}

/* A pending record that cannot be read is listed as such (kind "unreadable",
 * its txn id from the outbox, the error in metadata), never failing the list. */
static int append_unreadable(sd_bus_message *reply, const OutboxEntry *e, int error) {
        int r;

        r = sd_bus_message_open_container(reply, 'r', "ttssssa{ss}ayay");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "ttssssa{ss}", e->seq, UINT64_C(0), "unreadable",
                                  audit_direction_to_string(AUDIT_DIRECTION_OUTBOUND), "", e->txn, 1, "error",
                                  strerror(-error));
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', NULL, 0);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', NULL, 0);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* The marshalled size of an unreadable record in a reply, as record_reply_size(). */
static uint64_t unreadable_reply_size(const OutboxEntry *e, int error) {
        return 7 + 8 + 8 + 4 * (3 + 4 + 1) + strlen("unreadable") + strlen(audit_direction_to_string(AUDIT_DIRECTION_OUTBOUND)) +
               strlen(e->txn) + (3 + 4 + 4) + 20 + strlen("error") + strlen(strerror(-error)) + 2 * (3 + 4);
}

/* Pending records after after_seq, oldest first: at most max, and no more
 * than fit one reply and what readers have left unread (page_take()). The
 * cursor to go on from (ListPendingPage only) is 0 when nothing is left. */
static int list_pending(Manager *m, sd_bus_message *call, uint64_t after, uint32_t max, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t size = READ_REPLY_HEADER_MAX, budget, next = 0;
        size_t lo = 0, hi = m->n_outbox, i;
        uint32_t n = 0;
        int r;

        /* The outbox is in seq order: the first entry after the cursor. */
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (m->outbox[mid].seq <= after)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', RECORD_SIG);
        if (r < 0)
                return r;
        budget = reply_budget(m);
        for (i = lo; i < m->n_outbox && n < max; i++) {
                _cleanup_free_ uint8_t *buf = NULL;
                AuditRecord rec;
                int q;

                q = read_record(m, m->outbox[i].seq, &buf, &rec);
                r = page_take(m, budget, &size,
                              q < 0 ? unreadable_reply_size(&m->outbox[i], q) : record_reply_size(&rec, true), n, error);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (q < 0) {
                        log_warning_errno(q, "Cannot read pending record %" PRIu64 " (%s): %m. Listed as unreadable.",
                                          m->outbox[i].seq, m->outbox[i].txn);
                        r = append_unreadable(reply, &m->outbox[i], q);
                } else
                        r = append_record(reply, &rec, true);
                if (r < 0)
                        return r;
                n++;
        }
        if (i < m->n_outbox)
                next = m->outbox[i - 1].seq;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        if (sd_bus_message_has_signature(call, "tu")) {
                r = sd_bus_message_append(reply, "t", next);
                if (r < 0)
                        return r;
        }
        return bus_peers_send_reply(m->peers, reply, size);
}

/* ListPending (the first page, as it always was) and ListPendingPage (after_seq, max). */
static int method_list_pending(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t after = 0;
        uint32_t max = LIST_MAX;
        int r;

        r = check_readable(m, call, error);
        if (r < 0)
                return r;
        if (sd_bus_message_has_signature(call, "tu")) {
                r = sd_bus_message_read(call, "tu", &after, &max);
                if (r < 0)
                        return r;
                if (max == 0 || max > LIST_MAX)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Page size must be 1..%u.", LIST_MAX);
        }
        return list_pending(m, call, after, max, error);
}

static int method_get_checkpoint(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = check_readable(m, call, error);
        if (r < 0)
                return r;
        if (!*audit_writer_last_checkpoint(m->writer)) {
                /* None yet: make the first one now rather than leave a witness empty-handed. */
                r = audit_writer_checkpoint(m->writer, true);
                if (r >= 0)
                        r = manager_flush(m);
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_IO_ERROR, "Cannot write a checkpoint: %s", strerror(-r));
        }
        return sd_bus_reply_method_return(call, "s", audit_writer_last_checkpoint(m->writer));
}

/* Answers a GetConsistencyProof call whose leaves the block cache covers. */
static int proof_reply(Manager *m, sd_bus_message *call, uint64_t old_size, uint64_t new_size) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint8_t proof[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE];
        unsigned count = 0;
        int r;

        /* The block cache covers new_size: the proof reads at most a few blocks of leaves. */
        r = manager_consistency_proof(m, old_size, new_size, proof, &count);
        if (r == -ENODATA)
                return sd_bus_reply_method_errorf(call, SD_BUS_ERROR_INVALID_ARGS, MANAGER_REMOVED_SEGMENTS_ERROR);
        if (r < 0)
                return sd_bus_reply_method_errorf(call, SD_BUS_ERROR_IO_ERROR, "Cannot compute the proof: %s", strerror(-r));
        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "ay");
        if (r < 0)
                return r;
        for (unsigned i = 0; i < count; i++) {
                r = sd_bus_message_append_array(reply, 'y', proof[i], AUDIT_HASH_SIZE);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static uint64_t proof_leaves_cached(const Manager *m) {
        return (m->proof_blocks.n << m->proof_blocks.shift) + m->proof_blocks.open.size;
}

/* One turn of the block cache: PROOF_LEAVES_PER_TURN more leaves hashed, then
 * the calls it now covers answered. At idle priority, so appends and other
 * calls go first, and never wait for more than one turn. */
static int on_proof_turn(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        uint64_t target = 0;
        size_t kept = 0;
        int r;

        for (size_t i = 0; i < m->n_proof_waiters; i++)
                target = MAX(target, m->proof_waiters[i].new_size);
        r = merkle_blocks_extend(&m->proof_blocks, audit_writer_leaf, m->writer,
                                 MIN(target, proof_leaves_cached(m) + PROOF_LEAVES_PER_TURN));
        for (size_t i = 0; i < m->n_proof_waiters; i++) {
                ProofWaiter *w = &m->proof_waiters[i];

                if (r < 0)
                        (void) sd_bus_reply_method_errorf(w->call, SD_BUS_ERROR_IO_ERROR, "Cannot compute the proof: %s",
                                                          strerror(-r));
                else if (w->new_size <= proof_leaves_cached(m) && w->redispatch)
                        (void) sd_bus_enqueue_for_read(m->bus, w->call); /* handled again, as if just received */
                else if (w->new_size <= proof_leaves_cached(m))
                        (void) proof_reply(m, w->call, w->old_size, w->new_size);
                else {
                        m->proof_waiters[kept++] = *w;
                        continue;
                }
                sd_bus_message_unref(w->call);
        }
        m->n_proof_waiters = kept;
        return sd_event_source_set_enabled(s, kept > 0 ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
}

/* The call waits for the leaves up to new_size to be hashed, a bounded number
 * per turn of the loop (the first proof after a start hashes them all). */
static int proof_wait(Manager *m, sd_bus_message *call, uint64_t old_size, uint64_t new_size, bool redispatch,
                      sd_bus_error *error) {
        ProofWaiter *w;
        int r;

        if (m->n_proof_waiters >= PROOF_WAITERS_MAX)
                return sd_bus_error_setf(error, BUS_ERROR_LIMITS_EXCEEDED,
                                         "%u proofs are being computed; try again.", PROOF_WAITERS_MAX);
        if (!m->proof_source) {
                r = sd_event_add_defer(m->event, &m->proof_source, on_proof_turn, m);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_priority(m->proof_source, SD_EVENT_PRIORITY_IDLE);
        }
        w = realloc(m->proof_waiters, (m->n_proof_waiters + 1) * sizeof(*w));
        if (!w)
                return -ENOMEM;
        m->proof_waiters = w;
        m->proof_waiters[m->n_proof_waiters++] = (ProofWaiter) {
                .call = sd_bus_message_ref(call), .old_size = old_size, .new_size = new_size, .redispatch = redispatch };
        r = sd_event_source_set_enabled(m->proof_source, SD_EVENT_ONESHOT);
        return r < 0 ? r : 1;
}

static int method_get_consistency_proof(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t old_size, new_size, size;
        int r;

        r = check_readable(m, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "tt", &old_size, &new_size);
        if (r < 0)
                return r;
        size = audit_writer_next_seq(m->writer) - 1;
        if (old_size > new_size || new_size > size)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Need old size ≤ new size ≤ %" PRIu64 " (the tree size now).", size);
        if (new_size <= proof_leaves_cached(m) && m->n_proof_waiters == 0)
                return proof_reply(m, call, old_size, new_size);
        return proof_wait(m, call, old_size, new_size, false, error);
}

/* A witness call (its record carries a proof up to the tree size now) goes on
 * at once if the block cache lacks at most one turn's leaves; else it waits for
 * them like a GetConsistencyProof and is then dispatched again: 0 if it waits. */
static int proof_ready(Manager *m, sd_bus_message *call, sd_bus_error *error) {
        uint64_t size = audit_writer_next_seq(m->writer) - 1;
        int r;

        if (size <= proof_leaves_cached(m) + PROOF_LEAVES_PER_TURN)
                return 1;
        r = proof_wait(m, call, 0, size, true, error);
        return r < 0 ? r : 0;
}

/* policyd hands over the log's checkpoint as the server cosigned it (the cosignature line appended). */
static int method_add_cosigned_checkpoint(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *note;
        Checkpoint cp;
        int r;

        r = check_writer(m, call, error);
        if (r < 0)
                return r;
        r = check_usable(m, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "s", &note);
        if (r < 0)
                return r;
        if (!m->have_witness_key)
                return sd_bus_error_set(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                        "No witness key is configured (callhome-auditd --witness-key=): a cosignature "
                                        "cannot be checked.");
        r = checkpoint_parse_verify(note, strlen(note), &m->vkey, &cp);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Not a checkpoint of this log signed with its key %s.", m->vkey.name);
        if (checkpoint_cosignature_verify(note, strlen(note), &m->witness_key, NULL) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The checkpoint carries no valid cosignature by the witness %s.",
                                         m->witness_key.name);
        r = proof_ready(m, call, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        return manager_add_witness(m, call, "witness", cp.size, cp.root, (const char *const[]) { "checkpoint", note, NULL },
                                   error);
}

/* The customer acknowledges records 1..size with a tag the device cannot make (see checkpoint.h). */
static int method_acknowledge(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const void *root, *tag;
        size_t root_len, tag_len;
        char hex[2 * CHECKPOINT_ACK_SIZE + 1], uid_text[16];
        uint64_t size;
        uid_t uid;
        int r;

        /* Judged and named from the credentials cache, like every other call: never a bus call here. */
        r = bus_check_caller(call, (uid_t) -1, m->admin_gid, error);
        if (r < 0)
                return r;
        r = check_usable(m, error);
        if (r < 0)
                return r;
        r = bus_peers_sender_uid(m->peers, call, &uid, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "t", &size);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(call, 'y', &root, &root_len);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(call, 'y', &tag, &tag_len);
        if (r < 0)
                return r;
        if (root_len != AUDIT_HASH_SIZE || tag_len != CHECKPOINT_ACK_SIZE)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The root and the tag are %u bytes each.", AUDIT_HASH_SIZE);
        audit_hex(tag, CHECKPOINT_ACK_SIZE, hex);
        (void) snprintf(uid_text, sizeof(uid_text), "%u", (unsigned) uid);
        r = proof_ready(m, call, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        return manager_add_witness(m, call, "customer", size, root,
                                   (const char *const[]) { "tag", hex, "uid", uid_text, NULL }, error);
}

static int property_get_head(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint8_t hash[AUDIT_HASH_SIZE] = {};
        uint64_t seq = 0, sealed = 0;
        int r;

        r = check_property_reader(bus, m, error);
        if (r < 0)
                return r;
        if (m->writer)
                audit_writer_head(m->writer, &seq, hash, &sealed);
        r = sd_bus_message_open_container(reply, 'r', "tayt");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "t", seq);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', hash, AUDIT_HASH_SIZE);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "t", sealed);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int property_get_checkpoint_key(sd_bus *bus, const char *path, const char *interface, const char *property,
                                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r = check_property_reader(bus, m, error);

        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "s", strna(m->vkey_text));
}

static int property_get_pending_count(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r = check_property_reader(bus, m, error);

        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "u", (uint32_t) m->n_outbox);
}

static int property_get_broken(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r = check_property_reader(bus, m, error);

        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "s", m->broken ?: "");
}

static int property_get_last_error(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r = check_property_reader(bus, m, error);

        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "s", m->last_error ?: "");
}

static const sd_bus_vtable audit_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Head", "(tayt)", property_get_head, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PendingCount", "u", property_get_pending_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CheckpointKey", "s", property_get_checkpoint_key, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Broken", "s", property_get_broken, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("LastError", "s", property_get_last_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Append",
                                SD_BUS_ARGS("s", type, "s", direction, "s", txn_id, "ay", payload, "a{ss}", metadata),
                                SD_BUS_RESULT("t", seq, "ay", hash), method_append, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MarkDelivered", SD_BUS_ARGS("s", txn_id, "a{ss}", metadata), SD_BUS_RESULT("t", seq),
                                method_mark_delivered, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListPending", SD_BUS_NO_ARGS, SD_BUS_RESULT("a" RECORD_SIG, records),
                                method_list_pending, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListPendingPage", SD_BUS_ARGS("t", after_seq, "u", max),
                                SD_BUS_RESULT("a" RECORD_SIG, records, "t", next_after_seq), method_list_pending,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListRecords", SD_BUS_ARGS("t", after_seq, "u", max, "a{sv}", filters),
                                SD_BUS_RESULT("a" RECORD_SIG, records, "t", last_examined), method_list_records,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetRecord", SD_BUS_ARGS("t", seq), SD_BUS_RESULT(RECORD_SIG, record), method_get_record,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetCheckpoint", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", note), method_get_checkpoint,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetConsistencyProof", SD_BUS_ARGS("t", old_size, "t", new_size),
                                SD_BUS_RESULT("aay", proof), method_get_consistency_proof, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddCosignedCheckpoint", SD_BUS_ARGS("s", checkpoint), SD_BUS_RESULT("t", seq),
                                method_add_cosigned_checkpoint, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Acknowledge", SD_BUS_ARGS("t", size, "ay", root, "ay", tag), SD_BUS_RESULT("t", seq),
                                method_acknowledge, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Appended", SD_BUS_ARGS("t", seq, "s", type, "s", txn_id), 0),
        SD_BUS_VTABLE_END,
};

int manager_bus_register(Manager *m) {
        int r;

        /* Callers judged without a bus call, replies bounded by what readers read. */
        r = bus_peers_new(m->bus, AUDIT_BUS_PATH, READ_UNREAD_MAX, &m->peers);
        if (r < 0)
                return r;
        return sd_bus_add_object_vtable(m->bus, NULL, AUDIT_BUS_PATH, AUDIT_BUS_INTERFACE, audit_vtable, m);
}

void manager_bus_done(Manager *m) {
        for (size_t i = 0; i < m->n_proof_waiters; i++)
                sd_bus_message_unref(m->proof_waiters[i].call);
        free(m->proof_waiters);
        m->proof_waiters = NULL;
        m->n_proof_waiters = 0;
        m->proof_source = sd_event_source_unref(m->proof_source);
        m->peers = bus_peers_free(m->peers);
}

int manager_emit_head_changed(Manager *m) {
        return sd_bus_emit_properties_changed(m->bus, AUDIT_BUS_PATH, AUDIT_BUS_INTERFACE, "Head", "PendingCount", NULL);
}

int manager_emit_appended(Manager *m, uint64_t seq, const char *type, const char *txn) {
        return sd_bus_emit_signal(m->bus, AUDIT_BUS_PATH, AUDIT_BUS_INTERFACE, "Appended", "tss", seq, type, txn);
}
