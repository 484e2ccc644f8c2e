/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTPS client's error mapping: a failed transfer (curl code, verify result, TLS alert) to an NwError. */
#include <errno.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "nw-client-internal.h"

/* Replace every occurrence of secret in s by "***" (in place: never longer). */
static void scrub(char *s, const char *secret) {
        size_t n;
        char *p;

        if (!secret || (n = strlen(secret)) < 3)
                return;
        while ((p = strstr(s, secret))) {
                memcpy(p, "***", 3);
                memmove(p + 3, p + n, strlen(p + n) + 1);
        }
}

static bool is_client_cert_alert(int alert) {
        switch (alert) {
        case SSL_AD_BAD_CERTIFICATE:
        case SSL_AD_UNSUPPORTED_CERTIFICATE:
        case SSL_AD_CERTIFICATE_REVOKED:
        case SSL_AD_CERTIFICATE_EXPIRED:
        case SSL_AD_CERTIFICATE_UNKNOWN:
        case SSL_AD_UNKNOWN_CA:
        case SSL_AD_ACCESS_DENIED:
        case SSL_AD_CERTIFICATE_REQUIRED:
                return true;
        default:
                return false;
        }
}

static NwErrorKind verify_error_kind(long v) {
        switch (v) {
        case X509_V_OK: /* curl checks the host name itself, after OpenSSL accepted the chain */
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
                return NW_ERROR_HOST_MISMATCH;
        case X509_V_ERR_CERT_HAS_EXPIRED:
                return NW_ERROR_SERVER_CERT_EXPIRED;
        case X509_V_ERR_CERT_NOT_YET_VALID:
                return NW_ERROR_SERVER_CERT_NOT_YET_VALID;
        case X509_V_ERR_INVALID_PURPOSE:
        case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE:
                return NW_ERROR_SERVER_CERT_WRONG_USAGE;
        default:
                return NW_ERROR_UNTRUSTED_SERVER;
        }
}

int nw_client_transfer_error(NwClient *c, CURLcode code, NwError *err) {
        const char *text = c->errbuf[0] ? c->errbuf : curl_easy_strerror(code);
        long connect_code = 0, verify = 0;
        NwErrorKind kind;
        int r = -EIO;

        (void) curl_easy_getinfo(c->curl, CURLINFO_HTTP_CONNECTCODE, &connect_code);

        if (c->body_too_large || c->http.too_large || code == CURLE_FILESIZE_EXCEEDED) {
                kind = NW_ERROR_TOO_LARGE;
                r = -EFBIG;
                text = c->http.too_large ? "reply headers over the limit" : "reply body over the limit";
        } else if (code == CURLE_OUT_OF_MEMORY) {
                /* curl's own bounds (e.g. one header line of 100 KiB) end in this code too */
                kind = NW_ERROR_TOO_LARGE;
                r = -EFBIG;
                text = "a reply part over curl's own bound (or out of memory)";
        } else if (connect_code == 407 || connect_code == 401) { /* some proxies (tinyproxy) say 401 */
                kind = NW_ERROR_PROXY_AUTH_REQUIRED;
                r = -EACCES;
        } else if (connect_code >= 300) {
                kind = NW_ERROR_PROXY_REFUSED;
                r = -ECONNREFUSED;
        } else
                switch (code) {
                case CURLE_PEER_FAILED_VERIFICATION:
                        (void) curl_easy_getinfo(c->curl, CURLINFO_SSL_VERIFYRESULT, &verify);
                        kind = verify_error_kind(verify);
                        r = -EPERM;
                        break;
                case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
                        kind = NW_ERROR_PIN_MISMATCH;
                        r = -EPERM;
                        break;
                case CURLE_OPERATION_TIMEDOUT:
                        kind = NW_ERROR_TIMEOUT;
                        r = -ETIMEDOUT;
                        break;
                case CURLE_COULDNT_RESOLVE_HOST:
                case CURLE_COULDNT_RESOLVE_PROXY:
                case CURLE_COULDNT_CONNECT:
                        kind = NW_ERROR_UNREACHABLE;
                        r = -EHOSTUNREACH;
                        break;
                case CURLE_WEIRD_SERVER_REPLY:
                case CURLE_BAD_CONTENT_ENCODING:
                case CURLE_UNSUPPORTED_PROTOCOL:
                        kind = NW_ERROR_MALFORMED_REPLY;
                        r = -EBADMSG;
                        break;
                default:
                        if (is_client_cert_alert(c->tls_alert)) {
                                kind = NW_ERROR_CLIENT_CERT_REFUSED;
                                r = -EACCES;
                        } else if (c->handshake_done && c->tls13 && c->last.http_status == 0 &&
                                   IN_SET3(code, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING)) {
                                /* TLS 1.3: the server judges our certificate after the handshake is done
                                 * on our side; its alert can be lost to the reset of the connection it
                                 * then closes. Nothing else ends a fresh connection before any reply. */
                                kind = NW_ERROR_CLIENT_CERT_REFUSED;
                                r = -EACCES;
                                (void) nw_error_set(err, r, kind, "%s (curl error %d); the server closed the connection "
                                                    "right after the TLS 1.3 handshake, before any reply: it refused "
                                                    "our certificate (or its absence)", text, (int) code);
                                return r;
                        } else if (code == CURLE_RECV_ERROR && strstr(text, "chunked-encoding")) {
                                kind = NW_ERROR_MALFORMED_REPLY;
                                r = -EBADMSG;
                        } else if (IN_SET3(code, CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER)) {
                                kind = NW_ERROR_TLS;
                                r = -EPROTO;
                        } else {
                                kind = NW_ERROR_CONNECTION;
                                r = -ECONNRESET;
                        }
                }

        (void) nw_error_set(err, r, kind, "%s (curl error %d)", text, (int) code);
        if (err) {
                scrub(err->message, c->proxy_user);
                scrub(err->message, c->proxy_password);
                err->http_status = connect_code >= 300 ? connect_code : 0;
        }
        return r;
}
