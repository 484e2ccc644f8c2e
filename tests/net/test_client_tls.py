# SPDX-License-Identifier: Apache-2.0
"""libnetworker's TLS: each certificate defect of tests/pki/mkpki fails with
its own typed error (keeping OpenSSL's text); SPKI pins; the client key from
an OpenSSL provider URI; and the system trust store is never used, shown
with a server whose CA is only in the system store (a private mount
namespace puts it there) that the stock curl trusts and the client refuses."""

import base64
import hashlib
import os
import shutil
import subprocess
import unittest

import net_common as nc
from net_common import pc


def spki_pin(cert):
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, check=True,
                         capture_output=True).stdout
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


class ClientTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = pc.pki()
        cls.workdir = pc.make_tmpdir("net-tls")
        cls.good = pc.CommServer(cls.pki, os.path.join(cls.workdir), state_dir=os.path.join(cls.workdir, "good"))
        cls.good.start()

    @classmethod
    def tearDownClass(cls):
        cls.good.stop()

    def one_check_in(self, config, server):
        with nc.Client(config) as c:
            nc.expect_ok(c.send("server", url=server.url()))
            return c.call("CheckIn")

    def test_server_certificate_defects(self):
        config = nc.write_config(self.workdir, self.pki)
        cases = [("server-untrusted", "UntrustedServer", "unable to get local issuer"),
                 ("server-wronghost", "HostMismatch", "hostname mismatch"),
                 ("server-expired", "ServerCertificateExpired", "expired"),
                 ("server-notyet", "ServerCertificateNotYetValid", "not yet valid"),
                 ("server-wrongku", "ServerCertificateWrongUsage", "purpose")]
        for cert, kind, text in cases:
            with self.subTest(cert=cert):
                wd = os.path.join(self.workdir, cert)
                os.makedirs(wd, exist_ok=True)
                with pc.CommServer(self.pki, wd, server_cert=cert) as s:
                    a = nc.expect_error(self.one_check_in(config, s), kind)
                    self.assertIn(text, a["message"])
                    self.assertEqual(s.wait_messages(lambda m: m.get("type") == "message", count=0), [])
        # the same client configuration works with the good server
        nc.expect_ok(self.one_check_in(config, self.good))

    def test_rsa_server_tls13_and_tls12(self):
        # The default signature algorithms are ECDSA-SHA256 and TLS 1.3's two RSA ones:
        # a server with an RSA key (rsa_pss_rsae_sha256) still works and resumes, over
        # TLS 1.3 (the reference server) and over TLS 1.2 only (a server that stops there).
        from test_client_hostile import HostileServer

        d = os.path.join(self.workdir, "rsa")
        os.makedirs(d, exist_ok=True)
        key, crt, csr, ext = (os.path.join(d, n) for n in ("server.key", "server.crt", "server.csr", "server.ext"))
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n")
        run = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True)  # noqa: E731
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
        run("openssl", "req", "-new", "-key", key, "-subj", "/CN=commserver.test", "-out", csr)
        run("openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(self.pki, "ca.crt"),
            "-CAkey", os.path.join(self.pki, "ca.key"), "-set_serial", "0x5253410001", "-days", "30",
            "-sha256", "-extfile", ext, "-out", crt)
        shutil.copy(os.path.join(self.pki, "ca.crt"), d)
        config = nc.write_config(self.workdir, self.pki)
        with pc.CommServer(self.pki, d, server_cert=os.path.join(d, "server")) as tls13:
            servers = [(tls13.url(), None)]
            tls12 = HostileServer(d, ["--tls-max", "1.2"])
            try:
                servers.append((tls12.url("ok"), tls12))
                for url, _ in servers:
                    with self.subTest(url=url), nc.Client(config) as c:
                        nc.expect_ok(c.send("server", url=url))
                        self.assertFalse(nc.expect_ok(c.call("CheckIn"))["tls_resumed"])
                        nc.expect_ok(c.send("drop"))
                        self.assertTrue(nc.expect_ok(c.call("CheckIn"))["tls_resumed"])
            finally:
                tls12.stop()

    def test_resumption_offers_what_it_used(self):
        # A resumption's ClientHello offers only what the session's full handshake used:
        # TLS 1.3 alone, the session's suite, its group and the server's signature
        # algorithm, no extended master secret. A connection cut under that hello is made
        # again at once offering everything, and the next resumption is narrow again.
        # When the server behind the same name has changed since (here it speaks TLS 1.2
        # only), that handshake fails and is made again at once, offering everything
        # configured, and the call succeeds.
        from test_client_hostile import HostileServer

        tls13 = HostileServer(self.pki)
        tls12 = HostileServer(self.pki, ["--tls-max", "1.2"])
        relay = nc.Relay(tls13.port)
        try:
            with nc.Client(nc.write_config(self.workdir, self.pki)) as c:
                url = "https://localhost:%d/ok" % relay.port
                for resumed in (False, True):
                    # the same server set again (as policyd does after a policy change) keeps what was learnt
                    nc.expect_ok(c.send("server", url=url))
                    self.assertEqual(nc.expect_ok(c.call("CheckIn"))["tls_resumed"], resumed)
                    nc.expect_ok(c.send("drop"))
                relay.cut = 1
                for _ in range(2):
                    self.assertTrue(nc.expect_ok(c.call("CheckIn"))["tls_resumed"])
                    nc.expect_ok(c.send("drop"))
                relay.target = ("127.0.0.1", tls12.port)
                for resumed in (False, True):
                    a = nc.expect_ok(c.call("CheckIn"))
                    self.assertEqual(a["tls_resumed"], resumed)
                    nc.expect_ok(c.send("drop"))
            relay.wait_closed()
        finally:
            relay.stop()
            tls12.stop()
            tls13.stop()
        hellos = [nc.client_hello_extensions(up, with_data=True) for up, _ in relay.connections()]
        suites = [nc.client_hello_suites(up) for up, _ in relay.connections()]
        TLS13_ONLY, SCSV = b"\x02\x03\x04", 0x00ff
        # 0: first contact; 1: resumed, narrowed; (one cut, not recorded) 2: offered everything
        # again, resumed; 3: resumed, narrowed again; 4: narrowed, refused by the TLS 1.2
        # server; 5: offered everything again; 6: resumes the TLS 1.2 session, offering everything
        self.assertEqual(len(hellos), 7, [len(h) for h in hellos])
        down = relay.connections()[0][1]  # the first ServerHello: the suite the server chose
        sid = down[9 + 2 + 32]
        chosen = down[9 + 2 + 32 + 1 + sid] << 8 | down[9 + 2 + 32 + 2 + sid]
        for i in (0, 2, 5, 6):
            self.assertIn(b"\x03\x03", hellos[i][43][1:], "hello %d offers TLS 1.2" % i)
            self.assertIn(23, hellos[i])  # extended_master_secret
            self.assertGreater(len(suites[i]), 3)
        for i in (1, 3, 4):
            self.assertEqual(hellos[i][43], TLS13_ONLY, "hello %d offers TLS 1.3 alone" % i)
            self.assertNotIn(23, hellos[i])
            self.assertEqual([x for x in suites[i] if x != SCSV], [chosen])  # the session's suite
            self.assertEqual(hellos[i][10], b"\x00\x02\x00\x1d")  # X25519, the group it used
            self.assertEqual(len(hellos[i][13]), 2 + 2)  # one signature algorithm
            self.assertIn(41, hellos[i])  # pre_shared_key: the session
        self.assertEqual(hellos[0][10], b"\x00\x04\x00\x1d\x00\x17")

    def test_client_certificate_refused(self):
        for dev in ("device-expired", "device-notyet", "device-untrusted", "device-wrongku", None):
            with self.subTest(cert=dev):
                if dev:
                    config = nc.write_config(self.workdir, self.pki, name=dev + ".conf",
                                             cert=os.path.join(self.pki, dev + ".crt"),
                                             key=os.path.join(self.pki, dev + ".key"))
                else:
                    config = nc.write_config(self.workdir, self.pki, name="nocert.conf", cert=False)
                start = len(self.good.messages())
                a = nc.expect_error(self.one_check_in(config, self.good), "ClientCertificateRefused")
                self.assertTrue("alert" in a["message"] or "refused our certificate" in a["message"], a["message"])
                failed = self.good.wait_messages(lambda m: m.get("event") == "handshake-failed", start=start)
                self.assertTrue(failed)

    def test_environment_is_ignored(self):
        # libcurl would write TLS secrets to $SSLKEYLOGFILE and use $https_proxy and
        # friends; the client does neither.
        keylog = os.path.join(self.workdir, "keylog")
        env = dict(os.environ, SSLKEYLOGFILE=keylog, https_proxy="http://127.0.0.1:1",
                   HTTPS_PROXY="http://127.0.0.1:1", ALL_PROXY="http://127.0.0.1:1", all_proxy="http://127.0.0.1:1",
                   NO_PROXY="", CURL_CA_BUNDLE=os.path.join(self.pki, "untrusted-ca.crt"))
        config = nc.write_config(self.workdir, self.pki, name="env.conf")
        with nc.Client(config, env=env) as c:
            nc.expect_ok(c.send("server", url=self.good.url()))
            nc.expect_ok(c.call("CheckIn"))
        self.assertFalse(os.path.exists(keylog), "TLS secrets were written to SSLKEYLOGFILE")

    def test_pins(self):
        good = spki_pin(os.path.join(self.pki, "server.crt"))
        other = spki_pin(os.path.join(self.pki, "server-untrusted.crt"))
        config = nc.write_config(self.workdir, self.pki, name="pin-ok.conf",
                                 extra=["PinnedPublicKeys=%s;%s" % (other, good)])
        nc.expect_ok(self.one_check_in(config, self.good))
        config = nc.write_config(self.workdir, self.pki, name="pin-bad.conf", extra=["PinnedPublicKeys=" + other])
        a = nc.expect_error(self.one_check_in(config, self.good), "PinMismatch")
        self.assertIn("pinned", a["message"].lower())

    def test_key_from_provider_uri(self):
        key = os.path.join(self.pki, "device-%s.key" % pc.DEV1)
        config = nc.write_config(self.workdir, self.pki, name="uri.conf", key_uri="file:" + key)
        nc.expect_ok(self.one_check_in(config, self.good))

    def test_bad_configuration(self):
        ca = "CACertificates=" + os.path.join(self.pki, "ca.crt")
        crt = "ClientCertificate=" + os.path.join(self.pki, "device-CH0000000001.crt")
        key = "ClientKey=" + os.path.join(self.pki, "device-CH0000000001.key")
        cases = [([ca, crt, key, "Bogus=1"], ":4: Required key not available"),
                 ([ca, crt, "ClientKey=" + os.path.join(self.pki, "device-CH0000000002.key")],
                  ":0: Key was rejected by service"),
                 ([crt, key], ":0: Destination address required"),
                 ([ca, crt], ":0: Required key not available"),
                 ([ca, "PinnedPublicKeys=sha256//tooshort"], ":2: Invalid argument"),
                 ([ca, "ConnectTimeout=soon"], ":2: Invalid argument"),
                 ([ca, "MaxReplySize=0"], ":2: Numerical result out of range"),
                 (["# comment", "", ca, "CACertificates=/nonexistent"], ":4: No such file or directory"),
                 ([ca, "ClientKeyURI=file:/nonexistent"], ":2: No such file or directory"),
                 (["CACertificates=" + os.path.join(self.pki, "device-CH0000000001.key")],
                  ":1: Required key not available")]
        for lines, why in cases:
            with self.subTest(lines=lines):
                path = os.path.join(self.workdir, "bad.conf")
                with open(path, "w") as f:
                    f.write("\n".join(lines) + "\n")
                r = subprocess.run([nc.NW_REQUEST, path], input=b"", capture_output=True, timeout=30)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(why, r.stderr.decode())

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"), "needs root for a mount namespace")
    def test_system_trust_store_is_never_used(self):
        # A "system store" holding only the CA of server-untrusted, bound over /etc/ssl/certs
        # in a private mount namespace of the processes below (the host is untouched).
        store = os.path.join(self.workdir, "system-store")
        os.makedirs(store, exist_ok=True)
        ca = os.path.join(self.pki, "untrusted-ca.crt")
        shutil.copy(ca, os.path.join(store, "ca-certificates.crt"))
        h = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", ca], check=True,
                           capture_output=True, text=True).stdout.strip()
        shutil.copy(ca, os.path.join(store, h + ".0"))
        ns = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
              'mount --bind "$0" /etc/ssl/certs && exec "$@"', store]
        wd = os.path.join(self.workdir, "sysstore")
        os.makedirs(wd, exist_ok=True)
        with pc.CommServer(self.pki, wd, server_cert="server-untrusted") as s:
            # control: the stock curl, same libcurl, default trust: it trusts the server
            r = subprocess.run(ns + ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                     "--cert", os.path.join(self.pki, "device-%s.crt" % pc.DEV1),
                                     "--key", os.path.join(self.pki, "device-%s.key" % pc.DEV1),
                                     s.url() + "?wsdl"], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.stdout, "200", r.stderr)
            # the client, in the same kind of namespace, with the pinned CA: refused
            config = nc.write_config(self.workdir, self.pki, name="sys.conf")
            with nc.Client(config, argv_prefix=ns) as c:
                nc.expect_ok(c.send("server", url=s.url()))
                nc.expect_error(c.call("CheckIn"), "UntrustedServer")


if __name__ == "__main__":
    unittest.main(verbosity=2)
