# SPDX-License-Identifier: Apache-2.0
"""Loopback-only control interface for tests and demos (plain HTTP, JSON).

  GET  /v1/health                          {"ok": true, "witness": vkey}
  GET  /v1/devices/<id>                    counts, duplicates, submissions, queue, witness
  POST /v1/devices/<id>/instructions       {"type": ...} -> {"id": n}
  POST /v1/devices/<id>/faults             {"operation", "fault", "seconds", "reason", "count"}
  POST /v1/devices/<id>/log-key            {"vkey": "..."}  pin the device's audit log key
"""

import ipaddress
import json
import re
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler

from .note import NoteError
from .software import ManifestError

_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
MAX_BODY = 65536


class AdminError(ValueError):
    pass


def validate_instruction(body, repository):
    t = body.get("type")
    if t in ("SendMeterReads", "SendSupplies"):
        return {"type": t}
    if t == "SetCheckInInterval":
        s = body.get("seconds")
        if not isinstance(s, int) or not 60 <= s <= 2678400:
            raise AdminError("seconds must be an integer in [60, 2678400]")
        return {"type": t, "seconds": s}
    if t == "SoftwareAvailable":
        pid = body.get("package", "")
        try:
            pkg = repository.get(pid)
        except (OSError, ManifestError) as e:
            raise AdminError("package %s is broken: %s" % (pid, e)) from None
        if pkg is None:
            raise AdminError("no such package in the repository: %r" % pid)
        pkg.close()
        m = pkg.manifest
        return {"type": t, "package": pid, "version": m["version"], "size": m["size"],
                "sha256": m["sha256"]}
    if t == "DiagnosticsRequested":
        reason = body.get("reason", "")
        items = body.get("items", [])
        if not isinstance(reason, str) or len(reason) > 256:
            raise AdminError("reason must be a string of at most 256 characters")
        if not isinstance(items, list) or len(items) > 64 or \
                not all(isinstance(i, str) and re.fullmatch(r"[A-Za-z0-9._:/-]{1,64}", i) for i in items):
            raise AdminError("items must be a list of at most 64 names")
        return {"type": t, "reason": reason, "items": items}
    raise AdminError("unknown instruction type %r" % t)


def validate_fault(body):
    kind = body.get("fault")
    if kind not in ("RetryAfter", "NotAuthorized", "BadRequest"):
        raise AdminError("fault must be RetryAfter, NotAuthorized or BadRequest")
    f = {"fault": kind, "operation": body.get("operation", "*"), "count": int(body.get("count", 1))}
    if kind == "RetryAfter":
        s = body.get("seconds", 60)
        if not isinstance(s, int) or not 1 <= s <= 86400:
            raise AdminError("seconds must be an integer in [1, 86400]")
        f["seconds"] = s
    if "reason" in body:
        f["reason"] = str(body["reason"])[:256]
    return f


class AdminHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "callhome-commserver-admin"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def _json(self, status, obj):
        data = (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        srv = self.server.ctx
        path = self.path.partition("?")[0]
        if path == "/v1/health":
            return self._json(200, {"ok": True, "witness": srv.cosigner.vkey()})
        m = re.fullmatch(r"/v1/devices/(%s)" % _ID, path)
        if m:
            snap = srv.state.snapshot(m.group(1))
            snap.pop("transactions", None)
            return self._json(200, snap)
        self._json(404, {"error": "not found"})

    def do_POST(self):
        srv = self.server.ctx
        path = self.path.partition("?")[0]
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 <= length <= MAX_BODY:
                raise AdminError("body too large")
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise AdminError("body must be a JSON object")
            m = re.fullmatch(r"/v1/devices/(%s)/(instructions|faults|log-key)" % _ID, path)
            if not m:
                return self._json(404, {"error": "not found"})
            device, what = m.groups()
            if what == "instructions":
                iid = srv.state.enqueue(device, validate_instruction(body, srv.repository))
                return self._json(200, {"id": iid})
            if what == "faults":
                srv.state.add_fault(device, validate_fault(body))
                return self._json(200, {"ok": True})
            srv.witness.pin_key(device, str(body.get("vkey", "")))
            return self._json(200, {"ok": True})
        except (AdminError, NoteError, ValueError) as e:
            return self._json(400, {"error": str(e)})


class AdminServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host, port, ctx):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the admin interface listens on loopback only, not %s" % host)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.ctx = ctx
        super().__init__((host, port), AdminHandler)


def start_admin(host, port, ctx):
    server = AdminServer(host, port, ctx)
    t = threading.Thread(target=server.serve_forever, name="admin", daemon=True)
    t.start()
    return server
