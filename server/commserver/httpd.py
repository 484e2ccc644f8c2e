# SPDX-License-Identifier: Apache-2.0
"""HTTPS front end: TLS with client certificates, HTTP/1.1 keep-alive,
bounded requests, one JSON line per incoming and outgoing message, and a
bridge into the spyne WSGI application."""

import base64
import datetime
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

    # ---- TLS set-up happens here, in the connection's own thread ----
    def setup(self):
        self.conn_id = next(_conn_ids)
        self.tls_ok = False
        self.device = None
        raw = self.request
        raw.settimeout(self.server.io_timeout)
        peer = "%s:%s" % self.client_address[:2]
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

    # ---- helpers ----
    def _send(self, status, ctype, data, extra=()):
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
            return self._plain_error(411, "Content-Length required")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._plain_error(411, "Content-Length required")
        if length < 0 or length > srv.max_request:
            # Read (a bounded amount of) what the client sends so that it sees the 413.
            self._plain_error(413, "request larger than %d bytes" % srv.max_request)
            self._drain(min(length, 16 << 20))
            return
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            return
        if path != srv.soap_path:
            return self._plain_error(404, "no SOAP endpoint at %s" % path)
        peer = "%s:%s" % self.client_address[:2]

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
        self._send(status, "text/xml; charset=utf-8", out)

    def _call_wsgi(self, data, contract_error):
        environ = {
            "REQUEST_METHOD": "POST",
            "SCRIPT_NAME": "",
            "PATH_INFO": self.server.soap_path,
            "QUERY_STRING": "",
            "CONTENT_TYPE": self.headers.get("Content-Type", "text/xml; charset=utf-8"),
            "CONTENT_LENGTH": str(len(data)),
            "SERVER_NAME": "commserver",
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_SOAPACTION": self.headers.get("SOAPAction", '""'),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https",
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "callhome.device": self.device,
            "callhome.contract_error": contract_error,
        }
        result = {}

        def start_response(status, headers, exc_info=None):
            result["status"] = int(status.split()[0])
            result["headers"] = headers

        chunks = self.server.wsgi_app(environ, start_response)
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


def make_tls_context(cert, key, client_ca, session_timeout=None):
    """TLS 1.2+ server context that demands a client certificate.

    Resumption uses the server's session cache, not self-contained tickets:
    OP_NO_TICKET makes TLS 1.2 resume by session id and TLS 1.3 send
    *stateful* tickets (a short id into the cache, not an encrypted session
    blob), and one ticket per handshake is enough."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=client_ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.options |= ssl.OP_NO_TICKET
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    try:
        ctx.num_tickets = 1
    except (AttributeError, ValueError):
        pass
    if session_timeout:
        set_session_timeout(ctx, session_timeout)
    return ctx


def set_session_timeout(ctx, seconds):
    """SSL_CTX_set_timeout on the context's SSL_CTX (Python has no API for it).

    Best effort: returns False when the C structure cannot be reached."""
    try:
        import ctypes
        import _ssl
        libssl = ctypes.CDLL(_ssl.__file__)  # _ssl links libssl; its symbols resolve through it
        fn = libssl.SSL_CTX_set_timeout
        fn.restype = ctypes.c_long
        fn.argtypes = [ctypes.c_void_p, ctypes.c_long]
        get = libssl.SSL_CTX_get_timeout
        get.restype = ctypes.c_long
        get.argtypes = [ctypes.c_void_p]
        # PySSLContext: PyObject_HEAD (refcount, type) then SSL_CTX *ctx.
        ptr = ctypes.c_void_p.from_address(id(ctx) + 2 * ctypes.sizeof(ctypes.c_void_p)).value
        old = get(ptr)
        if old <= 0 or old > 10 ** 7:   # not an SSL_CTX after all: leave it alone
            return False
        fn(ptr, int(seconds))
        return get(ptr) == int(seconds)
    except Exception:
        return False
