/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/store.h>
#include <openssl/ui.h>

#include "fileio.h"
#include "macro.h"
#include "nw-config.h"
#include "nw-resolve.h"
#include "parse-util.h"
#include "soap-util.h"

#define CONFIG_MAX_BYTES (64U * 1024)
#define PEM_MAX_BYTES (1U << 20)

DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE *, X509_STORE_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_STORE_CTX *, OSSL_STORE_close);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_STORE_INFO *, OSSL_STORE_INFO_free);

static void x509_stack_freep(STACK_OF(X509) **s) {
        if (*s)
                sk_X509_pop_free(*s, X509_free);
}

/* A PEM file read whole, and a memory BIO over it (which borrows the buffer). */
static int open_pem(const char *path, char **ret_pem, size_t *ret_size, BIO **ret_bio) {
        _cleanup_free_ char *pem = NULL;
        size_t size;
        BIO *bio;
        int r;

        r = read_small_file_at(AT_FDCWD, path, PEM_MAX_BYTES, &pem, &size);
        if (r < 0)
                return r;
        bio = BIO_new_mem_buf(pem, (int) size);
        if (!bio) {
                explicit_bzero(pem, size);
                return -ENOMEM;
        }
        *ret_pem = TAKE_PTR(pem);
        *ret_size = size;
        *ret_bio = bio;
        return 0;
}

NwConfig *nw_config_free(NwConfig *c) {
        if (!c)
                return NULL;
        X509_STORE_free(c->ca_store);
        free(c->pinned_public_keys);
        X509_free(c->client_cert);
        x509_stack_freep(&c->client_chain);
        EVP_PKEY_free(c->client_key);
        free(c->tls_groups);
        free(c->tls_sigalgs);
        free(c->tls12_ciphers);
        free(c->tls13_ciphers);
        free(c->dns_servers);
        free(c);
        return NULL;
}

/* Every certificate of a PEM file, in order; -ENOKEY if there is none. */
static int read_certificates(const char *path, STACK_OF(X509) **ret) {
        _cleanup_free_ char *pem = NULL;
        _cleanup_(BIO_freep) BIO *bio = NULL;
        _cleanup_(x509_stack_freep) STACK_OF(X509) *certs = NULL;
        size_t size;
        int r;

        r = open_pem(path, &pem, &size, &bio);
        if (r < 0)
                return r;
        certs = sk_X509_new_null();
        if (!certs)
                return -ENOMEM;
        for (;;) {
                X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                if (!x)
                        break;
                if (!sk_X509_push(certs, x)) {
                        X509_free(x);
                        return -ENOMEM;
                }
        }
        ERR_clear_error();
        if (sk_X509_num(certs) == 0)
                return -ENOKEY;
        *ret = TAKE_PTR(certs);
        return 0;
}

int nw_config_load_ca(NwConfig *c, const char *path) {
        _cleanup_(x509_stack_freep) STACK_OF(X509) *certs = NULL;
        _cleanup_(X509_STORE_freep) X509_STORE *store = NULL;
        int r;

        assert(c);
        assert(path);

        r = read_certificates(path, &certs);
        if (r < 0)
                return r; /* -ENOKEY: no certificate at all, nothing could ever be trusted */
        store = X509_STORE_new();
        if (!store)
                return -ENOMEM;
        for (int i = 0; i < sk_X509_num(certs); i++)
                if (!X509_STORE_add_cert(store, sk_X509_value(certs, i)))
                        return -EINVAL;

        X509_STORE_free(c->ca_store);
        c->ca_store = TAKE_PTR(store);
        return 0;
}

int nw_config_load_client_cert(NwConfig *c, const char *path) {
        _cleanup_(x509_stack_freep) STACK_OF(X509) *chain = NULL;
        int r;

        assert(c);
        assert(path);

        /* the leaf first, intermediates after it */
        r = read_certificates(path, &chain);
        if (r < 0)
                return r == -ENOKEY ? -EBADMSG : r;

        X509_free(c->client_cert);
        x509_stack_freep(&c->client_chain);
        c->client_cert = sk_X509_shift(chain);
        c->client_chain = TAKE_PTR(chain);
        return 0;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u) {
        return 0; /* encrypted keys are not supported: a daemon has nobody to ask */
}

int nw_config_load_client_key_pem(NwConfig *c, const char *path) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        EVP_PKEY *key;
        char *pem = NULL;
        size_t size;
        int r;

        assert(c);
        assert(path);

        r = open_pem(path, &pem, &size, &bio);
        if (r < 0)
                return r;
        key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
        ERR_clear_error();
        BIO_free(TAKE_PTR(bio));
        erase_and_free(pem, size);
        if (!key)
                return -EBADMSG;
        EVP_PKEY_free(c->client_key);
        c->client_key = key;
        return 0;
}

int nw_config_load_client_key_uri(NwConfig *c, const char *uri) {
        _cleanup_(OSSL_STORE_closep) OSSL_STORE_CTX *store = NULL;

        assert(c);
        assert(uri);

        /* Any URI a loaded OpenSSL provider understands: "file:…", or e.g. "pkcs11:…"
         * with pkcs11-provider configured in openssl.cnf. Only the key is taken. */
        store = OSSL_STORE_open(uri, UI_null(), NULL, NULL, NULL);
        if (!store) {
                ERR_clear_error();
                return -ENOENT;
        }
        (void) OSSL_STORE_expect(store, OSSL_STORE_INFO_PKEY);
        while (!OSSL_STORE_eof(store)) {
                _cleanup_(OSSL_STORE_INFO_freep) OSSL_STORE_INFO *info = OSSL_STORE_load(store);
                EVP_PKEY *key;

                if (!info)
                        continue;
                if (OSSL_STORE_INFO_get_type(info) != OSSL_STORE_INFO_PKEY)
                        continue;
                key = OSSL_STORE_INFO_get1_PKEY(info);
                if (!key)
                        return -ENOMEM;
                ERR_clear_error();
                EVP_PKEY_free(c->client_key);
                c->client_key = key;
                return 0;
        }
        ERR_clear_error();
        return -ENOKEY;
}

int nw_config_set_pins(NwConfig *c, const char *pins) {
        const char *p = pins;
        char *copy;

        assert(c);
        assert(pins);

        for (;;) {
                size_t n = strcspn(p, ";");
                char item[64];

                if (n != 8 + 44 || strncmp(p, "sha256//", 8))
                        return -EINVAL;
                memcpy(item, p + 8, 44);
                item[44] = '\0';
                if (!soap_valid_base64(item, 32))
                        return -EINVAL;
                p += n;
                if (*p == '\0')
                        break;
                p++;
        }
        copy = strdup(pins);
        if (!copy)
                return -ENOMEM;
        free(c->pinned_public_keys);
        c->pinned_public_keys = copy;
        return 0;
}

static int set_string(char **field, const char *value) {
        char *s = strdup(value);

        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

static int set_ms(uint64_t *field, const char *value) {
        uint64_t usec;
        int r;

        r = parse_duration_usec(value, &usec);
        if (r < 0)
                return r;
        if (usec < 1000)
                return -ERANGE;
        *field = usec / 1000;
        return 0;
}

static int set_size(size_t *field, const char *value, uint64_t max) {
        uint64_t v;
        int r;

        r = parse_size(value, &v);
        if (r < 0)
                return r;
        if (v < 1 || v > max)
                return -ERANGE;
        *field = (size_t) v;
        return 0;
}

static int parse_count(const char *value, uint64_t max, uint64_t *ret) {
        uint64_t v;
        int r;

        r = safe_atou64(value, &v);
        if (r < 0)
                return r;
        if (v < 1 || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

static int set_unsigned(unsigned *field, const char *value, unsigned max) {
        uint64_t v;
        int r;

        r = parse_count(value, max, &v);
        if (r >= 0)
                *field = (unsigned) v;
        return r;
}

static int apply(NwConfig *c, const char *key, const char *value) {
        NwLimits *l = &c->limits;
        uint64_t ms;
        int r;

        if (streq(key, "CACertificates"))
                return nw_config_load_ca(c, value);
        if (streq(key, "PinnedPublicKeys"))
                return nw_config_set_pins(c, value);
        if (streq(key, "ClientCertificate"))
                return nw_config_load_client_cert(c, value);
        if (streq(key, "ClientKey"))
                return nw_config_load_client_key_pem(c, value);
        if (streq(key, "ClientKeyURI"))
                return nw_config_load_client_key_uri(c, value);
        if (streq(key, "TLSGroups"))
                return set_string(&c->tls_groups, value);
        if (streq(key, "TLSSignatureAlgorithms"))
                return set_string(&c->tls_sigalgs, value);
        if (streq(key, "TLS12Ciphers"))
                return set_string(&c->tls12_ciphers, value);
        if (streq(key, "TLS13Ciphers"))
                return set_string(&c->tls13_ciphers, value);
        if (streq(key, "DNS")) {
                _cleanup_(nw_resolver_freep) NwResolver *check = NULL;

                r = nw_resolver_new(NULL, NULL, value, &check); /* the same parser, so a bad item names its line */
                if (r < 0)
                        return r;
                return set_string(&c->dns_servers, value);
        }
        if (streq(key, "TLSMiddleboxCompatibility")) {
                r = parse_boolean(value);
                if (r >= 0)
                        c->tls_middlebox_compat = r;
                return r;
        }
        if (streq(key, "ConnectTimeout"))
                return set_ms(&l->connect_timeout_ms, value);
        if (streq(key, "TotalTimeout"))
                return set_ms(&l->total_timeout_ms, value);
        if (streq(key, "StallTimeout")) {
                r = set_ms(&ms, value);
                if (r < 0)
                        return r;
                l->stall_timeout_s = MAX(ms / 1000, 1U);
                return 0;
        }
        if (streq(key, "StallMinBytesPerSecond"))
                return parse_count(value, 1U << 30, &l->stall_min_bytes);
        if (streq(key, "MaxRequestSize"))
                return set_size(&l->max_request_bytes, value, 16U << 20);
        if (streq(key, "MaxReplySize"))
                return set_size(&l->max_reply_bytes, value, 16U << 20);
        if (streq(key, "MaxReplyDepth"))
                return set_unsigned(&l->max_depth, value, 256);
        if (streq(key, "MaxReplyElements"))
                return set_unsigned(&l->max_elements, value, 1U << 20);
        if (streq(key, "MaxHeaders"))
                return set_unsigned(&l->max_headers, value, 1024);
        if (streq(key, "MaxHeaderLine"))
                return set_size(&l->max_header_line, value, 1U << 20);
        if (streq(key, "MaxRetryAfter")) {
                uint64_t v;
                r = parse_count(value, 7 * 86400, &v);
                if (r >= 0)
                        l->max_retry_after = (uint32_t) v;
                return r;
        }
        return -ENOKEY;
}

static char *strip(char *s) {
        char *e;

        s += strspn(s, " \t");
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                *--e = '\0';
        return s;
}

int nw_config_parse(const char *text, NwConfig **ret, unsigned *ret_error_line) {
        _cleanup_(nw_config_freep) NwConfig *c = NULL;
        _cleanup_free_ char *copy = NULL;
        char *line, *save = NULL;
        unsigned lineno = 0;
        int r;

        assert(text);
        assert(ret);

        if (ret_error_line)
                *ret_error_line = 0;
        c = calloc(1, sizeof(*c));
        copy = strdup(text);
        if (!c || !copy)
                return -ENOMEM;
        c->limits = NW_LIMITS_DEFAULT;
        c->tls_middlebox_compat = false; /* a CONNECT tunnel or a plain route: no TLS-inspecting box */
        if (set_string(&c->tls_groups, NW_DEFAULT_TLS_GROUPS) < 0 ||
            set_string(&c->tls_sigalgs, NW_DEFAULT_TLS_SIGALGS) < 0 ||
            set_string(&c->tls12_ciphers, NW_DEFAULT_TLS12_CIPHERS) < 0 ||
            set_string(&c->tls13_ciphers, NW_DEFAULT_TLS13_CIPHERS) < 0)
                return -ENOMEM;

        /* strtok_r would merge empty lines and miscount: split by hand. */
        for (line = copy; line; line = save) {
                char *eq, *key, *value;

                save = strchr(line, '\n');
                if (save)
                        *save++ = '\0';
                lineno++;
                line = strip(line);
                if (line[0] == '\0' || line[0] == '#')
                        continue;
                eq = strchr(line, '=');
                if (ret_error_line)
                        *ret_error_line = lineno;
                if (!eq)
                        return -EINVAL;
                *eq = '\0';
                key = strip(line);
                value = strip(eq + 1);
                r = apply(c, key, value);
                if (r < 0)
                        return r;
        }
        if (ret_error_line)
                *ret_error_line = 0;

        if (!c->ca_store)
                return -EDESTADDRREQ; /* CACertificates= is required */
        if (!c->client_cert != !c->client_key)
                return -ENOKEY;       /* a certificate needs its key and the other way round */
        if (c->client_cert && X509_check_private_key(c->client_cert, c->client_key) != 1) {
                ERR_clear_error();
                return -EKEYREJECTED;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int nw_config_load(const char *path, NwConfig **ret, unsigned *ret_error_line) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        assert(path);
        r = read_small_file_at(AT_FDCWD, path, CONFIG_MAX_BYTES, &text, &size);
        if (r < 0)
                return r;
        if (strlen(text) != size)
                return -EBADMSG;
        return nw_config_parse(text, ret, ret_error_line);
}
