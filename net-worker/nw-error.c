/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nw-error.h"

static const char *const error_kind_table[_NW_ERROR_MAX] = {
        [NW_ERROR_NONE] = "None",
        [NW_ERROR_UNTRUSTED_SERVER] = "UntrustedServer",
        [NW_ERROR_SERVER_CERT_EXPIRED] = "ServerCertificateExpired",
        [NW_ERROR_SERVER_CERT_NOT_YET_VALID] = "ServerCertificateNotYetValid",
        [NW_ERROR_SERVER_CERT_WRONG_USAGE] = "ServerCertificateWrongUsage",
        [NW_ERROR_HOST_MISMATCH] = "HostMismatch",
        [NW_ERROR_PIN_MISMATCH] = "PinMismatch",
        [NW_ERROR_CLIENT_CERT_REFUSED] = "ClientCertificateRefused",
        [NW_ERROR_TLS] = "TlsFailed",
        [NW_ERROR_UNREACHABLE] = "Unreachable",
        [NW_ERROR_PROXY_REFUSED] = "ProxyRefused",
        [NW_ERROR_PROXY_AUTH_REQUIRED] = "ProxyAuthRequired",
        [NW_ERROR_TIMEOUT] = "Timeout",
        [NW_ERROR_CONNECTION] = "ConnectionFailed",
        [NW_ERROR_TOO_LARGE] = "TooLarge",
        [NW_ERROR_MALFORMED_REPLY] = "MalformedReply",
        [NW_ERROR_HTTP_STATUS] = "HttpStatus",
        [NW_ERROR_SOAP_FAULT] = "SoapFault",
        [NW_ERROR_RETRY_AFTER] = "RetryAfter",
        [NW_ERROR_INVALID_REQUEST] = "InvalidRequest",
        [NW_ERROR_IO] = "WriteFailed",
        [NW_ERROR_BUSY] = "Busy",
};

static const char *const error_dbus_table[_NW_ERROR_MAX] = {
#define E(k, n) [k] = "org.callhome.NetWorker1.Error." n
        E(NW_ERROR_NONE, "None"),
        E(NW_ERROR_UNTRUSTED_SERVER, "UntrustedServer"),
        E(NW_ERROR_SERVER_CERT_EXPIRED, "ServerCertificateExpired"),
        E(NW_ERROR_SERVER_CERT_NOT_YET_VALID, "ServerCertificateNotYetValid"),
        E(NW_ERROR_SERVER_CERT_WRONG_USAGE, "ServerCertificateWrongUsage"),
        E(NW_ERROR_HOST_MISMATCH, "HostMismatch"),
        E(NW_ERROR_PIN_MISMATCH, "PinMismatch"),
        E(NW_ERROR_CLIENT_CERT_REFUSED, "ClientCertificateRefused"),
        E(NW_ERROR_TLS, "TlsFailed"),
        E(NW_ERROR_UNREACHABLE, "Unreachable"),
        E(NW_ERROR_PROXY_REFUSED, "ProxyRefused"),
        E(NW_ERROR_PROXY_AUTH_REQUIRED, "ProxyAuthRequired"),
        E(NW_ERROR_TIMEOUT, "Timeout"),
        E(NW_ERROR_CONNECTION, "ConnectionFailed"),
        E(NW_ERROR_TOO_LARGE, "TooLarge"),
        E(NW_ERROR_MALFORMED_REPLY, "MalformedReply"),
        E(NW_ERROR_HTTP_STATUS, "HttpStatus"),
        E(NW_ERROR_SOAP_FAULT, "SoapFault"),
        E(NW_ERROR_RETRY_AFTER, "RetryAfter"),
        E(NW_ERROR_INVALID_REQUEST, "InvalidRequest"),
        E(NW_ERROR_IO, "WriteFailed"),
        E(NW_ERROR_BUSY, "Busy"),
#undef E
};

static const char *const fault_detail_table[_NW_FAULT_MAX] = {
        [NW_FAULT_RETRY_AFTER] = "RetryAfter",
        [NW_FAULT_NOT_AUTHORIZED] = "NotAuthorized",
        [NW_FAULT_BAD_REQUEST] = "BadRequest",
        [NW_FAULT_LOG_FORK] = "LogFork",
};

const char *nw_error_kind_to_string(NwErrorKind k) {
        return k >= 0 && k < _NW_ERROR_MAX ? error_kind_table[k] : NULL;
}

NwErrorKind nw_error_kind_from_string(const char *s) {
        assert(s);
        for (int i = 0; i < _NW_ERROR_MAX; i++)
                if (streq(error_kind_table[i], s))
                        return (NwErrorKind) i;
        return _NW_ERROR_INVALID;
}

const char *nw_error_kind_to_dbus_name(NwErrorKind k) {
        return k >= 0 && k < _NW_ERROR_MAX ? error_dbus_table[k] : NULL;
}

const char *nw_fault_detail_to_string(NwFaultDetail d) {
        return d >= 0 && d < _NW_FAULT_MAX ? fault_detail_table[d] : NULL;
}

NwFaultDetail nw_fault_detail_from_string(const char *s) {
        assert(s);
        for (int i = 0; i < _NW_FAULT_MAX; i++)
                if (streq(fault_detail_table[i], s))
                        return (NwFaultDetail) i;
        return _NW_FAULT_INVALID;
}

void nw_fault_done(NwFault *f) {
        if (!f)
                return;
        free(f->string);
        free(f->reason);
        free(f->acked_root);
        *f = (NwFault) {};
}

void nw_error_done(NwError *e) {
        if (!e)
                return;
        nw_fault_done(&e->fault);
        *e = (NwError) {};
}

int nw_error_set(NwError *err, int r, NwErrorKind kind, const char *format, ...) {
        va_list ap;

        assert(r < 0);
        if (!err)
                return r;
        err->kind = kind;
        va_start(ap, format);
        (void) vsnprintf(err->message, sizeof(err->message), format, ap);
        va_end(ap);
        return r;
}
