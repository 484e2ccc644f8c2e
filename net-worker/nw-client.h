/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The HTTPS client: one long-lived libcurl handle on OpenSSL, configured
 * tightly (HTTPS only, no redirects, cookies or content decoding, TLS 1.2+,
 * the pinned CA only, host name checked, optional SPKI pins, the client
 * certificate and key from memory), through the customer's HTTP proxy when
 * one is set. Connections and TLS sessions are reused, so a check-in after
 * the first is a resumed handshake. Library code: it does not log. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "nw-config.h"
#include "nw-error.h"
#include "soap-message.h"

typedef struct NwClient NwClient;

/* The client borrows config, which must outlive it. The first call initialises
 * libcurl, after removing SSLKEYLOGFILE from the environment (libcurl would log
 * every TLS secret to that file). */
int nw_client_new(const NwConfig *config, NwClient **ret);
NwClient *nw_client_free(NwClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(NwClient *, nw_client_free);

/* "https://host[:port]/path": any other scheme, or credentials in the URL, is -EINVAL. */
int nw_client_set_server(NwClient *c, const char *url, NwError *err);

/* "http://host:port" (CONNECT tunnel; the proxy sees only TLS), or NULL for a
 * direct connection (the environment's *_proxy variables are never used).
 * Credentials are kept in memory only (our copy wiped when replaced or freed;
 * libcurl's copies wiped as libcurl frees them, by the end of the next exchange:
 * nw_client_new() gives libcurl a wiping free()), and any authentication scheme
 * the proxy offers is negotiated. */
int nw_client_set_proxy(NwClient *c, const char *url, const char *user, const char *password, NwError *err);

/* Resolve the server's (or the proxy's) name with resolver, which opens no
 * file, instead of libcurl's resolver (getaddrinfo(), which reads
 * /etc/nsswitch.conf, /etc/hosts and /etc/resolv.conf on every call). The
 * resolver is borrowed; NULL: libcurl's. */
typedef struct NwResolver NwResolver;
void nw_client_set_resolver(NwClient *c, NwResolver *resolver);

/* fn is called often (at least once a second) while an exchange is under way,
 * e.g. to tell a watchdog that the process is alive. NULL: none. */
typedef void (*NwProgressFunc)(void *userdata);
int nw_client_set_progress(NwClient *c, NwProgressFunc fn, void *userdata);

/* Forget idle connections, so the next exchange opens a new one (and resumes the TLS session). */
void nw_client_drop_connections(NwClient *c);

/* One SOAP exchange, run to its end. 0 and the reply, or a negative errno with err
 * filled (err->kind says what went wrong; see nw-error.h). */
int nw_client_call(NwClient *c, const SoapRequest *req, SoapReply *ret, NwError *err);

/* Exchanges driven by event instead (libcurl's multi interface: its sockets and
 * timer are sd-event sources), so that the loop keeps running during one. Once
 * attached, use the _start() calls; one exchange at a time: while one is under
 * way (nw_client_busy()), every call that would touch the connection fails with
 * -EBUSY and NW_ERROR_BUSY, having done nothing. */
int nw_client_attach_event(NwClient *c, sd_event *event);
bool nw_client_busy(const NwClient *c);

/* Starts the exchange: 0, and done is called once, from the loop, with the result
 * as nw_client_call() gives it (reply and err are valid during the call only); or
 * a negative errno with err filled, and done is never called. */
typedef void (*NwCallDone)(NwClient *c, int r, const SoapReply *reply, NwError *err, void *userdata);
int nw_client_call_start(NwClient *c, const SoapRequest *req, NwCallDone done, void *userdata, NwError *err);

/* Fetches package bytes [offset, offset + length) (length 0: to the end) with
 * GetSoftware ranges and writes them at the same offsets of fd (pwrite).
 * offset NW_DOWNLOAD_RESUME continues after the bytes fd already holds.
 * expected_total, if not 0, must be the package's TotalSize. The written
 * range is checked against TotalSize; with length 0 the file must end up
 * exactly TotalSize bytes long. */
#define NW_DOWNLOAD_RESUME UINT64_MAX
int nw_client_download(NwClient *c, const char *device_id, const char *package_id, uint64_t offset,
                       uint64_t length, uint64_t expected_total, int fd, uint64_t *ret_written,
                       uint64_t *ret_total, NwError *err);

/* The same, one range per exchange from the loop (the client keeps a copy of fd
 * until done); done as for nw_client_call_start(). */
typedef struct NwDownload NwDownload;
typedef void (*NwDownloadDone)(NwClient *c, int r, uint64_t written, uint64_t total, NwError *err, void *userdata);
int nw_client_download_start(NwClient *c, const char *device_id, const char *package_id, uint64_t offset,
                             uint64_t length, uint64_t expected_total, int fd, NwDownloadDone done, void *userdata,
                             NwError *err);

typedef struct NwExchangeInfo {
        bool tls_resumed;          /* this exchange's handshake resumed a session (false: full, or none) */
        unsigned handshakes;       /* TLS handshakes done so far */
        long http_status;
        uint64_t request_bytes;    /* HTTP header + body sent in the last exchange */
        uint64_t reply_bytes;      /* HTTP header + body received */
} NwExchangeInfo;

void nw_client_last_exchange(const NwClient *c, NwExchangeInfo *ret);
