#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The server logs all incoming and outgoing transactions, not only SOAP:
GETs of the contract and their replies, 404/411/413/501/400 refusals,
bodies cut short by a close or a timeout each get one JSON line per
direction, with a bounded excerpt, the full size and the SHA-256."""

import hashlib
import json
import socket
import ssl

import protocol_common as pc

MAX_REQUEST = 4096
LINE_BOUND = 8192      # server/README.md: an "http" line stays under 8 KiB
EXCERPT = 1024


class HttpLog(pc.ServerTestCase):

    server_args = ("--max-request-bytes", str(MAX_REQUEST), "--io-timeout", "2")

    def setUp(self):
        self.start = len(self.raw_lines())

    def raw_lines(self):
        """The message log's complete lines (one being written is left for later)."""
        with open(self.server.message_log(), "rb") as f:
            data = f.read()
        return data[:data.rfind(b"\n") + 1].splitlines()

    def new_lines(self, kind="http"):
        return [m for m in (json.loads(line) for line in self.raw_lines()[self.start:]) if m["type"] == kind]

    def wait_lines(self, n, timeout=15):
        """At least n new lines (fewer after `timeout`): woken by each write to the log
        (inotify) or the server's exit."""
        pc.chtest.wait_for_change([self.server.message_log()],
                                  lambda: len(self.new_lines()) >= n or self.server.proc.poll() is not None,
                                  "the server's message log", timeout, pids=[self.server.proc.pid], must=False)
        return self.new_lines()

    def exchange(self, data, then=None):
        """Send raw bytes over a fresh mutual-TLS connection; the reply bytes."""
        ctx = self.server.tls_context(pc.DEV1)
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=20) as sock:
            with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                tls.sendall(data)
                if then == "close":
                    try:
                        tls.unwrap()
                    except (ssl.SSLError, OSError):
                        pass
                    return b""
                reply = b""
                while True:
                    try:
                        chunk = tls.recv(65536)
                    except (ssl.SSLError, OSError):
                        break
                    if not chunk:
                        break
                    reply += chunk
                return reply

    def request(self, head, body=b""):
        reply = self.exchange(head + b"\r\n\r\n" + body)
        self.assertTrue(reply.startswith(b"HTTP/1."), reply[:200])
        return int(reply.split(b" ", 2)[1]), reply.split(b"\r\n\r\n", 1)[1]

    def assertPair(self, lines, status, method, path, **in_fields):
        """One in line and one out line, on one connection, with these fields."""
        self.assertEqual([m["dir"] for m in lines], ["in", "out"], lines)
        rin, rout = lines
        self.assertEqual(rin["conn"], rout["conn"])
        self.assertEqual((rin["method"], rin["path"], rin["device"]), (method, path, pc.DEV1))
        for k, v in in_fields.items():
            self.assertEqual(rin[k], v, k)
        self.assertEqual(rout["http_status"], status)
        for m in lines:
            for k in ("ts", "peer", "bytes", "body_sha256"):
                self.assertIn(k, m)
        return rin, rout

    def assertExcerpt(self, line, data):
        self.assertEqual(line["bytes"], len(data))
        self.assertEqual(line["body_sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual(line.get("body_truncated", False), len(data) > EXCERPT)
        if "body" in line:
            kept = line["body"].encode()
        else:
            import base64
            kept = base64.b64decode(line["body_b64"])
        self.assertLessEqual(len(kept), EXCERPT)
        self.assertTrue(data.startswith(kept))
        if len(data) <= EXCERPT:
            self.assertEqual(kept, data)

    def test_get_of_the_contract_is_logged(self):
        for path, name in (("/callhome?wsdl", pc.WSDL), ("/callhome.xsd", pc.XSD)):
            with self.subTest(path):
                self.start = len(self.raw_lines())
                with open(name, "rb") as f:
                    served = f.read()
                self.assertEqual(self.server.get(path), (200, served))
                rin, rout = self.assertPair(self.new_lines(), 200, "GET", path)
                self.assertExcerpt(rin, b"")
                self.assertExcerpt(rout, served)
        self.start = len(self.raw_lines())
        self.assertEqual(self.server.get("/nothing")[0], 404)
        self.assertExcerpt(self.assertPair(self.new_lines(), 404, "GET", "/nothing")[1], b"not found\n")

    def test_refusals_are_logged(self):
        soap = pc.idle_checkin()
        cases = [
            ("404", b"POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: %d" % len(soap), soap,
             404, "POST", "/elsewhere", soap),
            ("411 chunked", b"POST /callhome HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked", b"5\r\nhello\r\n0\r\n\r\n",
             411, "POST", "/callhome", b""),
            ("411 no length", b"POST /callhome HTTP/1.1\r\nHost: x", b"",
             411, "POST", "/callhome", b""),
            ("413", b"POST /callhome HTTP/1.1\r\nHost: x\r\nContent-Length: %d" % (MAX_REQUEST + 1),
             b"x" * (MAX_REQUEST + 1), 413, "POST", "/callhome", b""),
            ("501", b"PUT /callhome HTTP/1.1\r\nHost: x\r\nContent-Length: 0", b"",
             501, "PUT", "/callhome", b""),
        ]
        logged = {}
        for name, head, body, status, method, path, logged_body in cases:
            with self.subTest(name):
                self.start = len(self.raw_lines())
                self.assertEqual(self.request(head, body)[0], status)
                rin, rout = logged[name] = self.assertPair(self.new_lines(), status, method, path)
                self.assertExcerpt(rin, logged_body)
                self.assertIn("error", rin)
        self.assertEqual(logged["413"][0]["declared_length"], str(MAX_REQUEST + 1))
        self.assertEqual(logged["404"][0]["declared_length"], str(len(soap)))
        # A request line http.server itself refuses.
        self.start = len(self.raw_lines())
        reply = self.exchange(b"HELLO\r\n\r\n")    # HTTP/0.9 style: the answer has no status line
        lines = self.new_lines()
        self.assertEqual([(m["dir"], m.get("http_status")) for m in lines], [("in", None), ("out", 400)])
        self.assertExcerpt(lines[1], reply)
        self.assertEqual(lines[0]["request_line"], "HELLO")
        self.assertIsNone(lines[0]["path"])
        # SOAP exchanges are still "message" lines, not "http" ones.
        self.start = len(self.raw_lines())
        self.assertEqual(self.server.post(soap)[0], 200)
        self.assertEqual(self.new_lines(), [])
        self.assertEqual([m["dir"] for m in self.new_lines("message")], ["in", "out"])

    def test_bodies_cut_short_are_logged(self):
        head = b"POST /callhome HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        partial = pc.idle_checkin()[:100]
        self.exchange(head + partial, then="close")
        lines = self.wait_lines(1)
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(lines[0]["dir"], "in")
        self.assertExcerpt(lines[0], partial)
        self.assertIn("cut short", lines[0]["error"])
        self.assertIn("100 of 1000", lines[0]["error"])
        # A client that stops sending: the server times out (--io-timeout 2) and logs what came.
        self.start = len(self.raw_lines())
        ctx = self.server.tls_context(pc.DEV1)
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=20) as sock:
            with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                tls.sendall(head + partial[:40])
                lines = self.wait_lines(1)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("timed out after 40 of 1000", lines[0]["error"])
        self.assertExcerpt(lines[0], partial[:40])

    def test_lines_are_bounded(self):
        self.start = len(self.raw_lines())
        nasty = b"\x01\"" * 2000                    # every character needs an escape
        self.assertEqual(self.request(b"POST /%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d"
                                      % (b"\"" * 3000, len(nasty)), nasty)[0], 404)
        self.assertEqual(self.request(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3000", b"\xff" * 3000)[0], 404)
        self.assertEqual(self.request(b"GET /%s HTTP/1.1\r\nHost: x" % (b"\x7f" * 8000))[0], 404)
        self.assertEqual(self.server.get("/callhome?wsdl")[0], 200)
        raw = [line for line in self.raw_lines()[self.start:] if json.loads(line)["type"] == "http"]
        self.assertEqual(len(raw), 8)
        for line in raw:
            self.assertLessEqual(len(line), LINE_BOUND, line[:300])
        lines = [json.loads(line) for line in raw]
        self.assertExcerpt(lines[0], nasty)
        self.assertLessEqual(len(lines[0]["path"]), 257)
        self.assertExcerpt(lines[2], b"\xff" * 3000)
        self.assertIn("body_b64", lines[2])


if __name__ == "__main__":
    pc.run_tests()
