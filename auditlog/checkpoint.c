/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "macro.h"
#include "parse-util.h"
#include "seal.h"

#define EM_DASH "\xe2\x80\x94"

bool checkpoint_name_valid(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n > CHECKPOINT_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) name[i] <= ' ' || name[i] == '+' || (unsigned char) name[i] >= 0x7f)
                        return false;
        return true;
}

static int b64_encode(const uint8_t *data, size_t len, char *ret, size_t ret_size) {
        if (ret_size < 4 * ((len + 2) / 3) + 1)
                return -ENOBUFS;
        (void) EVP_EncodeBlock((unsigned char *) ret, data, (int) len);
        return 0;
}

/* Strict base64 of exactly `len` bytes. */
static int b64_decode(const char *s, size_t slen, uint8_t *ret, size_t len) {
        uint8_t buf[128];
        size_t pad = 0;
        int n;

        if (slen == 0 || slen % 4 != 0 || slen / 4 * 3 > sizeof(buf))
                return -EBADMSG;
        for (size_t i = 0; i < slen; i++) {
                char c = s[i];
                if (c == '=') {
                        if (i < slen - 2)
                                return -EBADMSG;
                        pad++;
                } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                             c == '/') || pad)
                        return -EBADMSG;
        }
        n = EVP_DecodeBlock(buf, (const unsigned char *) s, (int) slen);
        if (n < 0 || (size_t) n - pad != len)
                return -EBADMSG;
        memcpy(ret, buf, len);
        return 0;
}

#define SIG_ED25519 0x01
#define SIG_COSIGNATURE_V1 0x04

static int key_id_alg(const char *name, uint8_t alg, const uint8_t pub[32], uint8_t ret[4]) {
        uint8_t h[AUDIT_HASH_SIZE], alg_pub[33];
        int r;

        alg_pub[0] = alg;
        memcpy(alg_pub + 1, pub, 32);
        r = audit_sha256(name, strlen(name), "\n", 1, alg_pub, sizeof(alg_pub), h);
        if (r < 0)
                return r;
        memcpy(ret, h, 4);
        return 0;
}

static int key_id(const char *name, const uint8_t pub[32], uint8_t ret[4]) {
        return key_id_alg(name, SIG_ED25519, pub, ret);
}

int checkpoint_vkey_format(const char *name, const uint8_t pub[32], char *ret, size_t ret_size) {
        uint8_t id[4], alg_pub[33];
        char b64[64], idhex[9];
        int r;

        if (!checkpoint_name_valid(name))
                return -EINVAL;
        r = key_id(name, pub, id);
        if (r < 0)
                return r;
        alg_pub[0] = 0x01;
        memcpy(alg_pub + 1, pub, 32);
        r = b64_encode(alg_pub, sizeof(alg_pub), b64, sizeof(b64));
        if (r < 0)
                return r;
        audit_hex(id, 4, idhex);
        if ((size_t) snprintf(ret, ret_size, "%s+%s+%s", name, idhex, b64) >= ret_size)
                return -ENOBUFS;
        return 0;
}

static int vkey_parse(const char *s, size_t len, uint8_t alg, CheckpointVerifier *ret) {
        const char *p1, *p2, *end = s + len;
        uint8_t alg_pub[33], id[4];
        char name[CHECKPOINT_NAME_MAX + 1], idhex[9];
        int r;

        while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
                end = s + --len;
        p1 = memchr(s, '+', len);
        if (!p1 || (size_t) (p1 - s) > CHECKPOINT_NAME_MAX)
                return -EBADMSG;
        p2 = memchr(p1 + 1, '+', (size_t) (end - p1 - 1));
        if (!p2 || p2 - p1 - 1 != 8)
                return -EBADMSG;
        memcpy(name, s, (size_t) (p1 - s));
        name[p1 - s] = '\0';
        if (!checkpoint_name_valid(name))
                return -EBADMSG;
        memcpy(idhex, p1 + 1, 8);
        idhex[8] = '\0';
        if (audit_unhex(idhex, id, 4) < 0)
                return -EBADMSG;
        r = b64_decode(p2 + 1, (size_t) (end - p2 - 1), alg_pub, sizeof(alg_pub));
        if (r < 0 || alg_pub[0] != alg)
                return -EBADMSG;
        memcpy(ret->name, name, strlen(name) + 1);
        memcpy(ret->pub, alg_pub + 1, 32);
        r = key_id_alg(name, alg, ret->pub, ret->key_id);
        if (r < 0)
                return r;
        if (memcmp(ret->key_id, id, 4) != 0)
                return -EBADMSG;
        return 0;
}

int checkpoint_vkey_parse(const char *s, size_t len, CheckpointVerifier *ret) {
        return vkey_parse(s, len, SIG_ED25519, ret);
}

int checkpoint_witness_vkey_parse(const char *s, size_t len, CheckpointVerifier *ret) {
        return vkey_parse(s, len, SIG_COSIGNATURE_V1, ret);
}

int checkpoint_public_key(const uint8_t priv[32], uint8_t ret[32]) {
        EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, 32);
        size_t len = 32;
        int r = 0;

        if (!pkey)
                return -EIO;
        if (EVP_PKEY_get_raw_public_key(pkey, ret, &len) != 1 || len != 32)
                r = -EIO;
        EVP_PKEY_free(pkey);
        return r;
}

static int note_body(const Checkpoint *c, char *ret, size_t ret_size, size_t *ret_len) {
        char b64[64];
        int r, n;

        if (!checkpoint_name_valid(c->origin))
                return -EINVAL;
        r = b64_encode(c->root, AUDIT_HASH_SIZE, b64, sizeof(b64));
        if (r < 0)
                return r;
        n = snprintf(ret, ret_size, "%s\n%" PRIu64 "\n%s\n", c->origin, c->size, b64);
        if (n < 0 || (size_t) n >= ret_size)
                return -ENOBUFS;
        *ret_len = (size_t) n;
        return 0;
}

int checkpoint_sign(const uint8_t priv[32], const char *key_name, const Checkpoint *c, char *ret, size_t ret_size) {
        uint8_t pub[32], sigblob[4 + 64];
        size_t body_len, siglen = 64;
        char b64[128];
        EVP_PKEY *pkey = NULL;
        EVP_MD_CTX *ctx = NULL;
        int r, n;

        r = note_body(c, ret, ret_size, &body_len);
        if (r < 0)
                return r;
        pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, 32);
        ctx = EVP_MD_CTX_new();
        if (!pkey || !ctx) {
                r = -ENOMEM;
                goto finish;
        }
        siglen = 32;
        if (EVP_PKEY_get_raw_public_key(pkey, pub, &siglen) != 1) {
                r = -EIO;
                goto finish;
        }
        r = key_id(key_name, pub, sigblob);
        if (r < 0)
                goto finish;
        siglen = 64;
        if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) != 1 ||
            EVP_DigestSign(ctx, sigblob + 4, &siglen, (const unsigned char *) ret, body_len) != 1 || siglen != 64) {
                r = -EIO;
                goto finish;
        }
        r = b64_encode(sigblob, sizeof(sigblob), b64, sizeof(b64));
        if (r < 0)
                goto finish;
        n = snprintf(ret + body_len, ret_size - body_len, "\n" EM_DASH " %s %s\n", key_name, b64);
        r = n < 0 || (size_t) n >= ret_size - body_len ? -ENOBUFS : 0;
finish:
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pkey);
        return r;
}

static int verify_sig(const CheckpointVerifier *v, const char *body, size_t body_len, const uint8_t sig[64]) {
        EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, v->pub, 32);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int r = -EPERM;

        if (pkey && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
            EVP_DigestVerify(ctx, sig, 64, (const unsigned char *) body, body_len) == 1)
                r = 0;
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pkey);
        return r;
}

int checkpoint_parse_verify(const char *note, size_t len, const CheckpointVerifier *v, Checkpoint *ret) {
        const char *sep, *p, *end = note + len, *l1, *l2, *l3;
        Checkpoint c = {};
        size_t body_len;
        bool good = false;
        char num[24];

        if (len > CHECKPOINT_NOTE_MAX || memchr(note, '\0', len))
                return -EBADMSG;
        sep = memmem(note, len, "\n\n", 2);
        if (!sep)
                return -EBADMSG;
        body_len = (size_t) (sep - note) + 1;

        /* origin, size, root; extension lines after them are allowed and signed. */
        l1 = memchr(note, '\n', body_len);
        if (!l1 || (size_t) (l1 - note) > CHECKPOINT_NAME_MAX || l1 == note)
                return -EBADMSG;
        memcpy(c.origin, note, (size_t) (l1 - note));
        if (!checkpoint_name_valid(c.origin))
                return -EBADMSG;
        l2 = memchr(l1 + 1, '\n', (size_t) (note + body_len - l1 - 1));
        if (!l2 || l2 - l1 - 1 <= 0 || (size_t) (l2 - l1 - 1) >= sizeof(num))
                return -EBADMSG;
        memcpy(num, l1 + 1, (size_t) (l2 - l1 - 1));
        num[l2 - l1 - 1] = '\0';
        if (safe_atou64(num, &c.size) < 0 || (num[0] == '0' && num[1]))
                return -EBADMSG;
        l3 = memchr(l2 + 1, '\n', (size_t) (note + body_len - l2 - 1));
        if (!l3 || b64_decode(l2 + 1, (size_t) (l3 - l2 - 1), c.root, AUDIT_HASH_SIZE) < 0)
                return -EBADMSG;

        /* Signature lines: "— <name> <base64>\n" */
        p = sep + 2;
        if (p >= end || end[-1] != '\n')
                return -EBADMSG;
        while (p < end) {
                const char *eol = memchr(p, '\n', (size_t) (end - p)), *sp;
                uint8_t blob[68];
                size_t nl;

                if (!eol || (size_t) (eol - p) < strlen(EM_DASH " ") || memcmp(p, EM_DASH " ", strlen(EM_DASH " ")) != 0)
                        return -EBADMSG;
                p += strlen(EM_DASH " ");
                sp = memchr(p, ' ', (size_t) (eol - p));
                if (!sp)
                        return -EBADMSG;
                nl = (size_t) (sp - p);
                if (v && nl == strlen(v->name) && memcmp(p, v->name, nl) == 0 &&
                    b64_decode(sp + 1, (size_t) (eol - sp - 1), blob, sizeof(blob)) == 0 &&
                    memcmp(blob, v->key_id, 4) == 0 && verify_sig(v, note, body_len, blob + 4) == 0)
                        good = true;
                p = eol + 1;
        }
        if (!good)
                return -EPERM;
        if (ret)
                *ret = c;
        return 0;
}

/* The signature line of `name` in a note (the text after "— name "), or NULL. */
static const char *note_signature(const char *note, size_t len, const char *name, size_t *ret_body_len,
                                  size_t *ret_sig_len) {
        const char *sep, *p, *end = note + len;

        if (len > CHECKPOINT_NOTE_MAX || memchr(note, '\0', len))
                return NULL;
        sep = memmem(note, len, "\n\n", 2);
        if (!sep || end[-1] != '\n')
                return NULL;
        *ret_body_len = (size_t) (sep - note) + 1;
        for (p = sep + 2; p < end;) {
                const char *eol = memchr(p, '\n', (size_t) (end - p)), *q = p + strlen(EM_DASH " ");
                size_t nl = strlen(name);

                if ((size_t) (eol - p) > strlen(EM_DASH " ") + nl && memcmp(p, EM_DASH " ", strlen(EM_DASH " ")) == 0 &&
                    memcmp(q, name, nl) == 0 && q[nl] == ' ') {
                        *ret_sig_len = (size_t) (eol - q - nl - 1);
                        return q + nl + 1;
                }
                p = eol + 1;
        }
        return NULL;
}

int checkpoint_cosignature_verify(const char *note, size_t len, const CheckpointVerifier *w, uint64_t *ret_time) {
        uint8_t blob[4 + 8 + 64];
        char msg[CHECKPOINT_NOTE_MAX + 64];
        size_t body_len, sig_len;
        const char *sig;
        uint64_t ts = 0;
        int n, r = -EPERM;

        assert(note);
        assert(w);
        sig = note_signature(note, len, w->name, &body_len, &sig_len);
        if (!sig || b64_decode(sig, sig_len, blob, sizeof(blob)) < 0 || memcmp(blob, w->key_id, 4) != 0)
                return -EPERM;
        for (int i = 0; i < 8; i++)
                ts = ts << 8 | blob[4 + i];
        n = snprintf(msg, sizeof(msg), "cosignature/v1\ntime %" PRIu64 "\n", ts);
        if (n < 0 || (size_t) n + body_len > sizeof(msg))
                return -EBADMSG;
        memcpy(msg + n, note, body_len);
        {
                EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, w->pub, 32);
                EVP_MD_CTX *ctx = EVP_MD_CTX_new();

                if (pkey && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
                    EVP_DigestVerify(ctx, blob + 12, 64, (const unsigned char *) msg, (size_t) n + body_len) == 1)
                        r = 0;
                EVP_MD_CTX_free(ctx);
                EVP_PKEY_free(pkey);
        }
        if (r == 0 && ret_time)
                *ret_time = ts;
        return r;
}

int checkpoint_ack_key(const uint8_t first_key[AUDIT_KEY_SIZE], uint8_t ret[CHECKPOINT_ACK_SIZE]) {
        static const char label[] = "callhome-audit acknowledge";
        unsigned len = CHECKPOINT_ACK_SIZE;

        if (!HMAC(EVP_sha256(), first_key, AUDIT_KEY_SIZE, (const unsigned char *) label, strlen(label), ret, &len) ||
            len != CHECKPOINT_ACK_SIZE)
                return -EIO;
        return 0;
}

int checkpoint_ack_tag(const uint8_t ack_key[CHECKPOINT_ACK_SIZE], const Checkpoint *c, uint8_t ret[CHECKPOINT_ACK_SIZE]) {
        char body[CHECKPOINT_NOTE_MAX];
        size_t body_len;
        unsigned len = CHECKPOINT_ACK_SIZE;
        int r;

        r = note_body(c, body, sizeof(body), &body_len);
        if (r < 0)
                return r;
        if (!HMAC(EVP_sha256(), ack_key, CHECKPOINT_ACK_SIZE, (const unsigned char *) body, body_len, ret, &len) ||
            len != CHECKPOINT_ACK_SIZE)
                return -EIO;
        return 0;
}
