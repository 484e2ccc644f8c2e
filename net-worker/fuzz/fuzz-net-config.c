/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the net-worker's configuration parser. The input is the
 * file's text, then optionally a NUL and the bytes of a PEM file the text may
 * name as @@input.pem. "@@" stands for a private directory holding also
 * ca.pem (a self-signed certificate), cert.pem (a certificate and a chain
 * certificate after it), key.pem (its key) and other-key.pem (another key).
 * Inputs with a '/' are skipped, so that nothing outside that directory (and
 * the current one) is ever read. */
#include <assert.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "nw-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/fuzz-net-config.XXXXXX";

static EVP_PKEY *new_key(void) {
        EVP_PKEY *k = EVP_EC_gen("P-256");
        assert(k);
        return k;
}

static X509 *new_cert(EVP_PKEY *key, const char *cn) {
        X509 *x = X509_new();
        X509_NAME *name;

        assert(x);
        assert(X509_set_version(x, 2) == 1);
        assert(ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1);
        assert(X509_gmtime_adj(X509_getm_notBefore(x), 0) && X509_gmtime_adj(X509_getm_notAfter(x), 86400));
        name = X509_get_subject_name(x);
        assert(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0) == 1);
        assert(X509_set_issuer_name(x, name) == 1);
        assert(X509_set_pubkey(x, key) == 1);
        assert(X509_sign(x, key, EVP_sha256()) > 0);
        return x;
}

static FILE *open_in_dir(const char *name) {
        char path[sizeof(dir) + 32];
        FILE *f;

        (void) snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        assert(f);
        return f;
}

static void remove_dir(void) {
        static const char *const names[] = { "ca.pem", "cert.pem", "key.pem", "other-key.pem", "input.pem" };
        char path[sizeof(dir) + 32];

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                (void) snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                (void) unlink(path);
        }
        (void) rmdir(dir);
}

static void setup(void) {
        EVP_PKEY *key = new_key(), *other = new_key();
        X509 *cert = new_cert(key, "device"), *ca = new_cert(other, "ca");
        FILE *f;

        assert(mkdtemp(dir));
        (void) atexit(remove_dir);
        f = open_in_dir("ca.pem");
        assert(PEM_write_X509(f, ca) == 1 && fclose(f) == 0);
        f = open_in_dir("cert.pem");
        assert(PEM_write_X509(f, cert) == 1 && PEM_write_X509(f, ca) == 1 && fclose(f) == 0);
        f = open_in_dir("key.pem");
        assert(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1 && fclose(f) == 0);
        f = open_in_dir("other-key.pem");
        assert(PEM_write_PrivateKey(f, other, NULL, NULL, 0, NULL, NULL) == 1 && fclose(f) == 0);
        X509_free(cert);
        X509_free(ca);
        EVP_PKEY_free(key);
        EVP_PKEY_free(other);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool initialized = false;
        const uint8_t *nul = memchr(data, '\0', size);
        size_t text_size = nul ? (size_t) (nul - data) : size, n = 0;
        NwConfig *c = NULL;
        unsigned line;
        char *text;
        FILE *f;
        int r;

        if (memchr(data, '/', text_size))
                return 0;
        if (!initialized) {
                setup();
                initialized = true;
        }

        /* the text with each "@@" made the directory's path */
        text = malloc(text_size * sizeof(dir) / 2 + 1);
        assert(text);
        for (size_t i = 0; i < text_size; i++) {
                if (data[i] == '@' && i + 1 < text_size && data[i + 1] == '@') {
                        n += (size_t) sprintf(text + n, "%s/", dir);
                        i++;
                } else
                        text[n++] = (char) data[i];
        }
        text[n] = '\0';

        f = open_in_dir("input.pem");
        if (nul)
                assert(fwrite(nul + 1, 1, size - text_size - 1, f) == size - text_size - 1);
        assert(fclose(f) == 0);

        r = nw_config_parse(text, &c, &line);
        if (r >= 0) {
                /* what parses is whole: the trust it needs, a key that matches its certificate */
                assert(c->ca_store && line == 0);
                assert(!c->client_cert == !c->client_key);
                assert(c->tls_groups && c->tls_sigalgs && c->tls12_ciphers);
                assert(c->limits.max_headers >= 1 && c->limits.max_header_line >= 1 && c->limits.max_retry_after >= 1);
                nw_config_free(c);
        }
        free(text);
        return 0;
}
