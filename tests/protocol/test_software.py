#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Signed software: the signing tool writes the manifest format of
SOFTWARE-MANIFEST.md and a detached ECDSA P-256 signature that plain
`openssl dgst` verifies; it refuses a non-code-signing certificate; the
verifier refuses tampering (package, manifest, signature), other anchors, a
signer without code-signing key usage, other models, old versions and
expired manifests; GetSoftware serves the package in byte ranges."""

import hashlib
import os
import shutil
import subprocess
import unittest

import protocol_common as pc

from commserver import software


def tool(*args):
    return subprocess.run([pc.PYTHON, pc.SIGN_TOOL, *args], capture_output=True, timeout=60)


class SigningTool(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = pc.pki()
        cls.workdir = pc.make_tmpdir(cls.__name__)

    def repo(self, name):
        return os.path.join(self.workdir, name)

    def verify(self, repo, pid, *extra, anchor="codesign-ca.crt"):
        return tool("--verify", "--anchor", os.path.join(self.pki, anchor), "--dir", repo,
                    "--package-id", pid, *extra)

    def test_sign_and_verify(self):
        repo = self.repo("good")
        data = os.urandom(10_000)
        out = pc.sign_package(self.pki, repo, "fw", data, version="1.2.3", model="XC-9000")
        with open(os.path.join(repo, "fw.manifest"), "rb") as f:
            manifest = f.read()
        self.assertEqual(out, manifest)
        lines = manifest.decode().split("\n")
        self.assertEqual(lines[0], "callhome-manifest-v1")
        self.assertEqual(lines[1:6], ["package=fw", "version=1.2.3", "size=10000",
                                      "sha256=" + hashlib.sha256(data).hexdigest(), "model=XC-9000"])
        self.assertRegex(lines[6], r"^expires=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(lines[7:], [""])
        # An independent verifier: openssl with the signer certificate's key.
        pub = os.path.join(self.workdir, "codesign.pub")
        subprocess.run(["openssl", "x509", "-in", os.path.join(repo, "fw.signer.pem"), "-pubkey", "-noout",
                        "-out", pub], check=True, timeout=30)
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature",
                            os.path.join(repo, "fw.manifest.sig"), os.path.join(repo, "fw.manifest")],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.verify(repo, "fw", "--model", "XC-9000", "--installed-version", "1.2.2")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The code-signing key is not a TLS key: the TLS root is no anchor for it.
        self.assertEqual(self.verify(repo, "fw", anchor="ca.crt").returncode, 1)
        self.assertEqual(self.verify(repo, "fw", anchor="untrusted-ca.crt").returncode, 1)
        self.assertEqual(self.verify(repo, "fw", "--model", "OTHER").returncode, 1)
        self.assertEqual(self.verify(repo, "fw", "--installed-version", "1.2.3").returncode, 1)
        self.assertEqual(self.verify(repo, "fw", "--installed-version", "1.10").returncode, 1)

    def test_tampering_is_detected(self):
        repo = self.repo("tamper")
        pc.sign_package(self.pki, repo, "fw", b"A" * 5000)
        path = os.path.join(repo, "fw.manifest")
        with open(path, "rb") as f:
            good = f.read()
        with open(path, "wb") as f:
            f.write(good.replace(b"version=2.0.1", b"version=9.0.1"))
        self.assertEqual(self.verify(repo, "fw").returncode, 1)
        with open(path, "wb") as f:
            f.write(good)
        self.assertEqual(self.verify(repo, "fw").returncode, 0)
        with open(os.path.join(repo, "fw.pkg"), "r+b") as f:
            f.write(b"B")
        self.assertEqual(self.verify(repo, "fw").returncode, 1)

    def test_tampered_signature_is_refused(self):
        repo = self.repo("badsig")
        pc.sign_package(self.pki, repo, "fw", b"A" * 5000)
        other = self.repo("badsig-other")
        pc.sign_package(self.pki, other, "fw", b"A" * 5000, version="2.0.2")
        sig_path = os.path.join(repo, "fw.manifest.sig")
        with open(sig_path, "rb") as f:
            good = f.read()
        with open(os.path.join(other, "fw.manifest.sig"), "rb") as f:
            other_sig = f.read()
        self.assertEqual(self.verify(repo, "fw").returncode, 0)
        flip = lambda b, i: b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1:]
        cases = {
            "last byte flipped": flip(good, len(good) - 1),
            "a byte of r flipped": flip(good, 8),
            "DER header changed": flip(good, 0),
            "truncated": good[:-1],
            "trailing byte": good + b"\0",
            "empty": b"",
            "too large": good + b"\0" * 64,
            "another manifest's signature": other_sig,
        }
        for why, sig in cases.items():
            with self.subTest(why):
                with open(sig_path, "wb") as f:
                    f.write(sig)
                r = self.verify(repo, "fw")
                self.assertEqual(r.returncode, 1, why)
                self.assertIn(b"verification failed", r.stderr)
        os.unlink(sig_path)
        self.assertEqual(self.verify(repo, "fw").returncode, 2, "no signature file")
        with open(sig_path, "wb") as f:
            f.write(good)
        self.assertEqual(self.verify(repo, "fw").returncode, 0)

    def resign(self, repo, pid, key, cert):
        """Replace a repository's signature and signer by another key's, signed
        with plain openssl: what a signer with that certificate would publish."""
        manifest = os.path.join(repo, pid + ".manifest")
        subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, "-out", manifest + ".sig", manifest],
                       check=True, timeout=30)
        shutil.copyfile(cert, os.path.join(repo, pid + ".signer.pem"))
        # The signature itself is good: only the certificate is wrong.
        pub = os.path.join(repo, "signer.pub")
        subprocess.run(["openssl", "x509", "-in", os.path.join(repo, pid + ".signer.pem"), "-pubkey", "-noout",
                        "-out", pub], check=True, timeout=30)
        subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", manifest + ".sig", manifest],
                       check=True, capture_output=True, timeout=30)

    def test_wrong_signer_is_refused_at_verify_time(self):
        """A manifest whose signer may not sign code is refused by --verify,
        not only by the signing tool: the signer's key usage, extended key
        usage and issuer are checked against the pinned anchor."""
        # A certificate from the right CA with EKU codeSigning but keyUsage
        # keyEncipherment only (mkpki's codesign-wrongku has the wrong EKU).
        ku_key = os.path.join(self.workdir, "codesign-ku.key")
        ku_crt = os.path.join(self.workdir, "codesign-ku.crt")
        ext = os.path.join(self.workdir, "codesign-ku.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\n"
                    "extendedKeyUsage=critical,codeSigning\n")
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", ku_key, "-subj", "/CN=callhome Test KU", "-out", ku_key + ".csr"],
                       check=True, capture_output=True, timeout=30)
        subprocess.run(["openssl", "x509", "-req", "-in", ku_key + ".csr", "-CA", os.path.join(self.pki, "codesign-ca.crt"),
                        "-CAkey", os.path.join(self.pki, "codesign-ca.key"), "-set_serial", "7", "-days", "30",
                        "-extfile", ext, "-out", ku_crt], check=True, capture_output=True, timeout=30)
        in_pki = lambda n: (os.path.join(self.pki, n + ".key"), os.path.join(self.pki, n + ".crt"))
        cases = [("codesign-wrongku", in_pki("codesign-wrongku"), b"codeSigning"),
                 ("keyUsage", (ku_key, ku_crt), b"digitalSignature"),
                 ("codesign-untrusted", in_pki("codesign-untrusted"), b"anchor"),
                 ("server", in_pki("server"), b"codeSigning")]
        for name, (key, cert), why in cases:
            with self.subTest(name):
                repo = self.repo("signer-" + name)
                pc.sign_package(self.pki, repo, "fw", b"B" * 3000)
                self.assertEqual(self.verify(repo, "fw").returncode, 0)
                self.resign(repo, "fw", key, cert)
                r = self.verify(repo, "fw")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(why, r.stderr)

    def test_refuses_wrong_certificates_and_expired(self):
        src = os.path.join(self.workdir, "blob")
        with open(src, "wb") as f:
            f.write(b"x")
        for name in ("codesign-wrongku", "server", "device-" + pc.DEV1):
            r = tool("--key", os.path.join(self.pki, name + ".key"), "--cert", os.path.join(self.pki, name + ".crt"),
                     "--package-id", "x", "--version", "1", "--model", "M", "--out-dir", self.repo("bad"), src)
            self.assertEqual(r.returncode, 1, name)
            self.assertIn(b"codeSigning", r.stderr)
        repo = self.repo("expired")
        pc.sign_package(self.pki, repo, "old", b"x", extra=("--expires", "2001-01-01T00:00:00Z"))
        r = self.verify(repo, "old")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"expired", r.stderr)

    def test_manifest_parser_is_strict(self):
        good = software.format_manifest({"package": "p", "version": "1.0", "size": 1, "sha256": "0" * 64,
                                         "model": "M", "expires": "2030-01-01T00:00:00Z"})
        software.parse_manifest(good)
        for bad in (good.replace(b"\n", b"\r\n"), good[:-1], good.replace(b"size=1", b"size=01"),
                    good.replace(b"model=M\n", b""), good + b"extra=1\n", good.replace(b"package", b"Package"),
                    b"callhome-manifest-v2" + good[20:], good.replace(b"version=1.0", b"version=1.0-rc1"),
                    good + b"\n" * 2000):
            with self.assertRaises(software.ManifestError, msg=bad):
                software.parse_manifest(bad)


class GetSoftwareRanges(pc.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = pc.pki()
        cls.workdir = pc.make_tmpdir(cls.__name__)
        cls.repo = os.path.join(cls.workdir, "repo")
        cls.data = os.urandom(100_001)
        pc.sign_package(cls.pki, cls.repo, "fw", cls.data)
        # Signed, then altered without changing its size.
        pc.sign_package(cls.pki, cls.repo, "fw-bad", cls.data)
        with open(os.path.join(cls.repo, "fw-bad.pkg"), "r+b") as f:
            f.seek(50_000)
            f.write(bytes([cls.data[50_000] ^ 0x80]))
        cls.server = pc.CommServer(cls.pki, cls.workdir, ["--software-dir", cls.repo])
        try:
            cls.server.start()
        except BaseException:
            cls.server.stop()
            raise

    def get(self, pid, offset, length):
        body = pc.envelope('<GetSoftware xmlns="%s"><DeviceId>%s</DeviceId><PackageId>%s</PackageId>'
                           '<Offset>%d</Offset><Length>%d</Length></GetSoftware>' % (pc.TNS, pc.DEV1, pid, offset, length))
        status, out = self.server.post(body)
        self.assertValidOut(out)
        return status, out

    def test_ranges(self):
        import base64
        got = b""
        while len(got) < len(self.data):
            st, out = self.get("fw", len(got), 30_000)
            self.assertEqual(st, 200)
            self.assertEqual(pc.find(out, "TotalSize"), str(len(self.data)))
            chunk = base64.b64decode(pc.find(out, "Data") or "")
            self.assertEqual(len(chunk), min(30_000, len(self.data) - len(got)))
            has_manifest = pc.find(out, "Manifest") is not None
            self.assertEqual(has_manifest, len(got) == 0)
            got += chunk
        self.assertEqual(got, self.data)
        st, out = self.get("fw", len(self.data), 10)       # at the end: empty Data
        self.assertEqual((st, pc.find(out, "Data")), (200, None))

    def assertNotHosted(self, pid):
        for offset, length in ((0, 0), (0, 1000), (60_000, 1000)):
            st, out = self.get(pid, offset, length)
            self.assertEqual((st, pc.fault_detail(out)[0]), (500, "RetryAfter"), out)
            self.assertNotIn(b"<Data>", out)
        st, res = self.server.admin("POST", "/v1/devices/%s/instructions" % pc.DEV1,
                                    {"type": "SoftwareAvailable", "package": pid})
        self.assertEqual(st, 400, res)
        self.assertIn("SHA-256", res["error"])

    def test_package_that_does_not_match_its_manifest_is_not_hosted(self):
        """Same size, other content: refused, though the manifest and its
        signature are fine; and a package altered after it was served once
        is refused from then on."""
        self.assertNotHosted("fw-bad")
        later = os.urandom(70_000)
        pc.sign_package(self.pki, self.repo, "fw-later", later)
        st, out = self.get("fw-later", 0, 1000)
        self.assertEqual(st, 200)
        self.server.enqueue(pc.DEV1, {"type": "SoftwareAvailable", "package": "fw-later"})
        with open(os.path.join(self.repo, "fw-later.pkg"), "r+b") as f:
            f.seek(65_000)
            f.write(bytes([later[65_000] ^ 1]))
        self.assertNotHosted("fw-later")

    def test_errors(self):
        self.assertEqual(pc.fault_detail(self.get("nope", 0, 10)[1])[0], "BadRequest")
        self.assertEqual(pc.fault_detail(self.get("fw", len(self.data) + 1, 10)[1])[0], "BadRequest")
        self.assertEqual(pc.fault_detail(self.get("fw", 0, 262145)[1])[0], "BadRequest")
        self.assertEqual(pc.fault_detail(self.get("../fw", 0, 1)[1])[0], "BadRequest")


if __name__ == "__main__":
    pc.run_tests()
