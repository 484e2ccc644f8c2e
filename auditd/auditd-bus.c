/* SPDX-License-Identifier: Apache-2.0 */
/* org.callhome.Audit1: the vtable and nothing else. See ipc/org.callhome.Audit1.xml. */
#include <inttypes.h>
#include <string.h>

#include "auditd.h"
#include "bus-util.h"
#include "log.h"
#include "macro.h"

#define LIST_MAX 1000U
#define LIST_SCAN_MAX 100000U
#define LIST_REPLY_BYTES_MAX (16U << 20)
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
        uint64_t seq;
        int r;

        r = check_reader(m, call, error);
        if (r < 0)
                return r;
        r = check_usable(m, error);
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
        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = append_record(reply, &rec, true);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
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
        uint64_t after, last, seq, examined = 0, bytes = 0;
        uint32_t max, n = 0;
        int r;

        r = check_reader(m, call, error);
        if (r < 0)
                return r;
        r = check_usable(m, error);
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
        last = audit_writer_next_seq(m->writer) - 1;
        seq = after;
        while (seq < last && n < max && examined < LIST_SCAN_MAX && bytes < LIST_REPLY_BYTES_MAX) {
                _cleanup_free_ uint8_t *buf = NULL;
                AuditRecord rec;

                seq++;
                examined++;
                r = read_record(m, seq, &buf, &rec);
                if (r == -ENOENT)
                        continue; /* removed by retention */
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_IO_ERROR, "Cannot read record %" PRIu64 ": %s", seq,
                                                 strerror(-r));
                if (!filter_match(&f, &rec))
                        continue;
                r = append_record(reply, &rec, f.payload);
                if (r < 0)
                        return r;
                n++;
                bytes += rec.size;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        /* Where to go on from: the last record looked at, matched or not. */
        r = sd_bus_message_append(reply, "t", seq);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
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

/* Pending records after after_seq, oldest first, at most max and about
 * LIST_REPLY_BYTES_MAX of records (always at least one); *ret_next is the
 * cursor to go on from, 0 when nothing is left. */
static int list_pending(Manager *m, sd_bus_message *call, uint64_t after, uint32_t max) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t bytes = 0, next = 0;
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
        for (i = lo; i < m->n_outbox && n < max; i++) {
                _cleanup_free_ uint8_t *buf = NULL;
                AuditRecord rec;

                r = read_record(m, m->outbox[i].seq, &buf, &rec);
                if (r >= 0 && n > 0 && bytes + rec.size > LIST_REPLY_BYTES_MAX)
                        break;
                if (r < 0) {
                        log_warning_errno(r, "Cannot read pending record %" PRIu64 " (%s): %m. Listed as unreadable.",
                                          m->outbox[i].seq, m->outbox[i].txn);
                        r = append_unreadable(reply, &m->outbox[i], r);
                } else {
                        r = append_record(reply, &rec, true);
                        bytes += rec.size;
                }
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
        return sd_bus_send(NULL, reply, NULL);
}

/* ListPending (the first page, as it always was) and ListPendingPage (after_seq, max). */
static int method_list_pending(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t after = 0;
        uint32_t max = LIST_MAX;
        int r;

        r = check_reader(m, call, error);
        if (r < 0)
                return r;
        r = check_usable(m, error);
        if (r < 0)
                return r;
        if (sd_bus_message_has_signature(call, "tu")) {
                r = sd_bus_message_read(call, "tu", &after, &max);
                if (r < 0)
                        return r;
                if (max == 0 || max > LIST_MAX)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Page size must be 1..%u.", LIST_MAX);
        }
        return list_pending(m, call, after, max);
}

static int method_get_checkpoint(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = check_reader(m, call, error);
        if (r < 0)
                return r;
        r = check_usable(m, error);
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

static int method_get_consistency_proof(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint8_t proof[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE];
        uint64_t old_size, new_size, size;
        unsigned count = 0;
        int r;

        r = check_reader(m, call, error);
        if (r < 0)
                return r;
        r = check_usable(m, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "tt", &old_size, &new_size);
        if (r < 0)
                return r;
        size = audit_writer_next_seq(m->writer) - 1;
        if (old_size > new_size || new_size > size)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Need old size ≤ new size ≤ %" PRIu64 " (the tree size now).", size);
        r = manager_consistency_proof(m, old_size, new_size, proof, &count);
        if (r == -ENODATA)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, MANAGER_REMOVED_SEGMENTS_ERROR);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_IO_ERROR, "Cannot compute the proof: %s", strerror(-r));
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

        r = bus_check_caller(call, (uid_t) -1, m->admin_gid, error);
        if (r < 0)
                return r;
        r = check_usable(m, error);
        if (r < 0)
                return r;
        r = bus_sender_uid(call, &uid);
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
        return sd_bus_add_object_vtable(m->bus, NULL, AUDIT_BUS_PATH, AUDIT_BUS_INTERFACE, audit_vtable, m);
}

int manager_emit_head_changed(Manager *m) {
        return sd_bus_emit_properties_changed(m->bus, AUDIT_BUS_PATH, AUDIT_BUS_INTERFACE, "Head", "PendingCount", NULL);
}

int manager_emit_appended(Manager *m, uint64_t seq, const char *type, const char *txn) {
        return sd_bus_emit_signal(m->bus, AUDIT_BUS_PATH, AUDIT_BUS_INTERFACE, "Appended", "tss", seq, type, txn);
}
