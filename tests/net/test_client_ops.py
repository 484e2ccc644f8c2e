# SPDX-License-Identifier: Apache-2.0
"""libnetworker against the reference Communication Server, end to end: all
six operations with typed results, faults with their typed detail, a
download in ranges with resume, and TLS session resumption seen from both
ends (the client's handshake and the server's log)."""

import hashlib
import os
import unittest

import net_common as nc
from net_common import pc

TIME = "2026-03-01T10:00:00Z"


class ClientOps(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = pc.pki()
        cls.workdir = pc.make_tmpdir("net-ops")
        cls.repo = os.path.join(cls.workdir, "repo")
        cls.package = bytes(range(256)) * 2400 + b"tail"  # 614,404 bytes: three ranges
        pc.sign_package(cls.pki, cls.repo, "fw-main", cls.package, version="2.0.1")
        cls.server = pc.CommServer(cls.pki, cls.workdir, extra_args=["--software-dir", cls.repo]).start()
        cls.config = nc.write_config(cls.workdir, cls.pki)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def client(self):
        c = nc.Client(self.config)
        nc.expect_ok(c.send("server", url=self.server.url()))
        return c

    def test_check_in_and_instructions(self):
        with self.client() as c:
            a = nc.expect_ok(c.call("CheckIn", last=0))
            self.assertEqual(a["reply"]["instructions"], [])
            ids = [self.server.enqueue(pc.DEV1, {"type": "SendMeterReads"}),
                   self.server.enqueue(pc.DEV1, {"type": "SendSupplies"}),
                   self.server.enqueue(pc.DEV1, {"type": "SetCheckInInterval", "seconds": 3600}),
                   self.server.enqueue(pc.DEV1, {"type": "SoftwareAvailable", "package": "fw-main"}),
                   self.server.enqueue(pc.DEV1, {"type": "DiagnosticsRequested", "reason": "why & <how>",
                                                 "items": ["log/tail", "uptime"]})]
            a = nc.expect_ok(c.call("CheckIn", last=0))
            got = a["reply"]["instructions"]
            self.assertEqual([i["id"] for i in got], ids)
            self.assertEqual([i["kind"] for i in got], ["SendMeterReads", "SendSupplies", "SetCheckInInterval",
                                                        "SoftwareAvailable", "DiagnosticsRequested"])
            self.assertEqual(got[2]["seconds"], 3600)
            self.assertEqual((got[3]["package"], got[3]["version"], got[3]["size"], got[3]["sha256"]),
                             ("fw-main", "2.0.1", len(self.package), hashlib.sha256(self.package).hexdigest()))
            self.assertEqual((got[4]["reason"], got[4]["items"]), ("why & <how>", ["log/tail", "uptime"]))

            # acknowledged instructions are not sent again
            a = nc.expect_ok(c.call("CheckIn", last=ids[-1]))
            self.assertEqual(a["reply"]["instructions"], [])

            # submissions: Accepted, then Duplicate for the same transaction
            meters = [{"name": "prtMarkerLifeCount.1", "value": 123456, "unit": "impressions"},
                      {"name": "impressions.color", "value": 7, "decreased": True}]
            for status in ("Accepted", "Duplicate"):
                a = nc.expect_ok(c.call("SubmitMeterReads", txid="CH0000000001-1", time=TIME, meters=meters))
                self.assertEqual(a["reply"], {"txid": "CH0000000001-1", "status": status})
            a = nc.expect_ok(c.call("SubmitSupplies", txid="CH0000000001-2", time=TIME, supplies=[
                {"name": "toner.black", "type": "toner", "level": -3, "capacity": -2, "unit": "percent"}]))
            self.assertEqual(a["reply"]["status"], "Accepted")
            a = nc.expect_ok(c.call("SubmitDiagnostics", txid="CH0000000001-3", instruction=ids[4], time=TIME,
                                    entries=[{"name": "log/tail", "value": "<x> & \"y\" \u00e9\n"}]))
            self.assertEqual(a["reply"]["status"], "Accepted")
            a = nc.expect_ok(c.call("ReportResult", txid="CH0000000001-4", instruction=ids[2], outcome="Done",
                                    detail="interval set & <clamped>"))
            self.assertEqual(a["reply"]["status"], "Accepted")

        # what the server received: every message valid against the contract, text intact
        state = self.server.device_state(pc.DEV1)
        self.assertEqual(state["duplicates"].get("SubmitMeterReads"), 1)
        ins = [m for m in self.server.messages() if m.get("type") == "message" and m["dir"] == "in"]
        self.assertTrue(ins and all(m["valid"] for m in ins), [m for m in ins if not m["valid"]])
        diag = [s for s in state["submissions"] if s.get("op") == "SubmitDiagnostics" or "entries" in s]
        self.assertTrue(any("<x> & \"y\" \u00e9\n" in str(s) for s in diag) or
                        any("&lt;x&gt; &amp;" in m["body"] for m in ins if m["op"] == "SubmitDiagnostics"))

    def test_faults_are_typed(self):
        with self.client() as c:
            st, _ = self.server.admin("POST", "/v1/devices/%s/faults" % pc.DEV1,
                                      {"fault": "RetryAfter", "seconds": 30, "operation": "CheckIn", "count": 1})
            self.assertEqual(st, 200)
            a = nc.expect_error(c.call("CheckIn"), "RetryAfter")
            self.assertEqual((a["retry_after"], a["http_status"]), (30, 500))
            self.assertEqual((a["fault"]["detail"], a["fault"]["code"], a["fault"]["seconds"]),
                             ("RetryAfter", "Server", 30))
            nc.expect_ok(c.call("CheckIn"))  # the next one works

            a = nc.expect_error(c.call("CheckIn", device=pc.DEV2), "SoapFault")
            self.assertEqual((a["fault"]["detail"], a["fault"]["code"]), ("NotAuthorized", "Client"))
            self.assertIn(pc.DEV2, a["fault"]["reason"])

            a = nc.expect_error(c.call("ReportResult", txid="CH0000000001-99", instruction=999999, outcome="Done"),
                                "SoapFault")
            self.assertEqual(a["fault"]["detail"], "BadRequest")
            a = nc.expect_error(c.call("GetSoftware", package="no-such", offset=0, length=0), "SoapFault")
            self.assertEqual(a["fault"]["detail"], "BadRequest")

            # arguments that break the contract never reach the wire
            before = len(self.server.messages())
            a = nc.expect_error(c.call("SubmitMeterReads", txid="bad id", time=TIME, meters=[{"name": "a", "value": 1}]),
                                "InvalidRequest")
            self.assertIn("TransactionId", a["message"])
            self.assertEqual(len(self.server.messages()), before)

    def test_software_and_download(self):
        with self.client() as c:
            a = nc.expect_ok(c.call("GetSoftware", package="fw-main", offset=0, length=0))
            r = a["reply"]
            self.assertEqual((r["total"], r["data_size"], r["has_manifest"]), (len(self.package), 0, True))
            self.assertTrue(r["manifest_size"] > 0 and r["signature_size"] > 0 and r["certificate_size"] > 0)

            path = os.path.join(self.workdir, "download")
            a = nc.expect_ok(c.call("download", package="fw-main", path=path, offset=0, length=300000,
                                    expected=len(self.package)))
            self.assertEqual((a["written"], a["total"]), (300000, len(self.package)))
            with open(path, "rb") as f:
                self.assertEqual(f.read(), self.package[:300000])
            # resume after what the file holds, to the end, size checked
            a = nc.expect_ok(c.call("download", package="fw-main", path=path, resume=True))
            self.assertEqual((a["written"], a["total"]), (len(self.package) - 300000, len(self.package)))
            with open(path, "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(self.package).hexdigest())

            # a wrong expected size is refused before anything is written
            a = nc.expect_error(c.call("download", package="fw-main", path=path + "2", offset=0,
                                       expected=len(self.package) + 1), "MalformedReply")
            self.assertIn("size changed", a["message"])

            # a file longer than the package (stale bytes after its end) fails the size check
            stale = path + "-stale"
            with open(stale, "wb") as f:
                f.write(b"\0" * (len(self.package) + 10))
            a = nc.expect_error(c.call("download", package="fw-main", path=stale, offset=0), "WriteFailed")
            self.assertIn("the package %d" % len(self.package), a["message"])

    def check_ins_through_relay(self, config):
        """A check-in and a resumed one through a recording relay: its connections."""
        relay = nc.Relay(self.server.port)
        try:
            with nc.Client(config) as c:
                nc.expect_ok(c.send("server", url="https://localhost:%d/callhome" % relay.port))
                nc.expect_ok(c.call("CheckIn"))
                nc.expect_ok(c.send("drop"))
                self.assertTrue(nc.expect_ok(c.call("CheckIn"))["tls_resumed"])
        finally:
            relay.stop()
        return relay.connections()

    def test_middlebox_compatibility(self):
        # RFC 8446 D.4 mode costs a 32-byte fake session id (echoed by the server) and a
        # ChangeCipherSpec record from us: off by default, it can be turned on.
        config = nc.write_config(self.workdir, self.pki, name="compat.conf",
                                 extra=["TLSMiddleboxCompatibility=yes"])
        for cfg, sid_len in ((self.config, 0), (config, 32)):
            for up, down in self.check_ins_through_relay(cfg):
                self.assertEqual(len(nc.client_hello_session_id(up)), sid_len)
                ccs = [t for t, _, _ in nc.tls_records(up) if t == 20]
                self.assertEqual(len(ccs), 1 if sid_len else 0)

    def test_resumed_check_in_bytes_on_the_wire(self):
        # A resumed idle check-in, counted once both ends have closed (close_notify included):
        # ClientHello with no fake session id and the SHA-256 suite first (16 bytes less in
        # each Finished and the binder), no ChangeCipherSpec either way, the reply's headers
        # and body in one record without Server and Date; no encrypt_then_mac nor
        # post_handshake_auth, two groups, three signature algorithms and no AES-256 suite
        # offered; and on resumption only what the session used (TLS 1.3 alone, its suite,
        # group and signature algorithm: test_client_tls.test_resumption_offers_what_it_used).
        # 1,472 bytes before; 1,268, 1,244, then 1,222 now.
        # (The server's ticket on each resumed connection stays: OpenSSL's client uses a
        # TLS 1.3 ticket once, RFC 8446 C.4, and resumes check-in after check-in with it.)
        relay = nc.Relay(self.server.port)
        try:
            with nc.Client(self.config) as c:
                nc.expect_ok(c.send("server", url="https://localhost:%d/callhome" % relay.port))
                for i in range(3):
                    a = nc.expect_ok(c.call("CheckIn"))
                    self.assertEqual(a["tls_resumed"], i > 0)
                    nc.expect_ok(c.send("drop"))
            relay.wait_closed()
        finally:
            relay.stop()
        conns = relay.connections()
        self.assertEqual(len(conns), 3)
        for up, down in conns:
            # each side's last record is a TLS 1.3 alert (2 bytes, its type, a 16-byte tag): close_notify
            self.assertEqual(nc.tls_records(up)[-1], (23, 0x0303, 19))
            self.assertEqual(nc.tls_records(down)[-1], (23, 0x0303, 19))
            self.assertNotIn(20, [t for t, _, _ in nc.tls_records(down)])  # no ChangeCipherSpec
        for up, down in conns[1:]:
            self.assertLessEqual(len(up) + len(down), 1222,
                                 "resumed check-in: %d up, %d down" % (len(up), len(down)))

    def test_urls_refused(self):
        with nc.Client(self.config) as c:
            a = nc.expect_error(c.call("CheckIn"), "InvalidRequest")  # no server set yet
            self.assertIn("No server", a["message"])
            for url, why in (("http://localhost:%d/callhome" % self.server.port, "scheme must be https"),
                             ("ftp://localhost/x", "scheme must be https"),
                             ("https://user:pw@localhost:%d/callhome" % self.server.port, "credentials"),
                             ("not a url", "")):
                a = nc.expect_error(c.send("server", url=url), "InvalidRequest")
                self.assertIn(why, a["message"])
                self.assertNotIn("pw", a["message"])
            for url, why in (("https://127.0.0.1:3128", "scheme must be http"),
                             ("socks5://127.0.0.1:1080", "scheme must be http"),
                             ("http://u:pw@127.0.0.1:3128", "credentials")):
                a = nc.expect_error(c.send("proxy", url=url), "InvalidRequest")
                self.assertIn(why, a["message"])
            nc.expect_ok(c.send("server", url=self.server.url()))
            nc.expect_ok(c.call("CheckIn"))

    def test_tls_session_resumed(self):
        start = len(self.server.messages())
        with self.client() as c:
            a = nc.expect_ok(c.call("CheckIn"))
            self.assertEqual((a["handshakes"], a["tls_resumed"]), (1, False))
            a = nc.expect_ok(c.call("CheckIn"))  # same connection, no handshake
            self.assertEqual(a["handshakes"], 1)
            nc.expect_ok(c.send("drop"))
            a = nc.expect_ok(c.call("CheckIn"))  # new connection, resumed session
            self.assertEqual((a["handshakes"], a["tls_resumed"]), (2, True))
        hs = self.server.wait_messages(lambda m: m.get("event") == "handshake", count=2, start=start)
        self.assertEqual([m["resumed"] for m in hs], [False, True])
        self.assertEqual({m["device"] for m in hs}, {pc.DEV1})

    def test_client_hello_is_lean(self):
        # No padding extension (21: curl's SSL_OP_ALL pads hellos to 512 bytes) and no
        # ALPN (16: HTTP/1.1 only), first and resumed; the resumed one offers only what the
        # first handshake used.
        conns = self.check_ins_through_relay(self.config)
        self.assertEqual(len(conns), 2)
        for up, _ in conns:
            ext = nc.client_hello_extensions(up)
            self.assertNotIn(21, ext)
            self.assertNotIn(16, ext)
        self.assertIn(41, nc.client_hello_extensions(conns[1][0]))  # pre_shared_key: resumption
        for n, (up, _) in enumerate(conns):
            ext = nc.client_hello_extensions(up, with_data=True)
            # no encrypt_then_mac (22: CBC suites only, none offered), no post-handshake
            # authentication (49: our certificate goes in the handshake)
            self.assertNotIn(22, ext)
            self.assertNotIn(49, ext)
            if n == 1:
                # resumed: what the first handshake used, and TLS 1.3 alone
                self.assertEqual(ext[10], bytes([0, 2, 0, 0x1d]))
                self.assertEqual(ext[13], bytes([0, 2, 4, 3]))
                self.assertEqual(ext[43], bytes([2, 3, 4]))
                self.assertNotIn(23, ext)
                self.assertEqual(nc.client_hello_suites(up), [0x1301, 0x00ff])
                continue
            # only the groups a callhome server needs: x25519, secp256r1
            self.assertEqual(ext[10], bytes([0, 4, 0, 0x1d, 0, 0x17]))
            # signatures: ecdsa_secp256r1_sha256 (the vendor's PKI), rsa_pss_rsae_sha256 and
            # rsa_pkcs1_sha256 (TLS 1.3's mandatory ones)
            self.assertEqual(ext[13], bytes([0, 6, 4, 3, 8, 4, 4, 1]))
            # TLS 1.2 stays a fallback, with extended_master_secret (23)
            self.assertEqual(ext[43], bytes([4, 3, 4, 3, 3]))
            self.assertIn(23, ext)
            # suites: TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256; ECDHE-ECDSA- and
            # ECDHE-RSA-AES128-GCM-SHA256, their CHACHA20-POLY1305; the renegotiation SCSV
            self.assertEqual(nc.client_hello_suites(up), [0x1301, 0x1303, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0x00ff])

    def test_encrypt_then_mac_with_a_cbc_suite(self):
        # Configured to offer a CBC suite, the client asks for encrypt_then_mac again.
        config = nc.write_config(self.workdir, self.pki, name="cbc.conf",
                                 extra=["TLS12Ciphers=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA256"])
        for up, _ in self.check_ins_through_relay(config):
            self.assertIn(22, nc.client_hello_extensions(up))


if __name__ == "__main__":
    unittest.main(verbosity=2)
