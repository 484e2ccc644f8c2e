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
 *   audit-testtool merkle < leaves
 *        leaf data (hex, one per line) in; roots, consistency proofs and checks out,
 *        for the test to hold against its own RFC 9162 implementation
 *
 * append and craft: see audit-testtool-craft.c; rewrite, cut-start and new-log (the
 * attacker): see audit-testtool-attack.c. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "audit-files.h"
#include "fileio.h"
#include "log-store.h"
#include "macro.h"
#include "parse-util.h"
#include "audit-testtool.h"

int die(const char *what, int r) {
        fprintf(stderr, "audit-testtool: %s: %s\n", what, strerror(r < 0 ? -r : r));
        return 2;
}

/* What an attacker who rewrites segments does with the daemon's index files (plain
 * marks, not evidence): removes them all, so the daemon builds them afresh at start. */
void remove_index_files(int dir_fd) {
        struct dirent *de;
        DIR *d;

        if (opendir_at(dir_fd, &d) < 0)
                return;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name), suffix = strlen(AUDIT_INDEX_SUFFIX);

                if (streq(de->d_name, AUDIT_INDEX_LEGACY_FILE) ||
                    (len > suffix && streq(de->d_name + len - suffix, AUDIT_INDEX_SUFFIX)))
                        (void) unlinkat(dir_fd, de->d_name, 0);
        }
        closedir(d);
}

/* Makes what was appended durable and prints the last sequence number. */
int sync_and_print(AuditWriter *w) {
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
int open_log(const char *dir, uint64_t segment_size, uint64_t retention_size, char *ret_note,
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
