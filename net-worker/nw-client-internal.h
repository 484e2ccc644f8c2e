/* SPDX-License-Identifier: Apache-2.0 */
/* Private to the HTTPS client (nw-client*.c): struct NwClient and what its files share. */
#pragma once

#include <curl/curl.h>

#include "http-parse.h"
#include "nw-client.h"
#include "nw-resolve.h"

struct NwClient {
        const NwConfig *config;
        CURL *curl;
        struct curl_slist *headers;
        struct curl_slist *proxy_headers;
        char *server_url;
        char *server_host;  /* checked by OpenSSL during the handshake (and by curl after it) */
        unsigned server_port;
        char *proxy_host;
        unsigned proxy_port;
        NwResolver *resolver;
        struct curl_slist *resolve;
        NwProgressFunc progress;
        void *progress_userdata;
        char *proxy_user;
        char *proxy_password;
        bool fresh_connection;
        char errbuf[CURL_ERROR_SIZE];

        /* the exchange under way */
        char *body;
        size_t body_size, body_alloc;
        bool body_too_large;
        NwHttpHeaders http;
        int tls_alert;  /* description of the last fatal alert received, -1 if none */
        bool handshake_done;
        bool tls13;

        /* What the last TLS 1.3 handshake with this server used (nw-client-tls.c): a
         * resumption offers only that. narrowed: this handshake's ClientHello was so cut;
         * wide: such a one was refused, so offer everything until a TLS 1.3 handshake
         * completes. */
        int resume_group, resume_sig, resume_hash;
        bool narrowed, wide;

        NwExchangeInfo last;

        /* driven by an sd-event loop (nw_client_attach_event) */
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer, *defer;
        SoapOperation op;       /* of the exchange under way */
        char *request;          /* its body, which curl borrows */
        NwCallDone done;        /* non-NULL while an exchange is under way */
        void *done_userdata;
        NwDownload *download;   /* non-NULL while a download is under way */
};

/* nw-client-tls.c: the SSL_CTX ex_data index under which the client is kept,
 * and curl's CURLOPT_SSL_CTX_FUNCTION. */
extern int nw_client_ssl_ctx_index;
CURLcode nw_client_on_ssl_ctx(CURL *curl, void *sslctx, void *userdata);
/* Forgets what the last full handshake used (the server changed). */
void nw_client_tls_forget(NwClient *c);
/* True if a transfer that ended with code failed in a narrowed handshake (the server
 * changed since the session began): the next handshake offers everything configured. */
bool nw_client_tls_widen(NwClient *c, CURLcode code);

/* nw-client-error.c: a failed transfer as an NwError; returns the negative errno. */
int nw_client_transfer_error(NwClient *c, CURLcode code, NwError *err);
