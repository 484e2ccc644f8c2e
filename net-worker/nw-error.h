/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

/* Why an exchange with the Communication Server failed. Each kind is one
 * D-Bus error of org.callhome.NetWorker1 (ipc/org.callhome.NetWorker1.xml);
 * the message keeps curl's, OpenSSL's or libxml2's own text, never a credential. */
typedef enum NwErrorKind {
        NW_ERROR_NONE,
        NW_ERROR_UNTRUSTED_SERVER,         /* server chain does not lead to the pinned CA */
        NW_ERROR_SERVER_CERT_EXPIRED,
        NW_ERROR_SERVER_CERT_NOT_YET_VALID,
        NW_ERROR_SERVER_CERT_WRONG_USAGE,  /* key usage / extended key usage not serverAuth */
        NW_ERROR_HOST_MISMATCH,            /* certificate does not name the server URL's host */
        NW_ERROR_PIN_MISMATCH,             /* no configured SPKI pin matches */
        NW_ERROR_CLIENT_CERT_REFUSED,      /* the server refused our certificate (TLS alert) */
        NW_ERROR_TLS,                      /* any other TLS failure */
        NW_ERROR_UNREACHABLE,              /* name resolution or TCP connect failed (server or proxy) */
        NW_ERROR_PROXY_REFUSED,            /* the proxy answered CONNECT with an error */
        NW_ERROR_PROXY_AUTH_REQUIRED,      /* the proxy wants (other) credentials: 407 */
        NW_ERROR_TIMEOUT,
        NW_ERROR_CONNECTION,               /* the connection broke during the exchange */
        NW_ERROR_TOO_LARGE,                /* reply over a size, header, depth or node bound */
        NW_ERROR_MALFORMED_REPLY,          /* not HTTP/SOAP of the expected shape */
        NW_ERROR_HTTP_STATUS,              /* an HTTP status the protocol does not use */
        NW_ERROR_SOAP_FAULT,               /* a SOAP Fault; see NwFault */
        NW_ERROR_RETRY_AFTER,              /* 429/503 Retry-After or a RetryAfter fault */
        NW_ERROR_INVALID_REQUEST,          /* the caller's arguments cannot make a valid message */
        NW_ERROR_IO,                       /* writing a download into the caller's fd failed */
        NW_ERROR_BUSY,                     /* another exchange is under way: nothing was done */
        _NW_ERROR_MAX,
        _NW_ERROR_INVALID = -EINVAL,
} NwErrorKind;

typedef enum NwFaultDetail {
        NW_FAULT_RETRY_AFTER,
        NW_FAULT_NOT_AUTHORIZED,
        NW_FAULT_BAD_REQUEST,
        NW_FAULT_LOG_FORK,
        _NW_FAULT_MAX,
        _NW_FAULT_INVALID = -EINVAL,
} NwFaultDetail;

/* A SOAP 1.1 Fault with its typed detail (PROTOCOL.md, "Faults"). */
typedef struct NwFault {
        bool server;          /* faultcode s:Server (else s:Client) */
        char *string;         /* faultstring */
        NwFaultDetail detail;
        uint32_t seconds;     /* RetryAfter */
        char *reason;         /* NotAuthorized, BadRequest, LogFork */
        uint64_t acked_size;  /* LogFork */
        char *acked_root;     /* LogFork, base64 */
} NwFault;

#define NW_ERROR_MESSAGE_MAX 512

typedef struct NwError {
        NwErrorKind kind;
        char message[NW_ERROR_MESSAGE_MAX];
        long http_status;         /* 0 if none was received */
        uint32_t retry_after;     /* seconds, NW_ERROR_RETRY_AFTER */
        bool has_fault;
        NwFault fault;
} NwError;

const char *nw_error_kind_to_string(NwErrorKind k) _pure_;
NwErrorKind nw_error_kind_from_string(const char *s) _pure_;
/* "org.callhome.NetWorker1.Error.<Name>" */
const char *nw_error_kind_to_dbus_name(NwErrorKind k) _pure_;
const char *nw_fault_detail_to_string(NwFaultDetail d) _pure_;
NwFaultDetail nw_fault_detail_from_string(const char *s) _pure_;

void nw_fault_done(NwFault *f);
void nw_error_done(NwError *e);

/* Sets kind and message (formatted, truncated to fit) and returns r, a negative errno,
 * so that callers can `return nw_error_set(err, -EBADMSG, NW_ERROR_MALFORMED_REPLY, ...)`.
 * err may be NULL. */
int nw_error_set(NwError *err, int r, NwErrorKind kind, const char *format, ...) _printf_(4, 5);
