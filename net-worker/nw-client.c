/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "http-parse.h"
#include "log.h"
#include "nw-client.h"
#include "nw-resolve.h"
#include "nw-client-internal.h"

static NwDownload *download_free(NwDownload *d);
static void exchange_cancel(NwClient *c);

#define NW_BODY_KEEP (64U * 1024)

/* A software range (or a refused huge reply) leaves a buffer of hundreds of KiB:
 * not kept between exchanges. */
static void body_release(NwClient *c) {
        if (c->body_alloc > NW_BODY_KEEP) {
                free(c->body);
                c->body = NULL;
                c->body_alloc = c->body_size = 0;
        }
}

static void erase_string(char **s) {
        if (*s) {
                erase_and_free(*s, strlen(*s));
                *s = NULL;
        }
}

bool nw_client_busy(const NwClient *c) {
        assert(c);
        return c->done || c->download;
}

static int busy(const NwClient *c, NwError *err) {
        if (!nw_client_busy(c))
                return 0;
        return nw_error_set(err, -EBUSY, NW_ERROR_BUSY, "Another exchange is under way");
}

/* libcurl's memory is wiped when libcurl frees it: it holds copies of the proxy
 * credentials (and the Proxy-Authorization header made of them), which would
 * otherwise stay in freed heap until reused. */
static void curl_wiping_free(void *p) {
        if (p) {
                explicit_bzero(p, malloc_usable_size(p));
                free(p);
        }
}

static void *curl_wiping_realloc(void *p, size_t n) {
        void *q;

        if (!p)
                return malloc(n);
        q = malloc(MAX(n, (size_t) 1));
        if (!q)
                return NULL;
        memcpy(q, p, MIN(malloc_usable_size(p), n));
        curl_wiping_free(p);
        return q;
}

NwClient *nw_client_free(NwClient *c) {
        if (!c)
                return NULL;
        if (c->multi) {
                /* An exchange under way when the daemon stops: its caller is answered, and
                 * whatever it holds is freed. */
                if (c->done)
                        (void) curl_multi_remove_handle(c->multi, c->curl);
                if (c->done || c->download)
                        exchange_cancel(c);
                curl_multi_cleanup(c->multi);
        }
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->defer);
        sd_event_unref(c->event);
        download_free(c->download);
        free(c->request);
        if (c->curl)
                curl_easy_cleanup(c->curl);
        curl_slist_free_all(c->headers);
        curl_slist_free_all(c->proxy_headers);
        curl_slist_free_all(c->resolve);
        free(c->server_url);
        free(c->server_host);
        free(c->proxy_host);
        erase_string(&c->proxy_user);
        erase_string(&c->proxy_password);
        free(c->body);
        free(c);
        return NULL;
}

/* ---- callbacks ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
        NwClient *c = userdata;
        size_t n = size * nmemb, max = c->config->limits.max_reply_bytes;

        if (n > max - c->body_size) {
                c->body_too_large = true;
                return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
        }
        if (c->body_size + n + 1 > c->body_alloc) {
                size_t a = MAX(c->body_alloc * 2, 4096U);
                char *b;

                while (a < c->body_size + n + 1)
                        a *= 2;
                a = MIN(a, max + 1);
                b = realloc(c->body, a);
                if (!b)
                        return 0;
                c->body = b;
                c->body_alloc = a;
        }
        memcpy(c->body + c->body_size, ptr, n);
        c->body_size += n;
        c->body[c->body_size] = '\0';
        return n;
}

static size_t on_header(char *buffer, size_t size, size_t nitems, void *userdata) {
        NwClient *c = userdata;
        size_t n = size * nitems;

        return nw_http_header_line(&c->http, &c->config->limits, buffer, n, time(NULL)) ? n : 0;
}

/* ---- set-up ---- */

#define SETOPT(c, opt, val)                                                 \
        do {                                                                \
                if (curl_easy_setopt((c)->curl, (opt), (val)) != CURLE_OK)  \
                        return -EOPNOTSUPP;                                 \
        } while (0)

static int configure(NwClient *c) {
        const NwLimits *l = &c->config->limits;

        SETOPT(c, CURLOPT_NOSIGNAL, 1L);
        SETOPT(c, CURLOPT_ERRORBUFFER, c->errbuf);
        SETOPT(c, CURLOPT_PROTOCOLS_STR, "https");
        SETOPT(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
        SETOPT(c, CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(c, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
        SETOPT(c, CURLOPT_SSL_ENABLE_ALPN, 0L); /* HTTP/1.1 only: a smaller ClientHello */
        SETOPT(c, CURLOPT_HTTP_CONTENT_DECODING, 0L);
        SETOPT(c, CURLOPT_HTTP_TRANSFER_DECODING, 1L);
        SETOPT(c, CURLOPT_ACCEPT_ENCODING, NULL);
        SETOPT(c, CURLOPT_COOKIEFILE, NULL);
        SETOPT(c, CURLOPT_POST, 1L);
        SETOPT(c, CURLOPT_HTTPHEADER, c->headers);
        SETOPT(c, CURLOPT_PROXYHEADER, c->proxy_headers);
        SETOPT(c, CURLOPT_HEADEROPT, (long) CURLHEADER_SEPARATE);
        SETOPT(c, CURLOPT_WRITEFUNCTION, on_body);
        SETOPT(c, CURLOPT_WRITEDATA, c);
        SETOPT(c, CURLOPT_HEADERFUNCTION, on_header);
        SETOPT(c, CURLOPT_HEADERDATA, c);
        SETOPT(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) l->max_reply_bytes);
        SETOPT(c, CURLOPT_MAXCONNECTS, 1L);

        /* TLS: 1.2 at least, host name checked, the pinned CA only: no CA file, path or
         * system default for curl to load; the one store is the pinned one that
         * on_ssl_ctx() sets (a CAINFO_BLOB as well would have curl parse the PEM again
         * on every connection: 30% of a resumed check-in's instructions). */
        SETOPT(c, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
        SETOPT(c, CURLOPT_SSL_VERIFYPEER, 1L);
        SETOPT(c, CURLOPT_SSL_VERIFYHOST, 2L);
        SETOPT(c, CURLOPT_CAINFO, NULL);
        SETOPT(c, CURLOPT_CAPATH, NULL);
        SETOPT(c, CURLOPT_CA_CACHE_TIMEOUT, 0L);
        SETOPT(c, CURLOPT_SSL_CTX_FUNCTION, nw_client_on_ssl_ctx);
        SETOPT(c, CURLOPT_SSL_CTX_DATA, c);
        SETOPT(c, CURLOPT_SSL_SESSIONID_CACHE, 1L);
        if (c->config->pinned_public_keys)
                SETOPT(c, CURLOPT_PINNEDPUBLICKEY, c->config->pinned_public_keys);
        if (c->config->tls12_ciphers)
                SETOPT(c, CURLOPT_SSL_CIPHER_LIST, c->config->tls12_ciphers);
        if (c->config->tls13_ciphers)
                SETOPT(c, CURLOPT_TLS13_CIPHERS, c->config->tls13_ciphers);

        /* Proxy: none until policyd sets one, and never from the environment. */
        SETOPT(c, CURLOPT_PROXY, "");
        SETOPT(c, CURLOPT_NOPROXY, "");

        /* Timeouts: connect (includes the proxy's CONNECT and the TLS handshake), stall, total. */
        SETOPT(c, CURLOPT_CONNECTTIMEOUT_MS, (long) l->connect_timeout_ms);
        SETOPT(c, CURLOPT_TIMEOUT_MS, (long) l->total_timeout_ms);
        SETOPT(c, CURLOPT_LOW_SPEED_LIMIT, (long) l->stall_min_bytes);
        SETOPT(c, CURLOPT_LOW_SPEED_TIME, (long) l->stall_timeout_s);
        return 0;
}

int nw_client_new(const NwConfig *config, NwClient **ret) {
        _cleanup_(nw_client_freep) NwClient *c = NULL;
        static const char *const headers[] = {
                "Content-Type: text/xml; charset=utf-8",
                "SOAPAction: \"\"",
                "Accept:", /* curl's default "Accept: * / *": the protocol needs none */
                "Expect:", /* no 100-continue round trip */
        };
        int r;

        assert(config);
        assert(config->ca_store);
        assert(ret);

        /* libcurl opens $SSLKEYLOGFILE at its global init and writes every TLS secret there. */
        (void) unsetenv("SSLKEYLOGFILE");
        if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, curl_wiping_free, curl_wiping_realloc, strdup,
                                 calloc) != CURLE_OK)
                return -EIO;
        if (nw_client_ssl_ctx_index < 0) {
                nw_client_ssl_ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
                if (nw_client_ssl_ctx_index < 0)
                        return -ENOMEM;
        }

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->config = config;
        c->tls_alert = -1;
        c->curl = curl_easy_init();
        if (!c->curl)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(headers); i++) {
                struct curl_slist *l = curl_slist_append(c->headers, headers[i]);
                if (!l)
                        return -ENOMEM;
                c->headers = l;
        }
        c->proxy_headers = curl_slist_append(NULL, "Proxy-Connection:");
        if (!c->proxy_headers)
                return -ENOMEM;

        r = configure(c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(CURLU *, curl_url_cleanup);

static int check_url(const char *url, const char *scheme, char **ret_host, unsigned *ret_port, NwError *err) {
        _cleanup_(curl_url_cleanupp) CURLU *u = curl_url();
        char *part = NULL;
        bool ok;

        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
                return nw_error_set(err, -EINVAL, NW_ERROR_INVALID_REQUEST, "Not a URL");
        if (curl_url_get(u, CURLUPART_SCHEME, &part, 0) != CURLUE_OK)
                return nw_error_set(err, -EINVAL, NW_ERROR_INVALID_REQUEST, "URL has no scheme");
        ok = streq(part, scheme);
        curl_free(part);
        if (!ok)
                return nw_error_set(err, -EINVAL, NW_ERROR_INVALID_REQUEST, "URL scheme must be %s", scheme);
        part = NULL;
        if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK || curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK) {
                curl_free(part);
                return nw_error_set(err, -EINVAL, NW_ERROR_INVALID_REQUEST,
                                    "URL carries credentials; pass them separately");
        }
        if (ret_host) {
                char *h = NULL, *copy;

                if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK)
                        return nw_error_set(err, -EINVAL, NW_ERROR_INVALID_REQUEST, "URL has no host");
                copy = strdup(h);
                curl_free(h);
                if (!copy)
                        return -ENOMEM;
                *ret_host = copy;
        }
        if (ret_port) {
                char *p = NULL;
                unsigned port = 0;

                if (curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK)
                        return nw_error_set(err, -EINVAL, NW_ERROR_INVALID_REQUEST, "URL has no port");
                port = (unsigned) strtoul(p, NULL, 10);
                curl_free(p);
                *ret_port = port;
        }
        return 0;
}

int nw_client_set_server(NwClient *c, const char *url, NwError *err) {
        _cleanup_free_ char *copy = NULL, *host = NULL;
        unsigned port = 0;
        int r;

        assert(c);
        assert(url);

        r = busy(c, err);
        if (r < 0)
                return r;
        r = check_url(url, "https", &host, &port, err);
        if (r < 0)
                return r;
        copy = strdup(url);
        if (!copy)
                return -ENOMEM;
        if (curl_easy_setopt(c->curl, CURLOPT_URL, copy) != CURLE_OK)
                return -ENOMEM;
        /* Another server: what the last handshake with this one used is no guide (curl's
         * sessions are kept per host and port too). */
        if (!streq_ptr(c->server_host, host) || c->server_port != port)
                nw_client_tls_forget(c);
        free(c->server_url);
        free(c->server_host);
        c->server_url = TAKE_PTR(copy);
        c->server_host = TAKE_PTR(host);
        c->server_port = port;
        c->fresh_connection = true;
        return 0;
}

int nw_client_set_proxy(NwClient *c, const char *url, const char *user, const char *password, NwError *err) {
        _cleanup_free_ char *host = NULL;
        char *u = NULL, *p = NULL;
        unsigned port = 0;
        int r;

        assert(c);

        r = busy(c, err);
        if (r < 0)
                return r;
        if (url) {
                r = check_url(url, "http", &host, &port, err);
                if (r < 0)
                        return r;
                if (user && !(u = strdup(user)))
                        return -ENOMEM;
                if (password && !(p = strdup(password))) {
                        erase_string(&u);
                        return -ENOMEM;
                }
        }
        free(c->proxy_host);
        c->proxy_host = TAKE_PTR(host);
        c->proxy_port = port;
        /* The old credentials go first, whatever happens next. */
        erase_string(&c->proxy_user);
        erase_string(&c->proxy_password);
        c->proxy_user = u;
        c->proxy_password = p;

        /* No user name: only Negotiate, with the Kerberos ticket of the default credential
         * cache (curl tries a proxy's schemes only when it has a user name: an empty one,
         * then; no password is involved). A user name: whatever the proxy offers. */
        if (curl_easy_setopt(c->curl, CURLOPT_PROXY, url ?: "") != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_PROXYTYPE, (long) CURLPROXY_HTTP) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_HTTPPROXYTUNNEL, url ? 1L : 0L) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_PROXYAUTH, (long) (c->proxy_user ? CURLAUTH_ANY : CURLAUTH_NEGOTIATE)) !=
                    CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_PROXYUSERNAME, c->proxy_user ?: (url ? "" : NULL)) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_PROXYPASSWORD, c->proxy_password ?: (url ? "" : NULL)) != CURLE_OK)
                return -ENOMEM;
        c->fresh_connection = true;
        return 0;
}

void nw_client_set_resolver(NwClient *c, NwResolver *resolver) {
        assert(c);
        c->resolver = resolver;
}

static int on_xferinfo(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        NwClient *c = userdata;

        c->progress(c->progress_userdata);
        return 0;
}

int nw_client_set_progress(NwClient *c, NwProgressFunc fn, void *userdata) {
        assert(c);

        c->progress = fn;
        c->progress_userdata = userdata;
        if (curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, fn ? on_xferinfo : NULL) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, fn ? 0L : 1L) != CURLE_OK)
                return -EOPNOTSUPP;
        return 0;
}

/* The one name curl must resolve (the proxy's when there is one: the proxy resolves
 * the server's under CONNECT) is resolved by our resolver, which opens no file, and
 * handed to curl as a CURLOPT_RESOLVE entry that replaces the previous one. */
static int resolve_target(NwClient *c, NwError *err) {
        const char *host = c->proxy_host ?: c->server_host;
        unsigned port = c->proxy_host ? c->proxy_port : c->server_port;
        _cleanup_free_ char *address = NULL, *entry = NULL;
        struct curl_slist *l;
        bool v6;
        int r;

        if (!c->resolver || !host || host[0] == '[')
                return 0;
        r = nw_resolver_resolve(c->resolver, host, c->config->limits.connect_timeout_ms * 1000, &address);
        if (r < 0)
                return nw_error_set(err, -EHOSTUNREACH, NW_ERROR_UNREACHABLE, "Could not resolve %s %s: %s",
                                    c->proxy_host ? "proxy" : "host", host, strerror(-r));
        v6 = strchr(address, ':');
        if (asprintf(&entry, "%s:%u:%s%s%s", host, port, v6 ? "[" : "", address, v6 ? "]" : "") < 0) {
                entry = NULL;
                return -ENOMEM;
        }
        l = curl_slist_append(NULL, entry);
        if (!l)
                return -ENOMEM;
        if (curl_easy_setopt(c->curl, CURLOPT_RESOLVE, l) != CURLE_OK) {
                curl_slist_free_all(l);
                return -ENOMEM;
        }
        curl_slist_free_all(c->resolve);
        c->resolve = l;
        return 0;
}

void nw_client_drop_connections(NwClient *c) {
        assert(c);
        c->fresh_connection = true;
}

void nw_client_last_exchange(const NwClient *c, NwExchangeInfo *ret) {
        assert(c);
        assert(ret);
        *ret = c->last;
}

/* ---- one exchange ---- */

/* What the transfer about to start fills in. */
static void exchange_reset(NwClient *c) {
        c->body_size = 0;
        c->body_too_large = false;
        c->http = (NwHttpHeaders) {};
        c->tls_alert = -1;
        c->handshake_done = c->tls13 = false;
        c->errbuf[0] = '\0';
        c->last = (NwExchangeInfo) { .handshakes = c->last.handshakes };
}

/* A transfer that failed in a resumption's narrowed handshake (nw-client-tls.c) is
 * started again at once on a new connection, offering everything configured. */
static bool again_wide(NwClient *c, CURLcode code) {
        long connects = 0;

        if (!nw_client_tls_widen(c, code))
                return false;
        log_debug("The server refused a resumption's ClientHello (%s): offering everything configured.",
                  c->errbuf[0] ? c->errbuf : curl_easy_strerror(code));
        (void) curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &connects);
        c->last.handshakes += (unsigned) connects;
        exchange_reset(c);
        return curl_easy_setopt(c->curl, CURLOPT_FRESH_CONNECT, 1L) == CURLE_OK;
}

/* Everything before the transfer: state reset, the name resolved, the body handed
 * to curl (c->request keeps it until the transfer ends). */
static int exchange_begin(NwClient *c, char *body, size_t size, NwError *err) {
        int r;

        if (!c->server_url) {
                free(body);
                return nw_error_set(err, -EDESTADDRREQ, NW_ERROR_INVALID_REQUEST, "No server URL set");
        }
        free(c->request);
        c->request = body;

        exchange_reset(c);

        r = resolve_target(c, err);
        if (r < 0)
                return r;
        if (curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) size) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_FRESH_CONNECT, c->fresh_connection ? 1L : 0L) != CURLE_OK)
                return -ENOMEM;
        return 0;
}

/* Everything after the transfer that ended with code: the figures, the error, the HTTP status. */
static int exchange_end(NwClient *c, CURLcode code, long *ret_status, NwError *err) {
        curl_off_t up = 0, down = 0;
        long status = 0, header_size = 0, request_size = 0, connects = 0;
        const char *type = NULL;

        c->fresh_connection = false;
        free(c->request);
        c->request = NULL;
        /* what the exchange freed (TLS buffers, a big reply's) goes back to the system */
        (void) malloc_trim(0);

        (void) curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &connects);
        (void) curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        (void) curl_easy_getinfo(c->curl, CURLINFO_HEADER_SIZE, &header_size);
        (void) curl_easy_getinfo(c->curl, CURLINFO_REQUEST_SIZE, &request_size);
        (void) curl_easy_getinfo(c->curl, CURLINFO_SIZE_UPLOAD_T, &up);
        (void) curl_easy_getinfo(c->curl, CURLINFO_SIZE_DOWNLOAD_T, &down);
        c->last.handshakes += (unsigned) connects;
        c->last.http_status = status;
        c->last.request_bytes = (uint64_t) request_size;
        c->last.reply_bytes = (uint64_t) header_size + (uint64_t) down;
        if (err)
                err->http_status = status;

        if (code != CURLE_OK)
                return nw_client_transfer_error(c, code, err);

        if (status == 429 || status == 503) {
                if (c->http.retry_after > 0) {
                        uint32_t s = c->http.retry_after;
                        if (err)
                                err->retry_after = s;
                        return nw_error_set(err, -EAGAIN, NW_ERROR_RETRY_AFTER,
                                            "HTTP %ld: server asks to retry after %" PRIu32 " s", status, s);
                }
        }
        if (status != 200 && status != 500) {
                if (status >= 300 && status < 400)
                        return nw_error_set(err, -EBADMSG, NW_ERROR_HTTP_STATUS,
                                            "HTTP %ld: redirects are not followed", status);
                return nw_error_set(err, -EBADMSG, NW_ERROR_HTTP_STATUS, "HTTP %ld", status);
        }
        (void) curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &type);
        if (!nw_http_is_xml(type))
                return nw_error_set(err, -EBADMSG, NW_ERROR_MALFORMED_REPLY,
                                    "HTTP %ld reply is not text/xml", status);
        *ret_status = status;
        return 0;
}

static int call_begin(NwClient *c, const SoapRequest *req, NwError *err) {
        char *body = NULL;
        size_t size;
        int r;

        r = soap_build_request(req, c->config->limits.max_request_bytes, &body, &size, err);
        if (r < 0)
                return r;
        c->op = req->op;
        return exchange_begin(c, body, size, err);
}

/* The exchange that ended with code, to its reply. */
static int call_end(NwClient *c, CURLcode code, SoapReply *ret, NwError *err) {
        SoapParseLimits limits;
        long status = 0;
        int r;

        r = exchange_end(c, code, &status, err);
        if (r < 0) {
                body_release(c);
                return r;
        }

        limits = (SoapParseLimits) {
                .max_size = c->config->limits.max_reply_bytes,
                .max_depth = c->config->limits.max_depth,
                .max_nodes = c->config->limits.max_elements,
        };
        r = soap_parse_reply(c->op, c->body ?: "", c->body_size, &limits, ret, err);
        body_release(c);
        if (r == -EREMOTEIO && err)
                err->http_status = status;
        if (r >= 0 && status != 200) {
                soap_reply_done(ret);
                return nw_error_set(err, -EBADMSG, NW_ERROR_MALFORMED_REPLY, "HTTP %ld without a SOAP Fault", status);
        }
        return r;
}

int nw_client_call(NwClient *c, const SoapRequest *req, SoapReply *ret, NwError *err) {
        CURLcode code;
        int r;

        assert(c);
        assert(req);
        assert(ret);

        r = busy(c, err);
        if (r < 0)
                return r;
        r = call_begin(c, req, err);
        if (r < 0)
                return r;
        code = curl_easy_perform(c->curl);
        if (again_wide(c, code))
                code = curl_easy_perform(c->curl);
        return call_end(c, code, ret, err);
}

/* ---- exchanges driven by an sd-event loop (curl's multi interface) ---- */

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

/* curl says which sockets to watch for what; each has its sd-event source. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userdata, void *socketp) {
        NwClient *c = userdata;
        sd_event_source *s = socketp;
        uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);

        if (what == CURL_POLL_REMOVE) {
                (void) curl_multi_assign(c->multi, fd, NULL);
                sd_event_source_disable_unref(s);
                return 0;
        }
        if (s) {
                if (sd_event_source_set_io_events(s, events) < 0 || sd_event_source_set_enabled(s, SD_EVENT_ON) < 0)
                        return -1;
                return 0;
        }
        if (sd_event_add_io(c->event, &s, fd, events, on_io, c) < 0)
                return -1;
        if (curl_multi_assign(c->multi, fd, s) != CURLM_OK) {
                sd_event_source_disable_unref(s);
                return -1;
        }
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userdata) {
        NwClient *c = userdata;
        uint64_t now;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        if (sd_event_now(c->event, CLOCK_MONOTONIC, &now) < 0)
                return -1;
        if (sd_event_source_set_time(c->timer, now + (uint64_t) timeout_ms * 1000) < 0 ||
            sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

static void call_complete(NwClient *c, CURLcode code);

/* A transfer that ended: taken out of the multi handle (its connection stays in the
 * multi's cache for the next one) and completed. */
static void check_done(NwClient *c) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(c->multi, &left)))
                if (msg->msg == CURLMSG_DONE) {
                        CURLcode code = msg->data.result;

                        (void) curl_multi_remove_handle(c->multi, msg->easy_handle);
                        if (again_wide(c, code) && curl_multi_add_handle(c->multi, c->curl) == CURLM_OK)
                                continue;
                        call_complete(c, code);
                }
}

static void socket_action(NwClient *c, curl_socket_t fd, int flags) {
        int running = 0;

        if (curl_multi_socket_action(c->multi, fd, flags, &running) != CURLM_OK && c->done) {
                (void) curl_multi_remove_handle(c->multi, c->curl);
                call_complete(c, CURLE_OUT_OF_MEMORY);
                return;
        }
        check_done(c);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        socket_action(userdata, fd, (revents & EPOLLIN ? CURL_CSELECT_IN : 0) |
                                    (revents & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                                    (revents & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0));
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        socket_action(userdata, CURL_SOCKET_TIMEOUT, 0);
        return 0;
}

int nw_client_attach_event(NwClient *c, sd_event *event) {
        int r;

        assert(c);
        assert(event);
        assert(!c->event);

        c->multi = curl_multi_init();
        if (!c->multi)
                return -ENOMEM;
        if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 1L) != CURLM_OK)
                return -EOPNOTSUPP;
        r = sd_event_add_time(event, &c->timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_timer, c);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        if (r < 0)
                return r;
        c->event = sd_event_ref(event);
        return 0;
}

static int call_start(NwClient *c, const SoapRequest *req, NwCallDone done, void *userdata, NwError *err) {
        int r;

        r = call_begin(c, req, err);
        if (r < 0)
                return r;
        /* curl's timer callback asks for a run at once: the transfer starts from the loop,
         * and done is always called from there, never from here. */
        if (curl_multi_add_handle(c->multi, c->curl) != CURLM_OK) {
                free(c->request);
                c->request = NULL;
                return -ENOMEM;
        }
        c->done = done;
        c->done_userdata = userdata;
        return 0;
}

int nw_client_call_start(NwClient *c, const SoapRequest *req, NwCallDone done, void *userdata, NwError *err) {
        int r;

        assert(c);
        assert(c->event);
        assert(req);
        assert(done);

        r = busy(c, err);
        if (r < 0)
                return r;
        return call_start(c, req, done, userdata, err);
}

static void call_complete(NwClient *c, CURLcode code) {
        _cleanup_(nw_error_done) NwError e = {};
        _cleanup_(soap_reply_done) SoapReply reply = {};
        NwCallDone done = c->done;
        void *userdata = c->done_userdata;
        int r;

        c->done = NULL;
        c->done_userdata = NULL;
        r = call_end(c, code, &reply, &e);
        if (done)
                done(c, r, &reply, &e, userdata);
}

static void download_end(NwClient *c, int r, NwError *err);

static void exchange_cancel(NwClient *c) {
        _cleanup_(nw_error_done) NwError e = {};
        NwCallDone done = c->done;
        int r = nw_error_set(&e, -ECANCELED, NW_ERROR_CONNECTION, "The net-worker is stopping");

        c->done = NULL;
        if (done)
                done(c, r, NULL, &e, c->done_userdata);
        if (c->download)  /* one with nothing to fetch, its answer not yet sent */
                download_end(c, r, &e);
}

/* ---- downloads ---- */

/* A download in GetSoftware ranges: the same steps run in a loop (nw_client_download)
 * or one range per completed exchange (nw_client_download_start). */
struct NwDownload {
        char *device_id, *package_id;
        uint64_t offset, end, total, length, written;
        bool known;
        int fd;
        bool own_fd;
        SoapGetSoftware gs;
        NwDownloadDone done;
        void *userdata;
};

static NwDownload *download_free(NwDownload *d) {
        if (!d)
                return NULL;
        free(d->device_id);
        free(d->package_id);
        if (d->own_fd)
                safe_close(d->fd);
        free(d);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(NwDownload *, download_free);

static int download_new(const char *device_id, const char *package_id, uint64_t offset, uint64_t length,
                        uint64_t expected_total, int fd, NwDownload **ret, NwError *err) {
        _cleanup_(download_freep) NwDownload *d = NULL;
        struct stat st;

        if (fstat(fd, &st) < 0)
                return nw_error_set(err, -errno, NW_ERROR_IO, "fstat() of the download file: %m");
        if (!S_ISREG(st.st_mode))
                return nw_error_set(err, -EBADFD, NW_ERROR_IO, "The download fd is not a regular file");
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->fd = fd;
        d->device_id = strdup(device_id);
        d->package_id = strdup(package_id);
        if (!d->device_id || !d->package_id)
                return -ENOMEM;
        if (offset == NW_DOWNLOAD_RESUME)
                offset = (uint64_t) st.st_size;
        d->offset = offset;
        d->length = length;
        d->end = length == 0 || length > UINT64_MAX - offset ? UINT64_MAX : offset + length;
        d->total = expected_total;
        d->known = expected_total > 0;
        *ret = TAKE_PTR(d);
        return 0;
}

/* 1 and d->gs filled if another range is to be fetched, 0 if none is. */
static int download_next(NwDownload *d, NwError *err) {
        uint64_t stop = d->end;

        if (d->known) {
                if (d->offset > d->total)
                        return nw_error_set(err, -EINVAL, NW_ERROR_INVALID_REQUEST,
                                            "Offset %" PRIu64 " is past the package's %" PRIu64 " bytes",
                                            d->offset, d->total);
                stop = MIN(stop, d->total);
        }
        if (d->offset >= stop)
                return 0;
        d->gs = (SoapGetSoftware) { .device_id = d->device_id, .package_id = d->package_id, .offset = d->offset,
                                    .length = (uint32_t) MIN(stop - d->offset, (uint64_t) SOAP_MAX_SOFTWARE_LENGTH) };
        return 1;
}

/* A range's reply, checked and written: 1 if there may be more to fetch, 0 if the package ended. */
static int download_take(NwDownload *d, const SoapReply *reply, NwError *err) {
        const SoapBlob *data = &reply->software.data;
        uint64_t want = d->gs.length;
        size_t done = 0;

        if (!streq(reply->software.package_id, d->package_id) || reply->software.offset != d->offset)
                return nw_error_set(err, -EBADMSG, NW_ERROR_MALFORMED_REPLY,
                                    "GetSoftware reply is for another package or offset");
        if (d->known && reply->software.total_size != d->total)
                return nw_error_set(err, -EBADMSG, NW_ERROR_MALFORMED_REPLY,
                                    "Package size changed from %" PRIu64 " to %" PRIu64 " bytes", d->total,
                                    reply->software.total_size);
        d->total = reply->software.total_size;
        d->known = true;
        if (d->offset > d->total || data->size != MIN(want, d->total - d->offset))
                return nw_error_set(err, -EBADMSG, NW_ERROR_MALFORMED_REPLY,
                                    "GetSoftware returned %zu bytes at %" PRIu64 " of %" PRIu64
                                    ", expected %" PRIu64, data->size, d->offset, d->total,
                                    MIN(want, d->total - d->offset));
        while (done < data->size) {
                ssize_t k = pwrite(d->fd, data->data + done, data->size - done, (off_t) (d->offset + done));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return nw_error_set(err, -errno, NW_ERROR_IO, "Writing the download: %m");
                }
                done += (size_t) k;
        }
        d->offset += data->size;
        d->written += data->size;
        return data->size == 0 || d->offset >= d->total ? 0 : 1;
}

/* The whole package asked for (length 0): the file must be exactly that long. */
static int download_finish(NwDownload *d, NwError *err) {
        struct stat st;

        if (d->length != 0)
                return 0;
        if (fstat(d->fd, &st) < 0)
                return nw_error_set(err, -errno, NW_ERROR_IO, "fstat() of the download file: %m");
        if ((uint64_t) st.st_size != d->total)
                return nw_error_set(err, -EBADMSG, NW_ERROR_IO, "Download is %" PRIu64 " bytes, the package %" PRIu64,
                                    (uint64_t) st.st_size, d->total);
        return 0;
}

static const SoapRequest *download_request(NwDownload *d, SoapRequest *req) {
        *req = (SoapRequest) { .op = SOAP_GET_SOFTWARE, .get_software = &d->gs };
        return req;
}

int nw_client_download(NwClient *c, const char *device_id, const char *package_id, uint64_t offset,
                       uint64_t length, uint64_t expected_total, int fd, uint64_t *ret_written,
                       uint64_t *ret_total, NwError *err) {
        _cleanup_(download_freep) NwDownload *d = NULL;
        int r;

        assert(c);
        assert(device_id);
        assert(package_id);
        assert(fd >= 0);

        r = download_new(device_id, package_id, offset, length, expected_total, fd, &d, err);
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_(soap_reply_done) SoapReply reply = {};
                SoapRequest req;

                r = download_next(d, err);
                if (r <= 0)
                        break;
                r = nw_client_call(c, download_request(d, &req), &reply, err);
                if (r < 0)
                        return r;
                r = download_take(d, &reply, err);
                if (r <= 0)
                        break;
        }
        if (r >= 0)
                r = download_finish(d, err);
        if (r < 0)
                return r;
        if (ret_written)
                *ret_written = d->written;
        if (ret_total)
                *ret_total = d->total;
        return 0;
}

static void download_end(NwClient *c, int r, NwError *err) {
        _cleanup_(download_freep) NwDownload *d = TAKE_PTR(c->download);

        if (r >= 0)
                r = download_finish(d, err);
        d->done(c, r, d->written, d->total, err, d->userdata);
}

static int on_nothing_to_fetch(sd_event_source *s, void *userdata) {
        _cleanup_(nw_error_done) NwError e = {};
        NwClient *c = userdata;

        c->defer = sd_event_source_disable_unref(c->defer);
        download_end(c, 0, &e);
        return 0;
}

static void on_range_done(NwClient *c, int r, const SoapReply *reply, NwError *err, void *userdata) {
        NwDownload *d = c->download;
        SoapRequest req;

        if (r >= 0)
                r = download_take(d, reply, err);
        if (r > 0)
                r = download_next(d, err);
        if (r > 0) {
                r = call_start(c, download_request(d, &req), on_range_done, NULL, err);
                if (r >= 0)
                        return;
        }
        download_end(c, r, err);
}

int nw_client_download_start(NwClient *c, const char *device_id, const char *package_id, uint64_t offset,
                             uint64_t length, uint64_t expected_total, int fd, NwDownloadDone done, void *userdata,
                             NwError *err) {
        _cleanup_(download_freep) NwDownload *d = NULL;
        SoapRequest req;
        int r;

        assert(c);
        assert(c->event);
        assert(device_id);
        assert(package_id);
        assert(fd >= 0);
        assert(done);

        r = busy(c, err);
        if (r < 0)
                return r;
        r = download_new(device_id, package_id, offset, length, expected_total, fd, &d, err);
        if (r < 0)
                return r;
        /* the caller's fd is the caller's: ours is a copy, kept until the download ends */
        d->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (d->fd < 0)
                return nw_error_set(err, -errno, NW_ERROR_IO, "Cannot keep the download fd: %m");
        d->own_fd = true;
        d->done = done;
        d->userdata = userdata;
        r = download_next(d, err);
        if (r < 0)
                return r;
        if (r == 0)  /* nothing to fetch: answered from the loop all the same */
                r = sd_event_add_defer(c->event, &c->defer, on_nothing_to_fetch, c);
        else
                r = call_start(c, download_request(d, &req), on_range_done, NULL, err);
        if (r < 0)
                return r;
        c->download = TAKE_PTR(d);
        return 0;
}
