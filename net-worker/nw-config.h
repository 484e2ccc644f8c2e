/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The net-worker's configuration (callhome-net-worker(8)): read once at start,
 * every file it names loaded into memory, so that nothing is read from disk
 * after the sandbox is locked. The server URL and the proxy are not here:
 * they are the customer's policy, which policyd hands over at run time. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "macro.h"

typedef struct NwLimits {
        uint64_t connect_timeout_ms;   /* TCP connect + proxy CONNECT + TLS handshake */
        uint64_t total_timeout_ms;     /* one whole exchange */
        uint64_t stall_timeout_s;      /* abort when slower than stall_min_bytes per second for this long */
        uint64_t stall_min_bytes;
        size_t max_request_bytes;      /* SOAP request body */
        size_t max_reply_bytes;        /* SOAP reply body */
        unsigned max_depth;            /* reply element nesting */
        unsigned max_elements;         /* reply element count */
        unsigned max_headers;          /* header lines per HTTP response */
        size_t max_header_line;        /* bytes of one header line */
        uint32_t max_retry_after;      /* Retry-After is clamped to [1, this] seconds */
} NwLimits;

#define NW_LIMITS_DEFAULT                                                                                    \
        ((NwLimits) {                                                                                        \
                .connect_timeout_ms = 30000,                                                                 \
                .total_timeout_ms = 300000,                                                                  \
                .stall_timeout_s = 30,                                                                       \
                .stall_min_bytes = 1,                                                                        \
                .max_request_bytes = 1U << 20,                                                               \
                .max_reply_bytes = 1U << 20,                                                                 \
                .max_depth = 16,                                                                             \
                .max_elements = 4096,                                                                        \
                .max_headers = 64,                                                                           \
                .max_header_line = 8192,                                                                     \
                .max_retry_after = 86400,                                                                    \
        })

typedef struct NwConfig {
        X509_STORE *ca_store;      /* the pinned CA bundle: the only trust the client has */
        char *pinned_public_keys;  /* "sha256//<base64>;…", or NULL */
        X509 *client_cert;
        STACK_OF(X509) *client_chain; /* intermediates after the leaf in the PEM, may be empty */
        EVP_PKEY *client_key;
        char *tls_groups;          /* OpenSSL lists; the defaults below keep the ClientHello small */
        char *tls_sigalgs;
        char *tls12_ciphers;
        char *tls13_ciphers;
        bool tls_middlebox_compat; /* RFC 8446 D.4: a fake session id and ChangeCipherSpec records */
        char *dns_servers;         /* "ADDRESS[:PORT] …" instead of resolv.conf's, or NULL */
        NwLimits limits;
} NwConfig;

/* What a callhome server needs (ECDSA or RSA certificates, ECDHE with AES-GCM or
 * ChaCha20), and no more: every entry costs ClientHello bytes on each check-in.
 * Groups: X25519 and P-256, the one TLS 1.3 requires of every server (RFC 8446,
 * 9.1). Signatures: the vendor's PKI is ECDSA P-256 with SHA-256 throughout; beside
 * it, the two RSA ones TLS 1.3 requires (RSA-PSS for handshakes, PKCS#1 v1.5 in
 * certificates), so a server with an RSA key still works. */
#define NW_DEFAULT_TLS_GROUPS "X25519:P-256"
#define NW_DEFAULT_TLS_SIGALGS "ECDSA+SHA256:rsa_pss_rsae_sha256:RSA+SHA256"
/* Ciphers: AES-128-GCM (every TLS 1.3 server has it, RFC 8446 9.1; RFC 9325's choice
 * for TLS 1.2) and ChaCha20-Poly1305 (for CPUs without AES instructions). No
 * AES-256: with X25519 or P-256 and SHA-256 signatures the connection stands at
 * the 128-bit level whatever the cipher; a site that requires the 192-bit level
 * lists P-384, ECDSA+SHA384 and the AES-256 suites together. The SHA-256 TLS 1.3
 * suites also make each Finished and the PSK binder of a resumption 16 bytes
 * shorter than TLS_AES_256_GCM_SHA384's. */
#define NW_DEFAULT_TLS12_CIPHERS                                                                    \
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:" \
        "ECDHE-RSA-CHACHA20-POLY1305"
#define NW_DEFAULT_TLS13_CIPHERS "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"

NwConfig *nw_config_free(NwConfig *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(NwConfig *, nw_config_free);

/* Parses the text of a configuration file (no I/O besides loading the files it
 * names). On failure *ret_error_line says which line (0: not a line's fault):
 *   -ENOKEY unknown key (on a line), or a certificate without its key;
 *   -EDESTADDRREQ no CACertificates=; -EKEYREJECTED key and certificate do not match;
 *   a file's own error (-ENOENT, -EBADMSG …) on the line that names it. */
int nw_config_parse(const char *text, NwConfig **ret, unsigned *ret_error_line);

/* Reads the file at path and parses it. */
int nw_config_load(const char *path, NwConfig **ret, unsigned *ret_error_line);

/* The pieces, also usable on their own (tests). */
int nw_config_load_ca(NwConfig *c, const char *path);
int nw_config_load_client_cert(NwConfig *c, const char *path);
int nw_config_load_client_key_pem(NwConfig *c, const char *path);
int nw_config_load_client_key_uri(NwConfig *c, const char *uri);
/* "sha256//<44 base64 characters>" items separated by ';' */
int nw_config_set_pins(NwConfig *c, const char *pins);
