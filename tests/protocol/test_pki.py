#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The test PKI (tests/pki/mkpki): every certificate has the one property
its name promises, checked the way a client checks it, so that tests of the
TLS clients can rely on them.

- `openssl verify` against the right anchor, with the purpose and host name
  a client would ask for: the good ones verify, each bad one fails with its
  own error, and verifies once that single check is relaxed (so it has no
  second, hidden defect).
- A real handshake with Python's ssl (OpenSSL, as libcurl uses it) against
  the reference server presenting each server certificate.
- A reused PKI is minted afresh as soon as a certificate lost its property
  (a "not yet valid" one became valid, a good one expires), and the
  "not yet valid" ones start far beyond the lifetime of a reused set."""

import datetime
import os
import re
import shutil
import socket
import ssl
import subprocess
import unittest

import protocol_common as pc

# OpenSSL verify error codes (include/openssl/x509_vfy.h)
NOT_YET_VALID = 9            # X509_V_ERR_CERT_NOT_YET_VALID
EXPIRED = 10                 # X509_V_ERR_CERT_HAS_EXPIRED
UNTRUSTED = 20               # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
WRONG_PURPOSE = 26           # X509_V_ERR_INVALID_PURPOSE
HOSTNAME_MISMATCH = 62       # X509_V_ERR_HOSTNAME_MISMATCH
IP_MISMATCH = 64             # X509_V_ERR_IP_ADDRESS_MISMATCH

SERVER_HOST = ["-verify_hostname", "commserver.test"]

# name: (anchor, purpose, extra checks, expected error, options that relax only that defect)
SERVER_CERTS = {
    "server": ("ca", "sslserver", SERVER_HOST, None, None),
    "server-expired": ("ca", "sslserver", SERVER_HOST, EXPIRED, ["-no_check_time"]),
    "server-notyet": ("ca", "sslserver", SERVER_HOST, NOT_YET_VALID, ["-no_check_time"]),
    "server-wronghost": ("ca", "sslserver", SERVER_HOST, HOSTNAME_MISMATCH,
                         ["-verify_hostname", "wrong.example.invalid"]),
    "server-wrongku": ("ca", "sslserver", SERVER_HOST, WRONG_PURPOSE, ["-purpose", "sslclient"]),
    "server-untrusted": ("ca", "sslserver", SERVER_HOST, UNTRUSTED, ["-CAfile", "untrusted-ca"]),
}
DEVICE_CERTS = {
    "device-" + pc.DEV1: ("ca", "sslclient", [], None, None),
    "device-" + pc.DEV2: ("ca", "sslclient", [], None, None),
    "device-expired": ("ca", "sslclient", [], EXPIRED, ["-no_check_time"]),
    "device-notyet": ("ca", "sslclient", [], NOT_YET_VALID, ["-no_check_time"]),
    "device-wrongku": ("ca", "sslclient", [], WRONG_PURPOSE, ["-purpose", "sslserver"]),
    "device-untrusted": ("ca", "sslclient", [], UNTRUSTED, ["-CAfile", "untrusted-ca"]),
}
# Code signing: the chain by openssl (it has no code-signing purpose in 3.0),
# the extended key usage by openssl's own reading of the extension.
CODESIGN_CERTS = {
    "codesign": ("codesign-ca", True, None),
    "codesign-wrongku": ("codesign-ca", False, None),
    "codesign-untrusted": ("codesign-ca", True, UNTRUSTED),
}


class PkiCase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = pc.pki()

    def path(self, name):
        return os.path.join(self.pki, name + ".crt")

    def verify(self, name, anchor, *opts):
        """openssl verify; the list of error codes it reports ([] = verified)."""
        opts = list(opts)
        if "-CAfile" in opts:       # an anchor named in the relaxing options replaces the default
            i = opts.index("-CAfile")
            anchor = opts[i + 1]
            del opts[i:i + 2]
        r = subprocess.run(["openssl", "verify", "-CAfile", self.path(anchor), *opts, self.path(name)],
                           capture_output=True, timeout=30)
        out = (r.stdout + r.stderr).decode(errors="replace")
        errors = [int(c) for c in re.findall(r"error (\d+) at \d+ depth", out)]
        self.assertEqual(r.returncode == 0, not errors, out)
        if r.returncode == 0:
            self.assertIn("%s: OK" % self.path(name), out)
        return errors


class OpensslVerify(PkiCase):

    def check_table(self, table):
        for name, (anchor, purpose, checks, error, relax) in table.items():
            with self.subTest(name):
                got = self.verify(name, anchor, "-purpose", purpose, *checks)
                self.assertEqual(got, [error] if error else [], name)
                if relax:
                    # Relax only the one check: the certificate is otherwise good.
                    args = ["-purpose", purpose, *checks]
                    if relax[0] in ("-purpose", "-verify_hostname"):
                        i = args.index(relax[0])
                        args[i + 1] = relax[1]
                    else:
                        args += relax
                    self.assertEqual(self.verify(name, anchor, *args), [], "%s relaxed by %s" % (name, relax))

    def test_server_certificates(self):
        self.check_table(SERVER_CERTS)
        # The good server certificate names every host a test connects to.
        self.assertEqual(self.verify("server", "ca", "-purpose", "sslserver", "-verify_hostname", "localhost"), [])
        self.assertEqual(self.verify("server", "ca", "-purpose", "sslserver", "-verify_ip", "127.0.0.1"), [])
        self.assertEqual(self.verify("server-wronghost", "ca", "-purpose", "sslserver",
                                     "-verify_hostname", "localhost"), [HOSTNAME_MISMATCH])
        self.assertEqual(self.verify("server-wronghost", "ca", "-purpose", "sslserver",
                                     "-verify_ip", "127.0.0.1"), [IP_MISMATCH])

    def test_device_certificates(self):
        self.check_table(DEVICE_CERTS)
        out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in",
                              self.path("device-" + pc.DEV1)], capture_output=True, check=True).stdout
        self.assertEqual(out.decode().strip(), "subject=CN=" + pc.DEV1)

    def eku(self, name):
        r = subprocess.run(["openssl", "x509", "-noout", "-ext", "extendedKeyUsage", "-in", self.path(name)],
                           capture_output=True, check=True, timeout=30)
        return r.stdout.decode()

    def test_code_signing_certificates(self):
        from cryptography import x509
        from commserver import software
        for name, (anchor, codesign_eku, error) in CODESIGN_CERTS.items():
            with self.subTest(name):
                self.assertEqual(self.verify(name, anchor), [error] if error else [])
                self.assertEqual("Code Signing" in self.eku(name), codesign_eku, self.eku(name))
                with open(self.path(name), "rb") as f:
                    cert = x509.load_pem_x509_certificate(f.read())
                with open(self.path(anchor), "rb") as f:
                    ca = x509.load_pem_x509_certificate(f.read())
                if error is None and codesign_eku:
                    software.check_code_signing_cert(cert, ca)
                else:
                    with self.assertRaises(software.ManifestError):
                        software.check_code_signing_cert(cert, ca)
        self.assertEqual(self.verify("codesign-untrusted", "untrusted-ca"), [])
        self.assertIn("TLS Web Server Authentication", self.eku("codesign-wrongku"))
        # The two roots are distinct: neither vouches for the other's leaves.
        self.assertEqual(self.verify("codesign", "ca"), [UNTRUSTED])
        self.assertEqual(self.verify("server", "codesign-ca", "-purpose", "sslserver"), [UNTRUSTED])

    def test_not_yet_valid_starts_beyond_a_reused_pki(self):
        """A PKI is reused while its good certificates are valid: a "not yet
        valid" certificate must not become valid within that time."""
        from cryptography import x509

        def cert(name):
            with open(self.path(name), "rb") as f:
                return x509.load_pem_x509_certificate(f.read())
        good = ["ca", "codesign-ca", "untrusted-ca", "server", "server-wronghost", "server-wrongku",
                "server-untrusted", "device-" + pc.DEV1, "device-" + pc.DEV2, "device-wrongku",
                "device-untrusted", "codesign", "codesign-wrongku", "codesign-untrusted"]
        last = max(cert(n).not_valid_after for n in good)
        self.assertGreater(last, datetime.datetime.utcnow() + datetime.timedelta(days=800))
        for name in ("server-notyet", "device-notyet"):
            self.assertGreater(cert(name).not_valid_before, last, name)


class ClientHandshake(PkiCase):
    """What a TLS client sees when the reference server presents each certificate."""

    def handshake(self, server_cert, host="commserver.test"):
        workdir = pc.make_tmpdir("handshake-" + server_cert)
        with pc.CommServer(self.pki, workdir, ["--no-admin"], server_cert=server_cert) as s:
            ctx = s.tls_context(pc.DEV1)
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
                try:
                    with ctx.wrap_socket(sock, server_hostname=host) as tls:
                        return tls.version()
                except ssl.SSLCertVerificationError as e:
                    return e.verify_code

    def test_client_refuses_each_bad_server_certificate(self):
        for name, (_, _, _, error, _) in SERVER_CERTS.items():
            with self.subTest(name):
                got = self.handshake(name)
                if error is None:
                    self.assertIn(got, ("TLSv1.2", "TLSv1.3"))
                else:
                    self.assertEqual(got, error)
        self.assertEqual(self.handshake("server-wronghost", host="wrong.example.invalid")[:5], "TLSv1")


class Reminting(unittest.TestCase):
    """mkpki on a private directory (the shared PKI is in use by other tests)."""

    def setUp(self):
        self.dir = os.path.join(pc.make_tmpdir("mkpki"), "pki")
        self.addCleanup(pc.cleanup_tmp, os.path.dirname(self.dir))

    def mkpki(self):
        subprocess.run([pc.MKPKI, self.dir], check=True, timeout=60, capture_output=True)
        with open(os.path.join(self.dir, "ca.crt"), "rb") as f:
            return f.read()

    def test_reuse_only_while_every_certificate_keeps_its_property(self):
        d = lambda n: os.path.join(self.dir, n + ".crt")
        first = self.mkpki()
        self.assertEqual(self.mkpki(), first, "a complete, good PKI is reused")
        cases = [
            ("a not-yet-valid certificate became valid", "server.crt", "server-notyet.crt"),
            ("an expired certificate is valid", "device-" + pc.DEV1 + ".crt", "device-expired.crt"),
            ("a device certificate has expired", "device-expired.crt", "device-%s.crt" % pc.DEV2),
        ]
        for why, src, dst in cases:
            with self.subTest(why):
                before = self.mkpki()
                shutil.copyfile(os.path.join(self.dir, src), os.path.join(self.dir, dst))
                self.assertNotEqual(self.mkpki(), before, why)
                r = subprocess.run(["openssl", "verify", "-CAfile", d("ca"), "-purpose", "sslserver", d("server")],
                                   capture_output=True)
                self.assertEqual(r.returncode, 0, r.stdout)
                r = subprocess.run(["openssl", "verify", "-CAfile", d("ca"), d("server-notyet")], capture_output=True)
                self.assertIn(b"error %d " % NOT_YET_VALID, r.stdout + r.stderr)
        before = self.mkpki()
        os.unlink(os.path.join(self.dir, "server-wrongku.key"))
        self.assertNotEqual(self.mkpki(), before, "a missing file")


if __name__ == "__main__":
    pc.run_tests()
