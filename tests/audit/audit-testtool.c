/* SPDX-License-Identifier: Apache-2.0 */
/* Test and benchmark helper for the audit log, on the same library as the daemon:
 *
 *   audit-testtool gen [--unsynced] DIR N [PAYLOAD-SIZE [SEAL-EVERY [CHECKPOINT-EVERY [SEGMENT-SIZE [RETENTION-SIZE]]]]]
 *        append N records to the log in DIR (keys from setup-keys), as the daemon would; with a
 *        retention size and a new log, the customer acknowledges everything every 16 records
 *        (a witness record made with the first key), so that retention may remove records;
 *        --unsynced: no sync at the end, as if the records were never acknowledged
 *        (a crash may tear them: the daemon then recovers instead of refusing a cut log)
 *   audit-testtool forge DIR SEQ [seal-count]
 *        alter record SEQ (one payload letter; with seal-count, the last digit of the
 *        count a seal record gives) and recompute the chain hashes and CRCs of it and
 *        every record after it in its segment, without the sealing key: the MACs stay
 *        stale, and a later segment's header no longer continues the chain
 *   audit-testtool append DIR data|checkpoint TYPE-HEX TXN-HEX [META-KEY META-VALUE-HEX] < bytes
 *        append one record whose type, transaction id, metadata value and payload
 *        (stdin) are arbitrary bytes, with a valid chain, MAC and CRC; a checkpoint
 *        record holds a correctly signed note over the log so far, stdin appended to it
 *   audit-testtool craft DIR magic-tail BYTES
 *        append to the last segment a torn record followed by BYTES of record
 *        headers, one every 8 bytes, each claiming to reach the end of the file
 *   audit-testtool craft DIR far-epoch EPOCH RECORDS [mac]
 *        write DIR's only segment as a log trimmed by retention that starts in EPOCH,
 *        RECORDS records of 200 payload bytes with a valid chain and CRCs; with mac
 *        their MACs are right for the key in DIR/seal.key (evolved to EPOCH)
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
 *        … or replaces the whole log by one that starts at FIRST-SEQ in the current epoch
 *   audit-testtool merkle < leaves
 *        leaf data (hex, one per line) in; roots, consistency proofs and checks out,
 *        for the test to hold against its own RFC 9162 implementation */
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

static int die(const char *what, int r) {
        fprintf(stderr, "audit-testtool: %s: %s\n", what, strerror(r < 0 ? -r : r));
        return 2;
}

/* What an attacker who rewrites segments does with the daemon's index files (plain
 * marks, not evidence): removes them all, so the daemon builds them afresh at start. */
static void remove_index_files(int dir_fd) {
        int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct dirent *de;
        DIR *d;

        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return;
        }
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name), suffix = strlen(AUDIT_INDEX_SUFFIX);

                if (streq(de->d_name, AUDIT_INDEX_LEGACY_FILE) ||
                    (len > suffix && streq(de->d_name + len - suffix, AUDIT_INDEX_SUFFIX)))
                        (void) unlinkat(dir_fd, de->d_name, 0);
        }
        closedir(d);
}

/* Makes what was appended durable and prints the last sequence number. */
static int sync_and_print(AuditWriter *w) {
        int r = audit_writer_sync(w);

        if (r < 0)
                return die("sync", r);
        printf("%" PRIu64 "\n", audit_writer_next_seq(w) - 1);
        return 0;
}

/* Opens the log in dir for appending, as the daemon does at start; with ret_note,
 * also signs a checkpoint note over the records so far (for a record appended next).
 * With ret_ack_key, a log with retention in epoch 0 also gives the customer's
 * acknowledgement key, and *ret_ack names the log's origin (its origin
 * stays empty otherwise). The writer uses *ret_dir_fd, which the caller closes after freeing it. */
static int open_log(const char *dir, uint64_t segment_size, uint64_t retention_size, char *ret_note,
                    uint8_t *ret_ack_key, Checkpoint *ret_ack, int *ret_dir_fd, AuditWriter **ret) {
        _cleanup_close_ int dir_fd = -EBADF;
        _cleanup_free_ char *vkey_text = NULL;
        AuditSealKey *key = NULL;
        CheckpointVerifier vkey;
        AuditScanResult res;
        AuditScanOptions o = {};
        uint8_t priv[32];
        int key_fd, r;

        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return die(dir, errno);
        key_fd = openat(dir_fd, AUDIT_KEY_FILE, O_RDWR | O_CLOEXEC);
        if (key_fd < 0)
                return die("seal.key", errno);
        r = audit_key_file_read(key_fd, &key);
        if (r < 0)
                return die("seal.key", r);
        r = audit_load_vkey(dir_fd, &vkey, &vkey_text);
        if (r < 0)
                return die("checkpoint.pub", r);
        r = audit_load_checkpoint_priv(dir_fd, priv);
        if (r < 0)
                return die("checkpoint.key", r);
        if (ret_ack_key && retention_size > 0 && audit_seal_key_epoch(key) == 0) {
                uint8_t k0[AUDIT_KEY_SIZE];
                audit_seal_key_raw(key, k0);
                r = checkpoint_ack_key(k0, ret_ack_key);
                OPENSSL_cleanse(k0, sizeof(k0));
                if (r < 0)
                        return die("ack key", r);
                memcpy(ret_ack->origin, vkey.name, sizeof(ret_ack->origin));
        }
        o.vkey = &vkey;
        r = audit_log_scan(dir_fd, &o, &res);
        if (r < 0 || res.broken)
                return die("scan", r < 0 ? r : EBADMSG);
        if (ret_note) {
                Checkpoint c = { .size = res.next_seq - 1 };
                memcpy(c.origin, vkey.name, sizeof(c.origin));
                if (merkle_frontier_root(&res.frontier, c.root) < 0 ||
                    checkpoint_sign(priv, vkey.name, &c, ret_note, CHECKPOINT_NOTE_MAX) < 0)
                        return die("sign", EIO);
        }
        AuditWriterOptions wo = { .segment_size = segment_size, .retention_size = retention_size, .origin = vkey.name,
                                  .vkey = vkey_text, .checkpoint_priv = priv };
        r = audit_writer_open(dir_fd, &res, key, key_fd, &wo, ret);
        OPENSSL_cleanse(priv, sizeof(priv));
        if (r < 0) {
                /* Still ours on failure. */
                audit_seal_key_free(key);
                safe_close(key_fd);
                return die("open", r);
        }
        *ret_dir_fd = TAKE_FD(dir_fd);
        return 0;
}

static int cmd_gen(int argc, char *argv[]) {
        uint64_t n, payload_size = 200, seal_every = 0, ckpt_every = 0, segment_size = 8U << 20, retention_size = 0;
        _cleanup_close_ int dir_fd = -EBADF;
        _cleanup_free_ uint8_t *payload = NULL;
        _cleanup_(audit_writer_freep) AuditWriter *w = NULL;
        uint8_t ack_key[CHECKPOINT_ACK_SIZE];
        Checkpoint ack = {};
        bool sync = true;
        int r;

        if (argc > 0 && streq(argv[0], "--unsynced")) {
                sync = false;
                argc--;
                argv++;
        }
        if (argc < 2 || safe_atou64(argv[1], &n) < 0 || (argc > 2 && safe_atou64(argv[2], &payload_size) < 0) ||
            (argc > 3 && safe_atou64(argv[3], &seal_every) < 0) || (argc > 4 && safe_atou64(argv[4], &ckpt_every) < 0) ||
            (argc > 5 && parse_size(argv[5], &segment_size) < 0) || (argc > 6 && parse_size(argv[6], &retention_size) < 0) ||
            payload_size > AUDIT_PAYLOAD_MAX)
                return fprintf(stderr, "usage: gen [--unsynced] DIR N [PAYLOAD-SIZE [SEAL-EVERY [CHECKPOINT-EVERY [SEGMENT-SIZE "
                                       "[RETENTION-SIZE]]]]]\n"), 2;
        r = open_log(argv[0], segment_size, retention_size, NULL, ack_key, &ack, &dir_fd, &w);
        if (r != 0)
                return r;

        payload = malloc(payload_size + 1);
        if (!payload)
                return die("malloc", ENOMEM);
        for (uint64_t i = 0; i < n; i++) {
                char txn[64], type[32];
                const char *keys[] = { "attempt" }, *values[] = { "1" };
                uint8_t meta[64];
                size_t meta_len = 0;
                AuditRecordFields f = { .kind = AUDIT_KIND_DATA };
                uint64_t seq = audit_writer_next_seq(w);

                /* Printable payloads, distinct per record (so a journal cannot
                 * deduplicate them), text like the SOAP bodies the log holds. */
                uint64_t x = seq * 0x9e3779b97f4a7c15ULL + 1;
                for (uint64_t j = 0; j < payload_size; j++) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        payload[j] = (uint8_t) ('a' + (char) (x % 26));
                }
                (void) snprintf(txn, sizeof(txn), "SN1234-%" PRIu64, seq);
                (void) snprintf(type, sizeof(type), "%s", i % 3 == 0 ? "meter-reads" : i % 3 == 1 ? "supplies" : "check-in");
                (void) audit_meta_encode(keys, values, 1, meta, sizeof(meta), &meta_len);
                f.direction = i % 2 == 0 ? AUDIT_DIRECTION_OUTBOUND : AUDIT_DIRECTION_INBOUND;
                f.type = type;
                f.txn = txn;
                f.meta = meta;
                f.meta_len = meta_len;
                f.payload = payload;
                f.payload_len = payload_size;
                r = audit_writer_append(w, &f, NULL, NULL);
                if (r < 0)
                        return die("append", r);
                if (seal_every && (i + 1) % seal_every == 0) {
                        r = audit_writer_seal(w);
                        if (r < 0)
                                return die("seal", r);
                }
                if (ckpt_every && (i + 1) % ckpt_every == 0) {
                        r = audit_writer_checkpoint(w, false);
                        if (r < 0)
                                return die("checkpoint", r);
                }
                if (ack.origin[0] && (i + 1) % 16 == 0) {
                        Checkpoint c = ack;
                        uint8_t tag[CHECKPOINT_ACK_SIZE];
                        char hex[2 * CHECKPOINT_ACK_SIZE + 1];
                        _cleanup_free_ char *text = NULL;

                        c.size = audit_writer_next_seq(w) - 1;
                        r = audit_writer_root(w, c.root);
                        if (r >= 0)
                                r = checkpoint_ack_tag(ack_key, &c, tag);
                        if (r < 0)
                                return die("acknowledge", r);
                        audit_hex(tag, sizeof(tag), hex);
                        r = audit_witness_payload("customer", c.size, c.root, NULL, 0,
                                                  (const char *const[]) { "tag", hex, NULL }, &text);
                        if (r >= 0) {
                                AuditRecordFields wf = { .kind = AUDIT_KIND_WITNESS, .direction = AUDIT_DIRECTION_INTERNAL,
                                                         .type = "audit.witness", .payload = (const uint8_t *) text,
                                                         .payload_len = strlen(text) };
                                r = audit_writer_append(w, &wf, NULL, NULL);
                        }
                        if (r < 0)
                                return die("acknowledge", r);
                }
        }
        if (!sync) {
                printf("%" PRIu64 "\n", audit_writer_next_seq(w) - 1);
                return 0;
        }
        return sync_and_print(w);
}

/* Alters record seq in buf (a whole segment); returns 1 if it is there. */
static int forge_segment(uint8_t *buf, size_t size, uint64_t seq, bool seal_count) {
        AuditSegmentHeader h;
        uint8_t prev[AUDIT_HASH_SIZE];
        bool found = false;
        uint64_t off;
        int r;

        if (audit_segment_header_parse(buf, size, &h, NULL) != AUDIT_PARSE_OK)
                return -EBADMSG;
        memcpy(prev, h.prev_hash, sizeof(prev));
        for (off = h.header_size; off < size;) {
                AuditRecord rec;
                uint8_t *p = buf + off;

                if (audit_record_parse(p, size - off, true, &rec, NULL) != AUDIT_PARSE_OK)
                        return -EBADMSG;
                if (rec.seq == seq) {
                        uint8_t *payload = (uint8_t *) rec.payload;
                        if (rec.payload_len == 0)
                                return -EINVAL;
                        if (seal_count) {
                                /* {"epoch":E,"records":N}: the last digit of N, same length */
                                const char *key = "\"records\":";
                                size_t i, kl = strlen(key);
                                if (rec.kind != AUDIT_KIND_SEAL)
                                        return -EINVAL;
                                for (i = 0; i + kl < rec.payload_len && memcmp(payload + i, key, kl) != 0; i++)
                                        ;
                                if (i + kl >= rec.payload_len)
                                        return -EINVAL;
                                for (i += kl; i + 1 < rec.payload_len && payload[i + 1] >= '0' && payload[i + 1] <= '9'; i++)
                                        ;
                                if (payload[i] < '0' || payload[i] > '9')
                                        return -EINVAL;
                                payload[i] = payload[i] == '9' ? '0' : (uint8_t) (payload[i] + 1);
                        } else
                                payload[0] ^= 0x01; /* a plausible change: one letter of the payload */
                        found = true;
                }
                if (found) {
                        uint8_t hash[AUDIT_HASH_SIZE], mac[AUDIT_MAC_SIZE];
                        memcpy(mac, rec.mac, sizeof(mac)); /* no key: the old MAC stays */
                        r = audit_chain_hash(prev, rec.hashed, rec.hashed_len, hash);
                        if (r < 0)
                                return r;
                        audit_record_finish(p, rec.size, hash, mac);
                        memcpy(prev, hash, sizeof(prev));
                } else
                        memcpy(prev, rec.hash, sizeof(prev));
                off += rec.size;
        }
        return found;
}

static int cmd_forge(int argc, char *argv[]) {
        _cleanup_close_ int dir_fd = -EBADF;
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        bool seal_count = false;
        uint64_t seq;
        size_t n = 0;
        int r;

        if (argc < 2 || argc > 3 || safe_atou64(argv[1], &seq) < 0 || (argc == 3 && !streq(argv[2], "seal-count")))
                return fprintf(stderr, "usage: forge DIR SEQ [seal-count]\n"), 2;
        seal_count = argc == 3;
        dir_fd = open(argv[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return die(argv[0], errno);
        r = audit_segments_list(dir_fd, &segs, &n);
        if (r < 0 || n == 0)
                return die("segments", r < 0 ? r : ENOENT);
        for (size_t i = n; i-- > 0;) {
                _cleanup_close_ int fd = -EBADF;
                _cleanup_free_ uint8_t *buf = NULL;
                struct stat st;

                if (segs[i].first_seq > seq)
                        continue;
                fd = openat(dir_fd, segs[i].name, O_RDWR | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st) < 0)
                        return die(segs[i].name, errno);
                buf = malloc((size_t) st.st_size);
                if (!buf || pread(fd, buf, (size_t) st.st_size, 0) != st.st_size)
                        return die("read", EIO);
                r = forge_segment(buf, (size_t) st.st_size, seq, seal_count);
                if (r < 0)
                        return die("forge", r);
                if (r == 0)
                        break;
                if (pwrite(fd, buf, (size_t) st.st_size, 0) != st.st_size)
                        return die("write", EIO);
                return 0;
        }
        return die("no such record", ENOENT);
}

static int unhex_arg(const char *s, uint8_t *buf, size_t size, size_t *ret_len) {
        size_t n = strlen(s) / 2;

        if (strlen(s) % 2 != 0 || n > size || (n > 0 && audit_unhex(s, buf, n) < 0))
                return -EINVAL;
        *ret_len = n;
        return 0;
}

static int cmd_append(int argc, char *argv[]) {
        _cleanup_close_ int dir_fd = -EBADF;
        _cleanup_(audit_writer_freep) AuditWriter *w = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        uint8_t type[AUDIT_TYPE_MAX + 1], txn[AUDIT_TXN_MAX + 1], meta[AUDIT_META_MAX];
        char value[AUDIT_META_VALUE_MAX + 1], note[CHECKPOINT_NOTE_MAX];
        size_t type_len, txn_len, value_len, meta_len = 0, len = 0, allocated = 0;
        bool checkpoint;
        int r;

        if ((argc != 4 && argc != 6) || (!streq(argv[1], "data") && !streq(argv[1], "checkpoint")) ||
            unhex_arg(argv[2], type, AUDIT_TYPE_MAX, &type_len) < 0 || unhex_arg(argv[3], txn, AUDIT_TXN_MAX, &txn_len) < 0 ||
            (argc == 6 && unhex_arg(argv[5], (uint8_t *) value, AUDIT_META_VALUE_MAX, &value_len) < 0))
                return fprintf(stderr, "usage: append DIR data|checkpoint TYPE-HEX TXN-HEX [META-KEY META-VALUE-HEX]\n"), 2;
        checkpoint = streq(argv[1], "checkpoint");
        type[type_len] = txn[txn_len] = 0;
        if (strlen((char *) type) != type_len || strlen((char *) txn) != txn_len)
                return fprintf(stderr, "append: no NUL in a type or transaction id\n"), 2;
        r = open_log(argv[0], 8U << 20, 0, checkpoint ? note : NULL, NULL, NULL, &dir_fd, &w);
        if (r != 0)
                return r;
        if (checkpoint) {
                len = strlen(note);
                payload = (uint8_t *) strdup(note);
                if (!payload)
                        return die("malloc", ENOMEM);
                allocated = len + 1;
        }
        for (;;) {
                ssize_t n;
                if (len == allocated) {
                        uint8_t *np = realloc(payload, allocated ? 2 * allocated : 4096);
                        if (!np)
                                return die("malloc", ENOMEM);
                        payload = np;
                        allocated = allocated ? 2 * allocated : 4096;
                }
                n = read(STDIN_FILENO, payload + len, allocated - len);
                if (n < 0)
                        return die("stdin", errno);
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (argc == 6) {
                const char *keys[] = { argv[4] }, *values[] = { value };
                value[value_len] = '\0';
                r = audit_meta_encode(keys, values, 1, meta, sizeof(meta), &meta_len);
                if (r < 0)
                        return die("metadata", r);
        }
        AuditRecordFields f = { .kind = checkpoint ? AUDIT_KIND_CHECKPOINT : AUDIT_KIND_DATA,
                                .direction = checkpoint ? AUDIT_DIRECTION_INTERNAL : AUDIT_DIRECTION_INBOUND,
                                .type = (const char *) type, .txn = txn_len ? (const char *) txn : NULL,
                                .meta = meta, .meta_len = meta_len, .payload = payload, .payload_len = len };
        r = audit_writer_append(w, &f, NULL, NULL);
        if (r < 0)
                return die("append", r);
        r = audit_writer_sync(w);
        if (r < 0)
                return die("sync", r);
        return 0;
}

static int write_at_end(int fd, const uint8_t *buf, size_t len) {
        if (lseek(fd, 0, SEEK_END) < 0 || write(fd, buf, len) != (ssize_t) len)
                return -EIO;
        return 0;
}

static int craft_magic_tail(int dir_fd, uint64_t bytes) {
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0;
        int r;

        bytes = bytes / 8 * 8;
        r = audit_segments_list(dir_fd, &segs, &n);
        if (r < 0 || n == 0)
                return die("segments", r < 0 ? r : ENOENT);
        fd = openat(dir_fd, segs[n - 1].name, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return die(segs[n - 1].name, errno);
        buf = calloc(1, bytes + 8);
        if (!buf)
                return die("malloc", ENOMEM);
        /* The torn record claims more than the file holds; every header after it fits exactly. */
        for (uint64_t p = 0; p + 8 <= bytes + 8; p += 8) {
                uint64_t claim = p == 0 ? bytes + 16 : MIN(bytes + 8 - p, (uint64_t) AUDIT_RECORD_MAX_SIZE / 8 * 8);
                memcpy(buf + p, AUDIT_RECORD_MAGIC, 4);
                audit_put_le32(buf + p + 4, (uint32_t) MAX(claim, (uint64_t) AUDIT_RECORD_MIN_SIZE));
        }
        if (write_at_end(fd, buf, bytes + 8) < 0)
                return die("write", EIO);
        return 0;
}

static int craft_far_epoch(int dir_fd, uint64_t epoch, uint64_t n, bool mac) {
        _cleanup_(audit_seal_key_freep) AuditSealKey *key = NULL;
        _cleanup_close_ int fd = -EBADF, key_fd = -EBADF;
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        AuditSegmentHeader h = { .first_seq = epoch + 2, .epoch = epoch };
        uint8_t buf[AUDIT_SEGMENT_HEADER_MAX > 1024 ? AUDIT_SEGMENT_HEADER_MAX : 1024], payload[200];
        uint8_t prev[AUDIT_HASH_SIZE] = {}, mac_bytes[AUDIT_MAC_SIZE] = {};
        char name[AUDIT_FILE_NAME_MAX];
        size_t nsegs = 0;
        int r;

        if (mac) {
                key_fd = openat(dir_fd, AUDIT_KEY_FILE, O_RDONLY | O_CLOEXEC);
                if (key_fd < 0 || audit_key_file_read(key_fd, &key) < 0 || audit_seal_key_evolve_to(key, epoch) < 0)
                        return die("seal.key", EINVAL);
        }
        r = audit_segments_list(dir_fd, &segs, &nsegs);
        if (r < 0)
                return die("segments", r);
        for (size_t i = 0; i < nsegs; i++)
                (void) unlinkat(dir_fd, segs[i].name, 0);
        remove_index_files(dir_fd);
        h.n_frontier = (uint32_t) __builtin_popcountll(h.first_seq - 1);
        memset(h.frontier, 0x5a, sizeof(h.frontier));
        audit_segment_name(h.first_seq, name);
        fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0)
                return die(name, errno);
        r = audit_segment_header_encode(&h, buf, sizeof(buf));
        if (r < 0 || write_at_end(fd, buf, (size_t) r) < 0)
                return die("header", r < 0 ? r : EIO);
        memset(payload, 'x', sizeof(payload));
        for (uint64_t i = 0; i < n; i++) {
                AuditRecordFields f = { .seq = h.first_seq + i, .realtime_usec = 1700000000000000ULL + i, .epoch = epoch,
                                        .kind = AUDIT_KIND_DATA, .direction = AUDIT_DIRECTION_OUTBOUND,
                                        .type = "meter-reads", .txn = "SN1", .payload = payload,
                                        .payload_len = sizeof(payload) };
                int size = audit_record_encode(&f, buf, sizeof(buf));

                if (size < 0)
                        return die("encode", size);
                r = audit_chain_hash(prev, buf, (size_t) size - AUDIT_RECORD_TRAILER_SIZE, prev);
                if (r < 0 || (key && audit_seal_key_mac(key, prev, mac_bytes) < 0))
                        return die("hash", EIO);
                audit_record_finish(buf, (size_t) size, prev, mac_bytes);
                if (write_at_end(fd, buf, (size_t) size) < 0)
                        return die("write", EIO);
        }
        return 0;
}

static int cmd_craft(int argc, char *argv[]) {
        _cleanup_close_ int dir_fd = -EBADF;
        uint64_t a, b = 0;

        if (argc < 3 || safe_atou64(argv[2], &a) < 0 ||
            !((streq(argv[1], "magic-tail") && argc == 3) ||
              (streq(argv[1], "far-epoch") && (argc == 4 || (argc == 5 && streq(argv[4], "mac"))) &&
               safe_atou64(argv[3], &b) >= 0)))
                return fprintf(stderr, "usage: craft DIR magic-tail BYTES | craft DIR far-epoch EPOCH RECORDS [mac]\n"), 2;
        dir_fd = open(argv[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return die(argv[0], errno);
        if (streq(argv[1], "magic-tail"))
                return craft_magic_tail(dir_fd, a);
        return craft_far_epoch(dir_fd, a, b, argc == 5);
}

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

static int cmd_rewrite(int argc, char *argv[]) {
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

static int cmd_cut_start(int argc, char *argv[]) {
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

static int cmd_new_log(int argc, char *argv[]) {
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

static int leaf_from_array(uint64_t index, uint8_t ret[AUDIT_HASH_SIZE], void *userdata) {
        uint8_t (*leaves)[AUDIT_HASH_SIZE] = userdata;
        memcpy(ret, leaves[index], AUDIT_HASH_SIZE);
        return 0;
}

static void print_hex(const uint8_t *p, size_t n) {
        char hex[2 * AUDIT_HASH_SIZE + 1];
        audit_hex(p, n, hex);
        fputs(hex, stdout);
}

static int cmd_merkle(void) {
        static uint8_t leaves[256][AUDIT_HASH_SIZE];
        _cleanup_(merkle_blocks_done) MerkleBlocks blocks;
        MerkleFrontier f;
        char line[256];
        uint64_t n = 0;
        uint8_t root[AUDIT_HASH_SIZE];

        merkle_blocks_init(&blocks, 2);
        merkle_frontier_init(&f);
        print_hex((merkle_frontier_root(&f, root), root), AUDIT_HASH_SIZE);
        printf(" root 0\n");
        while (fgets(line, sizeof(line), stdin) && n < 256) {
                uint8_t data[AUDIT_HASH_SIZE];
                line[strcspn(line, "\n")] = '\0';
                if (audit_unhex(line, data, sizeof(data)) < 0)
                        return die("leaf", EINVAL);
                if (merkle_leaf_hash(data, sizeof(data), leaves[n]) < 0 || merkle_frontier_append(&f, leaves[n]) < 0)
                        return die("append", EIO);
                n++;
                (void) merkle_frontier_root(&f, root);
                print_hex(root, AUDIT_HASH_SIZE);
                printf(" root %" PRIu64 "\n", n);
        }
        for (uint64_t b = 1; b <= n; b++)
                for (uint64_t a = 1; a <= b; a++) {
                        uint8_t proof[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE], ra[AUDIT_HASH_SIZE], rb[AUDIT_HASH_SIZE];
                        unsigned count = 0;
                        int ok, bad = 1;

                        uint8_t cproof[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE];
                        unsigned ccount = 0;

                        /* The same proof from block roots of 4 leaves, cached over the first b leaves only. */
                        merkle_blocks_done(&blocks);
                        if (merkle_blocks_extend(&blocks, leaf_from_array, leaves, b) < 0 ||
                            merkle_consistency_proof(&blocks, leaf_from_array, leaves, a, b, cproof, &ccount) < 0)
                                return die("cached proof", EIO);
                        if (merkle_consistency_proof(NULL, leaf_from_array, leaves, a, b, proof, &count) < 0 ||
                            merkle_range_hash(leaf_from_array, leaves, 0, a, ra) < 0 ||
                            merkle_range_hash(leaf_from_array, leaves, 0, b, rb) < 0)
                                return die("proof", EIO);
                        ok = merkle_verify_consistency(a, b, ra, rb, (const uint8_t(*)[AUDIT_HASH_SIZE]) proof, count) == 0;
                        /* Every altered proof must be refused. */
                        for (unsigned i = 0; i < count; i++) {
                                proof[i][i % AUDIT_HASH_SIZE] ^= 0x80;
                                if (merkle_verify_consistency(a, b, ra, rb, (const uint8_t(*)[AUDIT_HASH_SIZE]) proof, count) == 0)
                                        bad = 0;
                                proof[i][i % AUDIT_HASH_SIZE] ^= 0x80;
                        }
                        printf("proof %" PRIu64 " %" PRIu64 " %s %s %s", a, b, ok ? "ok" : "FAILED",
                               bad ? "rejects-altered" : "ACCEPTS-ALTERED",
                               ccount == count && memcmp(cproof, proof, count * AUDIT_HASH_SIZE) == 0 ? "cached-same"
                                                                                                    : "CACHED-DIFFERS");
                        for (unsigned i = 0; i < count; i++) {
                                putchar(' ');
                                print_hex(proof[i], AUDIT_HASH_SIZE);
                        }
                        putchar('\n');
                }
        return 0;
}

int main(int argc, char *argv[]) {
        if (argc >= 3 && streq(argv[1], "gen"))
                return cmd_gen(argc - 2, argv + 2);
        if (argc >= 3 && streq(argv[1], "forge"))
                return cmd_forge(argc - 2, argv + 2);
        if (argc >= 3 && streq(argv[1], "craft"))
                return cmd_craft(argc - 2, argv + 2);
        if (argc >= 3 && streq(argv[1], "append"))
                return cmd_append(argc - 2, argv + 2);
        if (argc >= 3 && streq(argv[1], "rewrite"))
                return cmd_rewrite(argc - 2, argv + 2);
        if (argc >= 3 && streq(argv[1], "cut-start"))
                return cmd_cut_start(argc - 2, argv + 2);
        if (argc >= 3 && streq(argv[1], "new-log"))
                return cmd_new_log(argc - 2, argv + 2);
        if (argc == 2 && streq(argv[1], "merkle"))
                return cmd_merkle();
        fprintf(stderr, "usage: audit-testtool gen|forge|append|craft|rewrite|cut-start|new-log|merkle ...\n");
        return 2;
}
