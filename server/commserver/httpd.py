# SPDX-License-Identifier: Apache-2.0
"""HTTPS front end: TLS with client certificates, HTTP/1.1 keep-alive,
bounded requests, one JSON line per incoming and outgoing message, and a
bridge into the spyne WSGI application.

The message log has a line for every request and every reply: SOAP
exchanges as "message" lines with the whole body (bounded by
--max-request-bytes and the contract's reply bounds), everything else (GET of
the contract, 404, 411, 413, malformed requests, bodies cut short) as "http"
lines with a bounded excerpt of the body, its size and its SHA-256."""

import base64
import datetime
import hashlib
import io
import itertools
import json
import socket
import socketserver
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler

from lxml import etree

from .contract import ContractError

_conn_ids = itertools.count(1)

# What an "http" log line keeps of a body; the line also gives the whole
# body's size and SHA-256.  With the path and request-line caps a line stays
# well under 8 KiB even when every kept character needs a \u escape.
LOG_EXCERPT_BYTES = 1024
LOG_TEXT_CHARS = 256


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MessageLog:
    """Append-only JSON lines; one line per message or TLS event."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.f = open(path, "a", encoding="utf-8") if path else None

    def write(self, **entry):
        entry = dict(ts=now_rfc3339(), **entry)
        line = json.dumps(entry, ensure_ascii=False, sort_keys=False) + "\n"
        with self.lock:
            if self.f:
                self.f.write(line)
                self.f.flush()

    def close(self):
        with self.lock:
            if self.f:
                self.f.close()
                self.f = None


def body_for_log(data: bytes):
    try:
        return {"body": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_b64": base64.b64encode(data).decode()}


def excerpt_for_log(data: bytes, limit=LOG_EXCERPT_BYTES):
    """At most `limit` bytes of a body, with its full size and digest."""
    head = data[:limit]
    out = {}
    for cut in range(4):            # do not split a UTF-8 sequence at the limit
        if cut and len(data) <= limit:
            break
        try:
            out["body"] = head[:len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    if "body" not in out:
        out["body_b64"] = base64.b64encode(head).decode()
    if len(data) > limit:
        out["body_truncated"] = True
    out["body_sha256"] = hashlib.sha256(data).hexdigest()
    return out


def text_for_log(text, limit=LOG_TEXT_CHARS):
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("iso-8859-1")
    return text if len(text) <= limit else text[:limit] + "\u2026"


def operation_of(doc):
    try:
        body = doc.getroot().find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
        child = next(c for c in body if isinstance(c.tag, str))
        return etree.QName(child).localname
    except Exception:
        return None


def peer_device_id(tls_sock):
    """The device id: the single CN of the verified client certificate."""
    cert = tls_sock.getpeercert()
    if not cert:
        return None
    cns = [v for rdn in cert.get("subject", ()) for (k, v) in rdn if k == "commonName"]
    return cns[0] if len(cns) == 1 else None


class SoapHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "callhome-commserver"
    sys_version = ""
    # Buffered: a reply's headers and body leave in one write, so in one TLS
    # record (http.server flushes after each request); unbuffered, they were two.
    wbufsize = -1

    # ---- TLS set-up happens here, in the connection's own thread ----
    def setup(self):
        self.conn_id = next(_conn_ids)
        self.tls_ok = False
        self.device = None
        self.peer = peer = "%s:%s" % self.client_address[:2]
        raw = self.request
        raw.settimeout(self.server.io_timeout)
        try:
            tls = self.server.tls_context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.server.msglog.write(type="tls", event="handshake-failed", conn=self.conn_id,
                                     peer=peer, error=str(e))
            try:
                raw.close()
            except OSError:
                pass
            return
        self.request = self.connection = tls
        self.tls_ok = True
        self.device = peer_device_id(tls)
        self.server.msglog.write(type="tls", event="handshake", conn=self.conn_id, peer=peer,
                                 device=self.device, version=tls.version(),
                                 resumed=tls.session_reused)
        super().setup()

    def handle(self):
        if self.tls_ok:
            try:
                super().handle()
            except (ssl.SSLError, OSError, socket.timeout):
                self.close_connection = True

    def finish(self):
        if self.tls_ok:
            try:
                super().finish()
            except OSError:
                pass
            # Send close_notify: OpenSSL drops sessions of connections that
            # end without a shutdown from its cache, which would defeat resumption.
            try:
                self.request.settimeout(1.0)
                self.request.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass
            try:
                self.request.close()
            except OSError:
                pass

    def log_message(self, fmt, *args):  # the JSON log is the log
        pass

    def send_response(self, code, message=None):
        """The status line only: no Server (it names nothing a client needs) and
        no Date (the protocol carries its own timestamps, and the client never reads
        it): 66 bytes of every reply on a metered line."""
        self.log_request(code)
        self.send_response_only(code, message)

    # ---- helpers ----
    def _log_http_in(self, body=b"", headers_parsed=True, **extra):
        """One "http" line for a request that is not a complete SOAP message.

        (http.server sets command and path together and keeps the previous
        request's headers until it has parsed new ones.)"""
        declared = self.headers.get("Content-Length") if headers_parsed else None
        self.server.msglog.write(type="http", dir="in", conn=self.conn_id, peer=self.peer,
                                 device=self.device, method=text_for_log(self.command or None),
                                 path=text_for_log(self.path if self.command else None),
                                 **({"declared_length": text_for_log(declared, 32)} if declared else {}),
                                 bytes=len(body), **extra, **excerpt_for_log(body))

    def _send(self, status, ctype, data, extra=(), log=True):
        if log:
            self.server.msglog.write(type="http", dir="out", conn=self.conn_id, peer=self.peer,
                                     device=self.device, http_status=status, bytes=len(data),
                                     **excerpt_for_log(data if self.command != "HEAD" else b""))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _plain_error(self, status, text):
        self.close_connection = True
        self._send(status, "text/plain; charset=utf-8", (text + "\n").encode(),
                   [("Connection", "close")])

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (malformed request line, unknown method,
        oversized headers...): logged, and answered like ours."""
        self._log_http_in(headers_parsed=False,
                          error=text_for_log(message or self.responses.get(code, ("error",))[0]),
                          request_line=text_for_log(getattr(self, "raw_requestline", b"").rstrip(b"\r\n")))
        self._plain_error(code, message or self.responses.get(code, ("error",))[0])

    def _read_body(self, length):
        """Up to `length` bytes; (data, None) or, cut short, (what came, why)."""
        parts, got = [], 0
        try:
            while got < length:
                chunk = self.rfile.read1(min(length - got, 65536))
                if not chunk:
                    return b"".join(parts), "connection closed after %d of %d bytes" % (got, length)
                parts.append(chunk)
                got += len(chunk)
        except OSError as e:    # socket.timeout, ssl.SSLError
            return b"".join(parts), "%s after %d of %d bytes" % (
                "timed out" if isinstance(e, socket.timeout) else "read failed (%s)" % e, got, length)
        return b"".join(parts), None

    def _drain(self, n):
        try:
            while n > 0:
                chunk = self.rfile.read(min(n, 65536))
                if not chunk:
                    break
                n -= len(chunk)
        except OSError:
            pass

    # ---- GET: the contract, verbatim ----
    def do_GET(self):
        path, _, query = self.path.partition("?")
        c = self.server.contract
        self._log_http_in()
        if query.lower() == "wsdl":
            self._send(200, "text/xml; charset=utf-8", c.wsdl_bytes)
        elif path.rsplit("/", 1)[-1] == "callhome.xsd":
            self._send(200, "text/xml; charset=utf-8", c.xsd_bytes)
        else:
            self._plain_error(404, "not found")

    # ---- POST: SOAP ----
    def do_POST(self):
        srv = self.server
        path = self.path.partition("?")[0]
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._log_http_in(error="chunked body refused")
            return self._plain_error(411, "Content-Length required")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._log_http_in(error="no valid Content-Length")
            return self._plain_error(411, "Content-Length required")
        if length < 0 or length > srv.max_request:
            self._log_http_in(error="body larger than %d bytes" % srv.max_request)
            # Read (a bounded amount of) what the client sends so that it sees the 413.
            self._plain_error(413, "request larger than %d bytes" % srv.max_request)
            self._drain(min(length, 16 << 20))
            return
        data, cut_short = self._read_body(length)
        if cut_short:
            self._log_http_in(data, error="body cut short: " + cut_short)
            self.close_connection = True
            return
        if path != srv.soap_path:
            self._log_http_in(data, error="not the SOAP endpoint")
            return self._plain_error(404, "no SOAP endpoint at %s" % text_for_log(path, 64))
        peer = self.peer

        contract_error = None
        op = None
        try:
            doc = srv.contract.parse(data)
            op = operation_of(doc)
            srv.contract.validate_envelope(doc)
        except ContractError as e:
            contract_error = str(e)
        srv.msglog.write(type="message", dir="in", conn=self.conn_id, peer=peer,
                         device=self.device, op=op, bytes=len(data),
                         valid=contract_error is None,
                         **({"error": contract_error} if contract_error else {}),
                         **body_for_log(data))

        status, headers, out = self._call_wsgi(data, contract_error)

        valid = True
        out_error = None
        try:
            srv.contract.validate_envelope(srv.contract.parse(out))
        except ContractError as e:
            valid, out_error = False, str(e)
            print("callhome-commserver: outgoing message breaks the contract: %s" % e,
                  file=sys.stderr, flush=True)
        srv.msglog.write(type="message", dir="out", conn=self.conn_id, peer=peer,
                         device=self.device, op=op, http_status=status, bytes=len(out),
                         valid=valid, **({"error": out_error} if out_error else {}),
                         **body_for_log(out))
        # UTF-8 without saying so: RFC 7303 reads text/xml without a charset by
        # XML's own rules, which make a document with no declaration UTF-8.
        self._send(status, "text/xml", out, log=False)

    def _call_wsgi(self, data, contract_error):
        return call_wsgi(self.server.wsgi_app, data, self.device, contract_error,
                         soap_path=self.server.soap_path, port=self.server.server_address[1],
                         content_type=self.headers.get("Content-Type", "text/xml; charset=utf-8"),
                         soap_action=self.headers.get("SOAPAction", '""'))


def call_wsgi(app, data, device, contract_error, soap_path="/callhome", port=0,
              content_type="text/xml; charset=utf-8", soap_action='""'):
    """Run one SOAP request through the WSGI application: (status, headers, body).

    `device` is the verified certificate identity, `contract_error` the
    result of validating `data` against the contract (None when valid)."""
    environ = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": soap_path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(data)),
        "SERVER_NAME": "commserver",
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_SOAPACTION": soap_action,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "callhome.device": device,
        "callhome.contract_error": contract_error,
    }
    result = {}

    def start_response(status, headers, exc_info=None):
        result["status"] = int(status.split()[0])
        result["headers"] = headers

    chunks = app(environ, start_response)
    out = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
    return result.get("status", 500), result.get("headers", []), out


class ThreadingTLSServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, tls_context, **attrs):
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.tls_context = tls_context
        for k, v in attrs.items():
            setattr(self, k, v)
        super().__init__(address, SoapHandler)

    def handle_error(self, request, client_address):
        print("callhome-commserver: error on connection from %s:%s" % client_address[:2],
              file=sys.stderr, flush=True)
        import traceback
        traceback.print_exc()


def make_tls_context(cert, key, client_ca):
    """TLS 1.2+ server context that demands a client certificate.

    Resumption uses the server's session cache, not self-contained tickets:
    OP_NO_TICKET makes TLS 1.2 resume by session id and TLS 1.3 send
    *stateful* tickets (a short id into the cache, not an encrypted session
    blob), one per handshake.  A resumed connection needs its new ticket too:
    OpenSSL's clients use a TLS 1.3 ticket once (RFC 8446, C.4: a reused
    ticket links connections), so without one the check-in after next is a
    full handshake.  The cache keeps OpenSSL's defaults (20480 sessions,
    7200 s): Python's ssl has no supported way to change them.  The client's
    order of cipher suites is honoured (a client that prefers
    TLS_AES_128_GCM_SHA256 saves 16 bytes in each Finished and PSK binder),
    and no TLS 1.3 middlebox-compatibility ChangeCipherSpec is sent."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=client_ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.options |= ssl.OP_NO_TICKET
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options &= ~getattr(ssl, "OP_ENABLE_MIDDLEBOX_COMPAT", 0)
    try:
        ctx.num_tickets = 1
    except (AttributeError, ValueError):
        pass
    return ctx
