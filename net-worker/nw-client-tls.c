/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTPS client's TLS set-up: curl's SSL_CTX callback (trust, host check, client cert, groups, sigalgs). */
#include <string.h>

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "nw-client-internal.h"

int nw_client_ssl_ctx_index = -1;

/* A ClientHello that resumes a TLS 1.3 session offers only what that session and the
 * full handshake before it used: TLS 1.3 (no TLS 1.2 suites, extended master secret nor
 * second version), the session's suite, the group and the server's signature algorithm
 * of that handshake. 22 bytes less on every resumed check-in. A server that changed since
 * (its session cache lost, and TLS 1.3, that suite or group or its key type with it)
 * refuses it; nw_client_tls_widen() then has the handshake made again offering everything
 * configured, which is the offer of a first contact: nothing is downgraded. */
static void narrow_for_resumption(NwClient *c, SSL *ssl) {
        SSL_SESSION *s = SSL_get_session(ssl);
        const SSL_CIPHER *suite = s ? SSL_SESSION_get0_cipher(s) : NULL;

        c->narrowed = false;
        if (c->wide || !suite || SSL_SESSION_get_protocol_version(s) != TLS1_3_VERSION ||
            !SSL_SESSION_is_resumable(s))
                return;
        if (SSL_set_min_proto_version(ssl, TLS1_3_VERSION) != 1)
                return;
        c->narrowed = true;
        (void) SSL_set_ciphersuites(ssl, SSL_CIPHER_get_name(suite));
        SSL_set_options(ssl, SSL_OP_NO_EXTENDED_MASTER_SECRET); /* TLS 1.2's alone */
        if (c->resume_group)
                (void) SSL_set1_groups(ssl, &c->resume_group, 1);
        if (c->resume_sig) {
                int sigalg[2] = { c->resume_hash, c->resume_sig };

                (void) SSL_set1_sigalgs(ssl, sigalg, 2);
        }
}

/* What a TLS 1.3 handshake used, for the next resumption: its group, and the server's
 * signature algorithm of a full one (a resumption signs nothing). Narrowing is back on
 * after any such handshake: one refused narrow hello (a server that changed, or only a
 * connection cut mid-handshake) does not keep every later one wide. */
static void remember_handshake(NwClient *c, const SSL *ssl, bool resumed) {
        int group = SSL_get_negotiated_group((SSL *) ssl), sig = 0, hash = 0;

        c->wide = false;
        if (group > 0)
                c->resume_group = group;
        if (resumed)
                return;
        if (SSL_get_peer_signature_type_nid(ssl, &sig) == 1 && SSL_get_peer_signature_nid((SSL *) ssl, &hash) == 1) {
                c->resume_sig = sig;
                c->resume_hash = hash;
        } else
                c->resume_sig = c->resume_hash = 0;
}

void nw_client_tls_forget(NwClient *c) {
        c->resume_group = c->resume_sig = c->resume_hash = 0;
        c->wide = false;
}

bool nw_client_tls_widen(NwClient *c, CURLcode code) {
        if (!c->narrowed || c->handshake_done || code != CURLE_SSL_CONNECT_ERROR)
                return false;
        c->narrowed = false;
        c->wide = true;
        return true;
}

static void on_tls_info(const SSL *ssl, int where, int ret) {
        NwClient *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), nw_client_ssl_ctx_index);

        if (!c)
                return;
        /* before the ClientHello is built, after curl has set the session to resume */
        if (where & SSL_CB_HANDSHAKE_START)
                narrow_for_resumption(c, (SSL *) ssl);
        if ((where & SSL_CB_READ_ALERT) && (ret >> 8) == SSL3_AL_FATAL)
                c->tls_alert = ret & 0xff;
        if (where & SSL_CB_HANDSHAKE_DONE) {
                c->handshake_done = true;
                c->tls13 = SSL_version(ssl) == TLS1_3_VERSION;
                c->last.tls_resumed = SSL_session_reused(ssl);
                if (c->tls13)
                        remember_handshake(c, ssl, c->last.tls_resumed);
        }
}

/* Whether the suites configured include a CBC (not AEAD) one. */
static bool offers_cbc_suite(SSL_CTX *ctx) {
        STACK_OF(SSL_CIPHER) *suites = SSL_CTX_get_ciphers(ctx);

        for (int i = 0; i < sk_SSL_CIPHER_num(suites); i++) {
                const SSL_CIPHER *s = sk_SSL_CIPHER_value(suites, i);

                if (!SSL_CIPHER_is_aead(s)) /* TLS 1.3 suites all are */
                        return true;
        }
        return false;
}

/* Called by curl for each new SSL_CTX, before the handshake: trust only the
 * pinned store, present our certificate and key from memory, keep the
 * ClientHello to the groups and algorithms configured, and watch alerts. */
CURLcode nw_client_on_ssl_ctx(CURL *curl, void *sslctx, void *userdata) {
        NwClient *c = userdata;
        const NwConfig *cfg = c->config;
        SSL_CTX *ctx = sslctx;

        if (!SSL_CTX_set_ex_data(ctx, nw_client_ssl_ctx_index, c))
                return CURLE_SSL_CERTPROBLEM;
        SSL_CTX_set1_cert_store(ctx, cfg->ca_store);
        /* OpenSSL checks the host name in the handshake, so a mismatch fails before our
         * certificate is sent, with its own verify error; curl checks it again afterwards. */
        if (c->server_host) {
                X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
                int ok;

                X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                if (c->server_host[0] == '[' || strspn(c->server_host, "0123456789.") == strlen(c->server_host)) {
                        _cleanup_free_ char *ip = strndup(c->server_host + (c->server_host[0] == '['),
                                                          strlen(c->server_host) - 2 * (c->server_host[0] == '['));
                        ok = ip && X509_VERIFY_PARAM_set1_ip_asc(param, ip) == 1;
                } else
                        ok = X509_VERIFY_PARAM_set1_host(param, c->server_host, 0) == 1;
                if (!ok)
                        return CURLE_SSL_CERTPROBLEM;
        }
        if (cfg->client_cert) {
                if (SSL_CTX_use_certificate(ctx, cfg->client_cert) != 1 ||
                    SSL_CTX_use_PrivateKey(ctx, cfg->client_key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
                        return CURLE_SSL_CERTPROBLEM;
                if (cfg->client_chain && sk_X509_num(cfg->client_chain) > 0 &&
                    SSL_CTX_set1_chain(ctx, cfg->client_chain) != 1)
                        return CURLE_SSL_CERTPROBLEM;
        }
        if (cfg->tls_groups && SSL_CTX_set1_groups_list(ctx, cfg->tls_groups) != 1)
                return CURLE_SSL_CIPHER;
        if (cfg->tls_sigalgs && SSL_CTX_set1_sigalgs_list(ctx, cfg->tls_sigalgs) != 1)
                return CURLE_SSL_CIPHER;
        /* curl sets SSL_OP_ALL, whose padding extension pads every ClientHello between
         * 256 and 511 bytes to 512 (a workaround for one vendor's old load balancers):
         * a resumed check-in's largest single cost. */
        SSL_CTX_clear_options(ctx, SSL_OP_TLSEXT_PADDING);
        if (!cfg->tls_middlebox_compat)
                SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_MIDDLEBOX_COMPAT);
        /* encrypt_then_mac only changes CBC suites (RFC 7366): without one offered, it is
         * 4 bytes on every ClientHello for nothing. */
        if (!offers_cbc_suite(ctx))
                SSL_CTX_set_options(ctx, SSL_OP_NO_ENCRYPT_THEN_MAC);
        /* curl offers TLS 1.3 post-handshake client authentication; we present our
         * certificate in the handshake and answer no later request for it (4 bytes). */
        SSL_CTX_set_post_handshake_auth(ctx, 0);
        /* TLS secrets go nowhere, whatever $SSLKEYLOGFILE said when curl started. */
        SSL_CTX_set_keylog_callback(ctx, NULL);
        SSL_CTX_set_info_callback(ctx, on_tls_info);
        return CURLE_OK;
}
