/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTPS client's TLS set-up: curl's SSL_CTX callback (trust, host check, client cert, groups, sigalgs). */
#include <string.h>

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "nw-client-internal.h"

int nw_client_ssl_ctx_index = -1;

static void on_tls_info(const SSL *ssl, int where, int ret) {
        NwClient *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), nw_client_ssl_ctx_index);

        if (!c)
                return;
        if ((where & SSL_CB_READ_ALERT) && (ret >> 8) == SSL3_AL_FATAL)
                c->tls_alert = ret & 0xff;
        if (where & SSL_CB_HANDSHAKE_DONE) {
                c->handshake_done = true;
                c->tls13 = SSL_version(ssl) == TLS1_3_VERSION;
                c->last.tls_resumed = SSL_session_reused(ssl);
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
