/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the payload of a witness record (a checkpoint the
 * Communication Server cosigned, or the customer's acknowledgement), as the
 * writer takes it in and the verifying scan checks it against the log.
 *
 * Each input is the JSON payload of one witness record, appended by the real
 * writer to a fresh log of five records (start, four data), then the whole log
 * is scanned with the sealing key, the log's checkpoint key, the witness's key
 * and the acknowledgement key. So that the fuzzer reaches the signature checks
 * and not only the JSON, these placeholders in the input are replaced by what
 * the log makes for its first three records:
 *   @ROOT@   their Merkle root (hex)
 *   @PROOF@  the consistency proof from 3 to 5 records ("hex","hex",…)
 *   @NOTE@   the checkpoint note for them, signed by the log and cosigned by
 *            the witness (time 1767225600), as a JSON string's contents
 *   @TAG@    the customer's acknowledgement tag for it (hex)
 * Checked: no crash, no leak; a scan that passes accepts a witness only for
 * the three records the real checkpoint covers, a cosignature only with its
 * real time, an acknowledgement only with the real tag: no forged witness is
 * ever taken. */
/* The assertions are the target's checks (and some make calls): never compiled out. */
#undef NDEBUG
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz-keys.h"
#include "log-store.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define COVERED 3U
#define COSIGNED_TIME UINT64_C(1767225600)
#define PAYLOAD_MAX 8192U

static const uint8_t seal_key[AUDIT_KEY_SIZE] = { 'f', 'u', 'z', 'z', '-', 's', 'e', 'a', 'l' };

static char dir[64];
static int dir_fd = -EBADF;
static CheckpointVerifier log_key, witness_key;
static char log_vkey_text[CHECKPOINT_NOTE_MAX];
static uint8_t ack_key[CHECKPOINT_ACK_SIZE];

static void clear_dir(void) {
        _cleanup_close_ int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        if (!d)
                abort();
        TAKE_FD(fd);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        (void) unlinkat(dir_fd, de->d_name, 0);
        closedir(d);
}

static void remove_dir(void) {
        clear_dir();
        (void) rmdir(dir);
}

static void setup(void) {
        uint8_t pub[32];

        if (dir_fd >= 0)
                return;
        /* In memory where there is a tmpfs: the writer syncs every segment it makes. */
        (void) snprintf(dir, sizeof(dir), "%s/fuzz-audit-witness-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir))
                abort();
        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0 || checkpoint_public_key(fuzz_log_priv, pub) < 0 ||
            checkpoint_vkey_format(FUZZ_LOG_KEY_NAME, pub, log_vkey_text, sizeof(log_vkey_text)) < 0 ||
            checkpoint_vkey_parse(log_vkey_text, strlen(log_vkey_text), &log_key) < 0 ||
            checkpoint_witness_vkey_parse(FUZZ_WITNESS_VKEY, strlen(FUZZ_WITNESS_VKEY), &witness_key) < 0 ||
            checkpoint_ack_key(seal_key, ack_key) < 0)
                abort();
        (void) atexit(remove_dir);
}

/* Appends the witness's cosignature line (C2SP tlog-cosignature/v1) to a signed note. */
static void cosign(char *note, size_t note_size) {
        uint8_t priv[32], blob[4 + 8 + 64];
        char msg[CHECKPOINT_NOTE_MAX + 64], b64[4 * ((sizeof(blob) + 2) / 3) + 1];
        const char *sep = strstr(note, "\n\n");
        size_t body_len, sig_len = 64;
        int n;

        assert(sep);
        body_len = (size_t) (sep - note) + 1;
        n = snprintf(msg, sizeof(msg), "cosignature/v1\ntime %llu\n", (unsigned long long) COSIGNED_TIME);
        assert(n > 0 && (size_t) n + body_len <= sizeof(msg));
        memcpy(msg + n, note, body_len);
        memset(priv, FUZZ_WITNESS_PRIV_BYTE, sizeof(priv));
        memcpy(blob, witness_key.key_id, 4);
        for (int i = 0; i < 8; i++)
                blob[4 + i] = (uint8_t) (COSIGNED_TIME >> (56 - 8 * i));
        {
                EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, sizeof(priv));
                EVP_MD_CTX *ctx = EVP_MD_CTX_new();
                if (!k || !ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) != 1 ||
                    EVP_DigestSign(ctx, blob + 12, &sig_len, (const unsigned char *) msg, (size_t) n + body_len) != 1)
                        abort();
                EVP_MD_CTX_free(ctx);
                EVP_PKEY_free(k);
        }
        EVP_EncodeBlock((unsigned char *) b64, blob, sizeof(blob));
        n = snprintf(note + strlen(note), note_size - strlen(note), "— %s %s\n", witness_key.name, b64);
        assert(n > 0 && (size_t) n < note_size);
}

/* Writes `s` into out as the contents of a JSON string. */
static size_t json_escape(const char *s, char *out, size_t size) {
        size_t n = 0;
        for (; *s && n + 2 < size; s++) {
                if (*s == '\n')
                        out[n++] = '\\', out[n++] = 'n';
                else
                        out[n++] = *s;
        }
        return n;
}

/* Whether the payload's "tag" is the real acknowledgement tag (json-c reads it as the scan does). */
static bool payload_has_tag(const char *payload, size_t len, const uint8_t tag[CHECKPOINT_ACK_SIZE]) {
        json_tokener *tok = json_tokener_new();
        json_object *j, *v;
        uint8_t t[CHECKPOINT_ACK_SIZE];
        bool ok;

        assert(tok);
        j = json_tokener_parse_ex(tok, payload, (int) len);
        ok = j && json_object_object_get_ex(j, "tag", &v) && json_object_is_type(v, json_type_string) &&
             audit_unhex(json_object_get_string(v), t, sizeof(t)) == 0 && memcmp(t, tag, sizeof(t)) == 0;
        json_object_put(j);
        json_tokener_free(tok);
        return ok;
}

static size_t expand(const uint8_t *data, size_t size, const char *const subst[4][2], char *out, size_t out_size) {
        size_t n = 0;

        for (size_t i = 0; i < size && n < out_size;) {
                bool done = false;
                for (int k = 0; k < 4 && !done; k++) {
                        size_t kl = strlen(subst[k][0]), vl = strlen(subst[k][1]);
                        if (size - i >= kl && memcmp(data + i, subst[k][0], kl) == 0) {
                                if (n + vl > out_size)
                                        return n;
                                memcpy(out + n, subst[k][1], vl);
                                n += vl;
                                i += kl;
                                done = true;
                        }
                }
                if (!done)
                        out[n++] = (char) data[i++];
        }
        return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(audit_writer_freep) AuditWriter *w = NULL;
        _cleanup_(audit_seal_key_freep) AuditSealKey *check_key = NULL;
        uint8_t proof[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE], tag[CHECKPOINT_ACK_SIZE];
        char root_hex[2 * AUDIT_HASH_SIZE + 1], tag_hex[2 * CHECKPOINT_ACK_SIZE + 1], note[CHECKPOINT_NOTE_MAX],
                note_json[2 * CHECKPOINT_NOTE_MAX], proof_json[AUDIT_FRONTIER_MAX * (2 * AUDIT_HASH_SIZE + 3) + 1] = "",
                payload[PAYLOAD_MAX];
        AuditScanOptions o = { .n_threads = 1 };
        AuditScanResult res;
        AuditSealKey *k = NULL;
        Checkpoint cp = { .size = COVERED };
        unsigned count = 0;
        size_t len;

        if (size > PAYLOAD_MAX / 4)
                return 0;
        setup();
        clear_dir();

        /* A fresh log of five records. */
        assert(audit_log_scan(dir_fd, &o, &res) == 0 && !res.broken);
        assert(audit_seal_key_new(0, seal_key, &k) == 0);
        AuditWriterOptions wo = { .segment_size = 1U << 20, .origin = log_key.name, .vkey = log_vkey_text,
                                  .checkpoint_priv = fuzz_log_priv };
        assert(audit_writer_open(dir_fd, &res, k, -EBADF, &wo, &w) == 0);
        for (int i = 0; i < 4; i++) {
                AuditRecordFields f = { .kind = AUDIT_KIND_DATA, .direction = AUDIT_DIRECTION_INTERNAL,
                                        .type = "policy.decision", .payload = (const uint8_t *) "{}", .payload_len = 2 };
                assert(audit_writer_append(w, &f, NULL, NULL) == 0);
        }
        assert(audit_writer_next_seq(w) == 6);

        /* What an honest witness of its first three records would hold. */
        memcpy(cp.origin, log_key.name, sizeof(cp.origin));
        assert(merkle_range_hash(audit_writer_leaf, w, 0, COVERED, cp.root) == 0);
        assert(merkle_consistency_proof(NULL, audit_writer_leaf, w, COVERED, 5, proof, &count) == 0);
        audit_hex(cp.root, AUDIT_HASH_SIZE, root_hex);
        for (unsigned i = 0; i < count; i++) {
                char hex[2 * AUDIT_HASH_SIZE + 1];
                audit_hex(proof[i], AUDIT_HASH_SIZE, hex);
                (void) snprintf(proof_json + strlen(proof_json), sizeof(proof_json) - strlen(proof_json), "%s\"%s\"",
                                i ? "," : "", hex);
        }
        assert(checkpoint_sign(fuzz_log_priv, log_key.name, &cp, note, sizeof(note)) == 0);
        cosign(note, sizeof(note));
        note_json[json_escape(note, note_json, sizeof(note_json))] = '\0';
        assert(checkpoint_ack_tag(ack_key, &cp, tag) == 0);
        audit_hex(tag, sizeof(tag), tag_hex);
        const char *const subst[4][2] = {
                { "@ROOT@", root_hex }, { "@PROOF@", proof_json }, { "@NOTE@", note_json }, { "@TAG@", tag_hex }
        };
        len = expand(data, size, subst, payload, sizeof(payload));

        /* The witness record, as the daemon appends it. */
        AuditRecordFields f = { .kind = AUDIT_KIND_WITNESS, .direction = AUDIT_DIRECTION_INTERNAL, .type = "audit.witness",
                                .payload = (const uint8_t *) payload, .payload_len = len };
        if (audit_writer_append(w, &f, NULL, NULL) < 0)
                return 0; /* refused (too large): nothing written */
        assert(audit_writer_sync(w) == 0);
        w = audit_writer_free(w);

        /* The whole log verified, every key given. */
        assert(audit_seal_key_new(0, seal_key, &check_key) == 0);
        o = (AuditScanOptions) { .key = check_key, .vkey = &log_key, .witness_key = &witness_key, .ack_key = ack_key,
                                 .n_threads = 1 };
        assert(audit_log_scan(dir_fd, &o, &res) == 0);
        if (!res.broken && res.last_witness.by != AUDIT_WITNESS_NONE) {
                assert(res.last_witness.size == COVERED && res.last_witness.checked);
                assert(res.last_witness.by == AUDIT_WITNESS_CUSTOMER || res.last_witness.cosigned == COSIGNED_TIME);
                if (res.last_witness.by == AUDIT_WITNESS_CUSTOMER)
                        assert(payload_has_tag(payload, len, tag));
        }
        return 0;
}
