#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Mutual TLS at the reference server: TLS 1.2 and 1.3 only; no or bad
client certificate, no handshake; certificate subject must equal the DeviceId of every operation;
sessions resume from the server's cache with a small (stateful) ticket."""

import os
import re
import socket
import ssl
import subprocess

import protocol_common as pc

REQUEST_FOR = {
    "CheckIn": '<CheckIn xmlns="{ns}"><DeviceId>{d}</DeviceId><AgentVersion>0.1.0</AgentVersion>'
               '<LastInstruction>0</LastInstruction></CheckIn>',
    "SubmitMeterReads": '<SubmitMeterReads xmlns="{ns}"><DeviceId>{d}</DeviceId><TransactionId>{d}-7</TransactionId>'
                        '<Time>2026-01-01T00:00:00Z</Time><Meter><Name>total</Name><Value>1</Value></Meter>'
                        '</SubmitMeterReads>',
    "SubmitSupplies": '<SubmitSupplies xmlns="{ns}"><DeviceId>{d}</DeviceId><TransactionId>{d}-8</TransactionId>'
                      '<Time>2026-01-01T00:00:00Z</Time><Supply><Name>toner.black</Name><Level>-3</Level>'
                      '<MaxCapacity>-2</MaxCapacity></Supply></SubmitSupplies>',
    "SubmitDiagnostics": '<SubmitDiagnostics xmlns="{ns}"><DeviceId>{d}</DeviceId><TransactionId>{d}-9</TransactionId>'
                         '<InstructionId>1</InstructionId><Time>2026-01-01T00:00:00Z</Time></SubmitDiagnostics>',
    "GetSoftware": '<GetSoftware xmlns="{ns}"><DeviceId>{d}</DeviceId><PackageId>fw</PackageId>'
                   '<Offset>0</Offset><Length>0</Length></GetSoftware>',
    "ReportResult": '<ReportResult xmlns="{ns}"><DeviceId>{d}</DeviceId><TransactionId>{d}-10</TransactionId>'
                    '<InstructionId>1</InstructionId><Outcome>Done</Outcome></ReportResult>',
}


class MutualTls(pc.ServerTestCase):

    def attempt(self, ctx):
        """Try one CheckIn over a fresh connection; return the HTTP status or the error."""
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        try:
            tls = ctx.wrap_socket(sock, server_hostname="localhost")
            body = pc.idle_checkin()
            tls.sendall(b"POST /callhome HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            data = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data.split(b" ", 2)[1] if data.startswith(b"HTTP/") else "no response"
        except (ssl.SSLError, OSError) as e:
            return e
        finally:
            sock.close()

    def assertRefused(self, ctx, why):
        result = self.attempt(ctx)
        self.assertIsInstance(result, (Exception, str), "%s: server answered %r" % (why, result))
        if isinstance(result, str):
            self.assertEqual(result, "no response", why)

    def client_ctx(self, name=None, tls12=False):
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if name:
            ctx.load_cert_chain(os.path.join(self.pki, name + ".crt"), os.path.join(self.pki, name + ".key"))
        return ctx

    def test_good_certificate_works(self):
        for tls12 in (False, True):
            self.assertEqual(self.attempt(self.client_ctx("device-" + pc.DEV1, tls12)), b"200")

    def handshake(self, ctx):
        """Handshake only; the negotiated version, or the SSLError."""
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as sock:
            try:
                with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                    return tls.version()
            except ssl.SSLError as e:
                return e

    def test_only_tls12_and_tls13(self):
        """TLS 1.0 and 1.1 are refused by the server even to a client with a
        good certificate that offers nothing else and allows their weak
        ciphers (security level 0); TLS 1.2 and 1.3 are accepted."""
        before = len(self.server.messages())
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            with self.subTest(version.name):
                ctx = self.client_ctx("device-" + pc.DEV1)
                ctx.minimum_version = version
                ctx.maximum_version = version
                ctx.set_ciphers("DEFAULT@SECLEVEL=0")
                result = self.handshake(ctx)
                self.assertIsInstance(result, ssl.SSLError, "%s negotiated" % version.name)
                # The refusal is the server's protocol_version alert, not the
                # client failing to offer the version at all.
                self.assertIn("TLSV1_ALERT_PROTOCOL_VERSION", str(result))
        # (A TLS 1.3 refusal from an earlier test may be logged late: count ours.)
        failed = self.server.wait_messages(lambda m: m.get("event") == "handshake-failed" and
                                           "unsupported protocol" in m["error"].lower(), 2, before)
        self.assertEqual(len(failed), 2, failed)
        for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            with self.subTest(name):
                ctx = self.client_ctx("device-" + pc.DEV1)
                ctx.minimum_version = version
                ctx.maximum_version = version
                self.assertEqual(self.handshake(ctx), name)
                self.assertEqual(self.attempt(ctx), b"200")

    def test_only_tls12_and_tls13_openssl_client(self):
        """The same with `openssl s_client`, an independent client."""
        base = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.server.port,
                "-servername", "localhost", "-CAfile", os.path.join(self.pki, "ca.crt"),
                "-cert", os.path.join(self.pki, "device-%s.crt" % pc.DEV1),
                "-key", os.path.join(self.pki, "device-%s.key" % pc.DEV1), "-verify_return_error"]
        for flag in ("-tls1", "-tls1_1"):
            with self.subTest(flag):
                r = subprocess.run(base + [flag, "-cipher", "DEFAULT@SECLEVEL=0"], input=b"",
                                   capture_output=True, timeout=30)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(b"alert protocol version", r.stdout + r.stderr)
        for flag, name in (("-tls1_2", b"TLSv1.2"), ("-tls1_3", b"TLSv1.3")):
            with self.subTest(flag):
                r = subprocess.run(base + [flag], input=b"", capture_output=True, timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout, rb"New, " + re.escape(name) + rb", Cipher is ")
                self.assertIn(b"Verify return code: 0 (ok)", r.stdout)

    def test_no_client_certificate_is_refused(self):
        for tls12 in (False, True):
            self.assertRefused(self.client_ctx(None, tls12), "no certificate (tls12=%s)" % tls12)
        # In TLS 1.2 the refusal is in the handshake itself.
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        try:
            with self.assertRaises(ssl.SSLError):
                self.client_ctx(None, True).wrap_socket(sock, server_hostname="localhost")
        finally:
            sock.close()
        events = self.server.wait_messages(lambda m: m.get("event") == "handshake-failed" and
                                           "certificate" in m["error"].lower())
        self.assertTrue(events, self.server.messages())

    def test_bad_client_certificates_are_refused(self):
        for name in ("device-expired", "device-notyet", "device-untrusted", "device-wrongku"):
            for tls12 in (False, True):
                with self.subTest(name, tls12=tls12):
                    self.assertRefused(self.client_ctx(name, tls12), name)

    def test_subject_must_match_device_id_in_every_operation(self):
        before = self.server.device_state(pc.DEV1)["counts"]
        for op, template in REQUEST_FOR.items():
            with self.subTest(op):
                body = pc.envelope(template.format(ns=pc.TNS, d=pc.DEV1))
                status, out = self.server.post(body, device=pc.DEV2)
                self.assertEqual(status, 500)
                kind, fields = pc.fault_detail(out)
                self.assertEqual(kind, "NotAuthorized", out)
                self.assertIn(pc.DEV2, fields["Reason"])
                self.assertValidOut(out)
        self.assertEqual(self.server.device_state(pc.DEV1)["counts"], before)

    def test_order_of_checks(self):
        """Contract first, then identity, then scripted faults (server/README.md)."""
        broken = pc.envelope('<CheckIn xmlns="%s"><DeviceId>%s</DeviceId><LastInstruction>0</LastInstruction>'
                             '</CheckIn>' % (pc.TNS, pc.DEV1))
        status, out = self.server.post(broken, device=pc.DEV2)
        self.assertEqual((status, pc.fault_detail(out)[0]), (500, "BadRequest"), out)
        st, res = self.server.admin("POST", "/v1/devices/%s/faults" % pc.DEV1,
                                    {"fault": "RetryAfter", "seconds": 7, "operation": "CheckIn"})
        self.assertEqual(st, 200, res)
        status, out = self.server.post(pc.idle_checkin(pc.DEV1), device=pc.DEV2)
        self.assertEqual(pc.fault_detail(out)[0], "NotAuthorized", out)
        self.assertEqual(len(self.server.device_state(pc.DEV1)["faults"]), 1, "consumed by an impostor")
        status, out = self.server.post(pc.idle_checkin(pc.DEV1), device=pc.DEV1)
        self.assertEqual(pc.fault_detail(out), ("RetryAfter", {"Seconds": "7"}))

    def test_session_resumption_keeps_identity(self):
        for tls12 in (False, True):
            with self.subTest(tls12=tls12):
                ctx = self.client_ctx("device-" + pc.DEV2, tls12)
                session = None
                for i in range(2):
                    sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
                    tls = ctx.wrap_socket(sock, server_hostname="localhost", session=session)
                    try:
                        body = pc.idle_checkin(pc.DEV2)
                        tls.sendall(b"POST /callhome HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
                                    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
                        data = b""
                        while True:
                            chunk = tls.recv(65536)
                            if not chunk:
                                break
                            data += chunk
                        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
                        self.assertEqual(tls.session_reused, i == 1)
                        session = tls.session
                        if tls12:   # TLS 1.2: session-id resumption, no ticket at all
                            self.assertFalse(session.has_ticket)
                        # A clean shutdown keeps the session resumable (OpenSSL
                        # marks sessions of unclean closes as not resumable).
                        tls.unwrap()
                    finally:
                        tls.close()
        resumed = [m for m in self.server.messages()
                   if m.get("event") == "handshake" and m.get("device") == pc.DEV2 and m["resumed"]]
        self.assertEqual(len(resumed), 2)

    def test_tls13_ticket_is_a_small_stateful_reference(self):
        """openssl s_client (an independent client) resumes; the TLS 1.3 ticket
        it holds is a short cache reference, not a self-contained session."""
        sess = os.path.join(self.workdir, "s_client.sess")
        base = ["openssl", "s_client", "-tls1_3", "-connect", "127.0.0.1:%d" % self.server.port,
                "-servername", "localhost", "-CAfile", os.path.join(self.pki, "ca.crt"),
                "-cert", os.path.join(self.pki, "device-%s.crt" % pc.DEV1),
                "-key", os.path.join(self.pki, "device-%s.key" % pc.DEV1)]
        req = b"GET /callhome?wsdl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        first = subprocess.run(base + ["-sess_out", sess, "-ign_eof"], input=req, capture_output=True, timeout=30)
        self.assertIn(b"HTTP/1.1 200", first.stdout)
        text = subprocess.run(["openssl", "sess_id", "-in", sess, "-noout", "-text"],
                              capture_output=True, timeout=30, check=True).stdout.decode()
        ticket = text.split("TLS session ticket:", 1)[1]
        ticket_bytes = sum(len(re.findall(r"[0-9a-f]{2}", line.split(" - ", 1)[1].split("   ")[0]))
                           for line in ticket.splitlines() if re.match(r"\s+[0-9a-f]{4} - ", line))
        # A stateful TLS 1.3 ticket is the 32-byte session id into the
        # server's cache (a stateless one would carry the whole session: 200+).
        self.assertEqual(ticket_bytes, 32, text)
        second = subprocess.run(base + ["-sess_in", sess, "-ign_eof"], input=req, capture_output=True, timeout=30)
        self.assertIn(b"Reused, TLSv1.3", second.stdout)
        self.assertIn(b"HTTP/1.1 200", second.stdout)


if __name__ == "__main__":
    pc.run_tests()
