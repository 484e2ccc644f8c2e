/* SPDX-License-Identifier: Apache-2.0 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "macro.h"
#include "seal.h"

struct AuditSealKey {
        uint64_t epoch;
        uint8_t key[AUDIT_KEY_SIZE];
        EVP_MAC_CTX *mac; /* keyed with M_e; re-initialised per record without re-keying */
};

/* The algorithms are fetched once for all threads; the digest context is per
 * thread, so parallel verification workers each hash with their own. */
static EVP_MD *sha256_md = NULL;
static EVP_MAC *hmac = NULL;
static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static _Thread_local EVP_MD_CTX *sha256_ctx = NULL;

static void crypto_fetch(void) {
        sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
        hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static int crypto_init(void) {
        if (pthread_once(&crypto_once, crypto_fetch) != 0 || !sha256_md || !hmac)
                return -EIO;
        if (!sha256_ctx) {
                sha256_ctx = EVP_MD_CTX_new();
                if (!sha256_ctx)
                        return -ENOMEM;
        }
        return 0;
}

void audit_crypto_thread_cleanup(void) {
        EVP_MD_CTX_free(sha256_ctx);
        sha256_ctx = NULL;
}

int audit_sha256(const void *a, size_t al, const void *b, size_t bl, const void *c, size_t cl,
                 uint8_t ret[AUDIT_HASH_SIZE]) {
        unsigned len = 0;
        int r = crypto_init();

        if (r < 0)
                return r;
        if (EVP_DigestInit_ex2(sha256_ctx, sha256_md, NULL) != 1 || (al && EVP_DigestUpdate(sha256_ctx, a, al) != 1) ||
            (bl && EVP_DigestUpdate(sha256_ctx, b, bl) != 1) || (cl && EVP_DigestUpdate(sha256_ctx, c, cl) != 1) ||
            EVP_DigestFinal_ex(sha256_ctx, ret, &len) != 1 || len != AUDIT_HASH_SIZE)
                return -EIO;
        return 0;
}

int audit_chain_hash(const uint8_t prev[AUDIT_HASH_SIZE], const uint8_t *data, size_t len,
                     uint8_t ret[AUDIT_HASH_SIZE]) {
        return audit_sha256(prev, AUDIT_HASH_SIZE, data, len, NULL, 0, ret);
}

/* HMAC-SHA256 (RFC 2104) of a short label under a 32-byte key, on the thread's
 * digest context. EVP_Q_mac() fetches both algorithms on every call, which costs
 * several times the four SHA-256 blocks themselves; deriving a later epoch's key
 * is a loop of these, so a verifier's work per epoch stays below its work per
 * record (see epoch_reach() in log-scan.c). */
static int hmac_oneshot(const uint8_t key[AUDIT_KEY_SIZE], const char *label, uint8_t ret[AUDIT_KEY_SIZE]) {
        uint8_t ipad[64], opad[64], inner[AUDIT_HASH_SIZE];
        int r;

        for (size_t i = 0; i < sizeof(ipad); i++) {
                uint8_t b = i < AUDIT_KEY_SIZE ? key[i] : 0;
                ipad[i] = b ^ 0x36;
                opad[i] = b ^ 0x5c;
        }
        r = audit_sha256(ipad, sizeof(ipad), label, strlen(label), NULL, 0, inner);
        if (r >= 0)
                r = audit_sha256(opad, sizeof(opad), inner, sizeof(inner), NULL, 0, ret);
        OPENSSL_cleanse(ipad, sizeof(ipad));
        OPENSSL_cleanse(opad, sizeof(opad));
        OPENSSL_cleanse(inner, sizeof(inner));
        return r;
}

static int seal_key_rekey(AuditSealKey *k) {
        uint8_t mac_key[AUDIT_KEY_SIZE];
        OSSL_PARAM params[2];
        int r;

        r = hmac_oneshot(k->key, "callhome-audit mac", mac_key);
        if (r < 0)
                return r;
        EVP_MAC_CTX_free(k->mac);
        k->mac = EVP_MAC_CTX_new(hmac);
        if (!k->mac) {
                OPENSSL_cleanse(mac_key, sizeof(mac_key));
                return -ENOMEM;
        }
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0);
        params[1] = OSSL_PARAM_construct_end();
        r = EVP_MAC_init(k->mac, mac_key, sizeof(mac_key), params) == 1 ? 0 : -EIO;
        OPENSSL_cleanse(mac_key, sizeof(mac_key));
        return r;
}

int audit_seal_key_new(uint64_t epoch, const uint8_t key[AUDIT_KEY_SIZE], AuditSealKey **ret) {
        AuditSealKey *k;
        int r;

        r = crypto_init();
        if (r < 0)
                return r;
        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->epoch = epoch;
        memcpy(k->key, key, AUDIT_KEY_SIZE);
        r = seal_key_rekey(k);
        if (r < 0) {
                audit_seal_key_free(k);
                return r;
        }
        *ret = k;
        return 0;
}

int audit_seal_key_dup(const AuditSealKey *k, AuditSealKey **ret) {
        return audit_seal_key_new(k->epoch, k->key, ret);
}

AuditSealKey *audit_seal_key_free(AuditSealKey *k) {
        if (!k)
                return NULL;
        EVP_MAC_CTX_free(k->mac); /* OpenSSL cleanses the HMAC state it frees */
        OPENSSL_cleanse(k, sizeof(*k));
        free(k);
        return NULL;
}

uint64_t audit_seal_key_epoch(const AuditSealKey *k) {
        return k->epoch;
}

void audit_seal_key_raw(const AuditSealKey *k, uint8_t ret[AUDIT_KEY_SIZE]) {
        memcpy(ret, k->key, AUDIT_KEY_SIZE);
}

int audit_seal_key_evolve(AuditSealKey *k) {
        uint8_t next[AUDIT_KEY_SIZE];
        int r;

        r = hmac_oneshot(k->key, "callhome-audit evolve", next);
        if (r < 0)
                return r;
        memcpy(k->key, next, AUDIT_KEY_SIZE);
        OPENSSL_cleanse(next, sizeof(next));
        k->epoch++;
        return seal_key_rekey(k);
}

int audit_seal_key_evolve_to(AuditSealKey *k, uint64_t epoch) {
        if (epoch < k->epoch || epoch > AUDIT_EPOCH_MAX)
                return -ERANGE;
        while (k->epoch < epoch) {
                uint8_t next[AUDIT_KEY_SIZE];
                int r = hmac_oneshot(k->key, "callhome-audit evolve", next);
                if (r < 0)
                        return r;
                memcpy(k->key, next, AUDIT_KEY_SIZE);
                OPENSSL_cleanse(next, sizeof(next));
                k->epoch++;
        }
        return seal_key_rekey(k);
}

int audit_seal_key_mac(AuditSealKey *k, const uint8_t hash[AUDIT_HASH_SIZE], uint8_t ret[AUDIT_MAC_SIZE]) {
        size_t len = 0;

        /* NULL key: restart from the stored keyed state, no re-keying per record. */
        if (EVP_MAC_init(k->mac, NULL, 0, NULL) != 1 || EVP_MAC_update(k->mac, (const unsigned char *) "CHMAC1", 6) != 1 ||
            EVP_MAC_update(k->mac, hash, AUDIT_HASH_SIZE) != 1 || EVP_MAC_final(k->mac, ret, &len, AUDIT_MAC_SIZE) != 1 ||
            len != AUDIT_MAC_SIZE)
                return -EIO;
        return 0;
}

int audit_key_file_encode(const AuditSealKey *k, uint8_t ret[AUDIT_KEY_FILE_SIZE]) {
        memset(ret, 0, AUDIT_KEY_FILE_SIZE);
        memcpy(ret, "CHSEALK1", 8);
        audit_put_le64(ret + 8, k->epoch);
        memcpy(ret + 16, k->key, AUDIT_KEY_SIZE);
        audit_put_le32(ret + 60, crc32c(0, ret, 60));
        return 0;
}

int audit_key_file_decode(const uint8_t *buf, size_t len, AuditSealKey **ret) {
        if (len != AUDIT_KEY_FILE_SIZE || memcmp(buf, "CHSEALK1", 8) != 0 || crc32c(0, buf, 60) != audit_le32(buf + 60))
                return -EBADMSG;
        if (audit_le64(buf + 8) > AUDIT_EPOCH_MAX)
                return -EBADMSG;
        return audit_seal_key_new(audit_le64(buf + 8), buf + 16, ret);
}

int audit_key_file_read(int fd, AuditSealKey **ret) {
        uint8_t buf[AUDIT_KEY_FILE_SIZE + 1];
        ssize_t n;
        int r;

        n = pread(fd, buf, sizeof(buf), 0);
        if (n < 0)
                return negative_errno();
        r = audit_key_file_decode(buf, (size_t) n, ret);
        OPENSSL_cleanse(buf, sizeof(buf));
        return r;
}

int audit_key_file_write(int fd, const AuditSealKey *k) {
        uint8_t buf[AUDIT_KEY_FILE_SIZE];
        ssize_t n;

        (void) audit_key_file_encode(k, buf);
        n = pwrite(fd, buf, sizeof(buf), 0);
        OPENSSL_cleanse(buf, sizeof(buf));
        if (n < 0)
                return negative_errno();
        if (n != (ssize_t) sizeof(buf))
                return -EIO;
        if (fdatasync(fd) < 0)
                return negative_errno();
        return 0;
}

void audit_hex(const uint8_t *data, size_t len, char *ret) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < len; i++) {
                ret[2 * i] = digits[data[i] >> 4];
                ret[2 * i + 1] = digits[data[i] & 15];
        }
        ret[2 * len] = '\0';
}

static int unhex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int audit_unhex(const char *s, uint8_t *ret, size_t len) {
        size_t n = 0;
        int hi = -1;

        for (; *s; s++) {
                int d;

                if (*s == '-' || *s == ':' || *s == ' ')
                        continue;
                d = unhex_digit(*s);
                if (d < 0 || n >= len)
                        return -EINVAL;
                if (hi < 0)
                        hi = d;
                else {
                        ret[n++] = (uint8_t) (hi << 4 | d);
                        hi = -1;
                }
        }
        return n == len && hi < 0 ? 0 : -EINVAL;
}
