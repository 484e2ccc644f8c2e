# SPDX-License-Identifier: Apache-2.0
"""libnetworker against a hostile server (tests/net/hostile_server.py, real
TLS on loopback): DOCTYPE/XXE, billion laughs, XInclude, a 100 MiB body
(with and without a length), depth 10,000, a million elements, malformed
chunked encoding, a header flood, a body cut short, a connection cut in the
middle of a TLS record, a slow trickle, a redirect, Retry-After in both forms
and a wrong content type: each a clear typed error, and the next request on
the same client still works."""

import json
import os
import select
import socket
import subprocess
import time
import unittest

import net_common as nc
from net_common import pc

HOSTILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile_server.py")


class HostileServer:
    def __init__(self, pki, extra=()):
        self.proc = subprocess.Popen([pc.PYTHON, HOSTILE, os.path.join(pki, "server.crt"),
                                      os.path.join(pki, "server.key"), os.path.join(pki, "ca.crt"), *extra],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        r, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if r else ""
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError("hostile server did not start")
        self.port = int(line.split()[1])

    def read_head(self):
        r, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if r else ""
        assert line.startswith("HEAD "), line
        return json.loads(line[5:])

    def url(self, mode):
        return "https://localhost:%d/%s" % (self.port, mode)

    def stop(self):
        p, self.proc = self.proc, None
        if p:
            nc.stop_process(p)
            p.stdout.close()


class ClientHostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = pc.pki()
        cls.workdir = pc.make_tmpdir("net-hostile")
        cls.server = HostileServer(cls.pki)
        # short stall timeout for the trickle; a reply size that lets a million elements reach the parser
        cls.config = nc.write_config(cls.workdir, cls.pki, extra=["StallTimeout=2s", "StallMinBytesPerSecond=64"])
        cls.config_big = nc.write_config(cls.workdir, cls.pki, name="big.conf", extra=["MaxReplySize=8M"])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def check(self, mode, kind, text=None, config=None):
        with nc.Client(config or self.config) as c:
            nc.expect_ok(c.send("server", url=self.server.url(mode)))
            a = nc.expect_error(c.call("CheckIn"), kind)
            if text:
                self.assertIn(text, a["message"])
            nc.expect_ok(c.send("server", url=self.server.url("ok")))
            nc.expect_ok(c.call("CheckIn"))
            return a

    def test_xml_attacks(self):
        self.check("doctype-xxe", "MalformedReply", "DOCTYPE")
        self.check("billion-laughs", "MalformedReply", "DOCTYPE")
        self.check("xinclude", "MalformedReply", "include")
        self.check("deep", "TooLarge", "deeper than 16")
        self.check("million", "TooLarge", "more than 4096 elements", config=self.config_big)
        self.check("million", "TooLarge", "body over the limit")

    def test_huge_bodies(self):
        self.check("huge", "TooLarge")
        self.check("huge-chunked", "TooLarge", "body over the limit")

    def test_http_attacks(self):
        self.check("bad-chunked", "MalformedReply", "chunked")
        self.check("header-flood", "TooLarge", "headers over the limit")
        self.check("long-header", "TooLarge")
        # a reply cut short is a broken connection (retry later), not a malformed reply
        self.check("cut-short", "ConnectionFailed", "transfer closed with 1000 bytes remaining")
        self.check("cut-mid-record", "ConnectionFailed")
        self.check("trickle", "Timeout", "too slow")
        a = self.check("redirect", "HttpStatus", "redirects are not followed")
        self.assertEqual(a["http_status"], 302)
        self.check("html", "MalformedReply", "not text/xml")

    def test_handshake_timeout(self):
        # A server that accepts the TCP connection (the kernel does, from the backlog)
        # and never says a TLS word: the connect timeout covers the handshake.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        try:
            config = nc.write_config(self.workdir, self.pki, name="hs.conf", extra=["ConnectTimeout=1s"])
            with nc.Client(config) as c:
                nc.expect_ok(c.send("server", url="https://localhost:%d/x" % silent.getsockname()[1]))
                a = nc.expect_error(c.call("CheckIn"), "Timeout")
                self.assertIn("ssl connection timeout", a["message"].lower())
                nc.expect_ok(c.send("server", url=self.server.url("ok")))
                nc.expect_ok(c.call("CheckIn"))
        finally:
            silent.close()

    def test_request_headers(self):
        # only what the protocol needs: no Accept, no User-Agent, no Expect
        with nc.Client(self.config) as c:
            nc.expect_ok(c.send("server", url=self.server.url("headers")))
            nc.expect_ok(c.call("CheckIn"))
        head = self.server.read_head()
        self.assertEqual(head["request"], "POST /headers HTTP/1.1")
        self.assertEqual(head["headers"], ["Host: localhost:%d" % self.server.port,
                                           "Content-Type: text/xml; charset=utf-8", 'SOAPAction: ""',
                                           "Content-Length: %d" % len(head["body"])])
        self.assertEqual(head["body"].encode(), pc.idle_checkin())

    def test_tls_versions(self):
        # TLS 1.1 is never spoken, even to a server that offers nothing better
        old = HostileServer(self.pki, ["--tls-max", "1.1"])
        try:
            with nc.Client(self.config) as c:
                nc.expect_ok(c.send("server", url=old.url("ok")))
                a = nc.expect_error(c.call("CheckIn"), "TlsFailed")
                self.assertIn("version", a["message"])
        finally:
            old.stop()
        # TLS 1.2 is, and resumes too (session id)
        tls12 = HostileServer(self.pki, ["--tls-max", "1.2"])
        try:
            with nc.Client(self.config) as c:
                nc.expect_ok(c.send("server", url=tls12.url("ok")))
                nc.expect_ok(c.call("CheckIn"))
                nc.expect_ok(c.send("drop"))
                self.assertTrue(nc.expect_ok(c.call("CheckIn"))["tls_resumed"])
        finally:
            tls12.stop()

    def test_retry_after(self):
        a = self.check("retry-120", "RetryAfter")
        self.assertEqual((a["retry_after"], a["http_status"]), (120, 503))
        a = self.check("retry-999999", "RetryAfter")
        self.assertEqual(a["retry_after"], 86400)  # clamped
        when = time.strftime("%a,_%d_%b_%Y_%H:%M:%S_GMT", time.gmtime(time.time() + 3600))
        a = self.check("retry-" + when, "RetryAfter")
        self.assertTrue(3000 < a["retry_after"] <= 3600, a)


if __name__ == "__main__":
    unittest.main(verbosity=2)
