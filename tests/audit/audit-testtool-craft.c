/* SPDX-License-Identifier: Apache-2.0 */
/* audit-testtool commands that write made-up records or bytes into a log:
 *
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
 *        their MACs are right for the key in DIR/seal.key (evolved to EPOCH) */
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

static int unhex_arg(const char *s, uint8_t *buf, size_t size, size_t *ret_len) {
        size_t n = strlen(s) / 2;

        if (strlen(s) % 2 != 0 || n > size || (n > 0 && audit_unhex(s, buf, n) < 0))
                return -EINVAL;
        *ret_len = n;
        return 0;
}

int cmd_append(int argc, char *argv[]) {
        _cleanup_close_ int dir_fd = -EBADF;
        _cleanup_(audit_writer_freep) AuditWriter *w = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        uint8_t type[AUDIT_TYPE_MAX + 1], txn[AUDIT_TXN_MAX + 1], meta[AUDIT_META_MAX];
        char value[AUDIT_META_VALUE_MAX + 1], note[CHECKPOINT_NOTE_MAX];
        size_t type_len, txn_len, value_len = 0, meta_len = 0, len = 0, allocated = 0;
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

int cmd_craft(int argc, char *argv[]) {
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
