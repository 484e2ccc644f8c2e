#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""policyd's signed-software check and install (policy/software.c), driven by
build/tests/policy/software-install over repositories made by the reference
signing tool with the test code-signing PKI. Every bad package is refused with
its own reason, leaves the drop directory empty and the version floor where it
was; a good one lands in the drop directory and raises the floor; and on every
case the C verifier agrees with `callhome-sign-package --verify`."""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.environ.get("CALLHOME_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "protocol"))
import protocol_common as pc  # noqa: E402

TOOL = os.path.join(pc.BUILD_ROOT, "tests", "policy", "software-install")
MODEL = "XC-9000"


class SoftwareInstall(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = pc.pki()
        cls.workdir = pc.make_tmpdir(cls.__name__)
        # A signer from the right CA with codeSigning but keyUsage keyEncipherment only.
        cls.ku = os.path.join(cls.workdir, "ku")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", cls.ku + ".key", "-out", cls.ku + ".crt", "-subj", "/CN=callhome Test wrong KU",
                        "-days", "30", "-CA", os.path.join(cls.pki, "codesign-ca.crt"),
                        "-CAkey", os.path.join(cls.pki, "codesign-ca.key"),
                        "-addext", "keyUsage=critical,keyEncipherment", "-addext", "extendedKeyUsage=codeSigning",
                        "-addext", "basicConstraints=critical,CA:FALSE"],
                       check=True, capture_output=True, timeout=30)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def setUp(self):
        self.case = os.path.join(self.workdir, self.id().rsplit(".", 1)[-1])
        shutil.rmtree(self.case, ignore_errors=True)
        self.dirs = {}
        for d in ("repo", "staging", "drop", "state"):
            self.dirs[d] = os.path.join(self.case, d)
            os.makedirs(self.dirs[d])

    def sign(self, data=b"P" * 5000, version="2.0.1", **kw):
        pc.sign_package(self.pki, self.dirs["repo"], "fw", data, version=version, **kw)

    def resign(self, name):
        """Signs the manifest again with another key and publishes its certificate."""
        key, cert = (self.ku + ".key", self.ku + ".crt") if name == "ku" else \
            (os.path.join(self.pki, name + ".key"), os.path.join(self.pki, name + ".crt"))
        base = os.path.join(self.dirs["repo"], "fw")
        subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, "-out", base + ".manifest.sig", base + ".manifest"],
                       check=True, timeout=30)
        shutil.copyfile(cert, base + ".signer.pem")

    def edit(self, suffix, change):
        path = os.path.join(self.dirs["repo"], "fw" + suffix)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(change(data))

    def install(self, *extra, model=MODEL):
        return subprocess.run([TOOL, "--anchor", os.path.join(self.pki, "codesign-ca.crt"), "--dir", self.dirs["repo"],
                               "--package-id", "fw", "--model", model, "--staging", self.dirs["staging"],
                               "--drop", self.dirs["drop"], "--state", self.dirs["state"], *extra],
                              capture_output=True, timeout=60)

    def oracle(self, *extra, model=MODEL):
        return subprocess.run([pc.PYTHON, pc.SIGN_TOOL, "--verify", "--anchor", os.path.join(self.pki, "codesign-ca.crt"),
                               "--dir", self.dirs["repo"], "--package-id", "fw", "--model", model, *extra],
                              capture_output=True, timeout=60)

    def floor(self):
        try:
            with open(os.path.join(self.dirs["state"], "software-floor-fw")) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def assertRefused(self, why, *extra, model=MODEL, installed=None, oracle=True):
        """Refused by the C verifier with `why`; by the reference too, unless
        the check is one only the device makes (its clock, its download limit)."""
        before = self.floor()
        r = self.install(*extra, model=model)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(why, r.stderr.decode())
        self.assertEqual(os.listdir(self.dirs["drop"]), [], "nothing was installed")
        self.assertEqual(self.floor(), before, "the floor did not move")
        if oracle:
            o = self.oracle(*(("--installed-version", installed) if installed else ()), model=model)
            self.assertEqual(o.returncode, 1, "callhome-sign-package --verify refuses it too: %s" % o.stdout)

    def assertInstalled(self, version, installed=None):
        r = self.install()
        self.assertEqual(r.returncode, 0, r.stderr)
        name = "fw-%s.pkg" % version
        self.assertEqual(r.stdout.decode().strip(), name)
        self.assertIn(name, os.listdir(self.dirs["drop"]))
        with open(os.path.join(self.dirs["drop"], name), "rb") as f, \
                open(os.path.join(self.dirs["repo"], "fw.pkg"), "rb") as g:
            self.assertEqual(f.read(), g.read())
        self.assertEqual(self.floor(), version + "\n", "the floor is raised")
        self.assertEqual(os.listdir(self.dirs["staging"]), [], "the staged file was moved, not copied")
        o = self.oracle(*(("--installed-version", installed) if installed else ()))
        self.assertEqual(o.returncode, 0, o.stderr)

    def test_good_installs_and_raises_the_floor(self):
        self.sign()
        self.assertInstalled("2.0.1")
        # The same version again: the floor refuses it (the oracle with the same installed version).
        self.assertEqual(self.install().returncode, 1)
        self.sign(version="2.0.10")
        self.assertInstalled("2.0.10", installed="2.0.1")
        self.assertEqual(sorted(os.listdir(self.dirs["drop"])), ["fw-2.0.1.pkg", "fw-2.0.10.pkg"])

    def test_unsigned(self):
        self.sign()
        self.edit(".manifest.sig", lambda d: b"")
        self.assertRefused("manifest signature verification failed")

    def test_tampered_package(self):
        self.sign()
        self.edit(".pkg", lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:])
        self.assertRefused("package SHA-256")

    def test_longer_package(self):
        self.sign()
        self.edit(".pkg", lambda d: d + b"x")
        self.assertRefused("larger than the manifest")

    def test_tampered_manifest(self):
        self.sign()
        self.edit(".manifest", lambda d: d.replace(b"version=2.0.1", b"version=9.0.1"))
        self.assertRefused("manifest signature verification failed")

    def test_manifest_too_large(self):
        self.sign()
        self.edit(".manifest", lambda d: d + b"\n" * 2000)
        self.assertRefused("manifest larger than 1024 bytes")

    def test_bad_signature(self):
        self.sign()
        self.edit(".manifest.sig", lambda d: d[:-1] + bytes([d[-1] ^ 1]))
        self.assertRefused("manifest signature verification failed")

    def test_signature_too_large(self):
        self.sign()
        self.edit(".manifest.sig", lambda d: d + b"\0" * 64)
        self.assertRefused("no P-256 signature")

    def test_tls_server_key(self):
        self.sign()
        self.resign("server")
        self.assertRefused("lacks extendedKeyUsage codeSigning")

    def test_tls_client_key(self):
        self.sign()
        self.resign("device-" + pc.DEV1)
        self.assertRefused("lacks extendedKeyUsage codeSigning")

    def test_wrong_extended_key_usage(self):
        self.sign()
        self.resign("codesign-wrongku")
        self.assertRefused("lacks extendedKeyUsage codeSigning")

    def test_wrong_key_usage(self):
        self.sign()
        self.resign("ku")
        self.assertRefused("lacks keyUsage digitalSignature")

    def test_untrusted_signer(self):
        self.sign()
        self.resign("codesign-untrusted")
        self.assertRefused("does not chain to the pinned code-signing anchor")

    def test_wrong_model(self):
        self.sign(model="XC-1000")
        self.assertRefused("manifest is for model XC-1000, this device is XC-9000")

    def test_expired(self):
        self.sign(extra=("--expires", "2001-01-01T00:00:00Z"))
        self.assertRefused("manifest expired at 2001-01-01T00:00:00Z")

    def floor_at(self, version):
        with open(os.path.join(self.dirs["state"], "software-floor-fw"), "w") as f:
            f.write(version + "\n")

    def test_older_version(self):
        self.sign(version="2.0.1")
        self.floor_at("2.0.10")
        self.assertRefused("version 2.0.1 is not newer than the installed 2.0.10", installed="2.0.10")

    def test_equal_version(self):
        self.sign(version="2.0.1")
        self.floor_at("2.0.1")
        self.assertRefused("version 2.0.1 is not newer than the installed 2.0.1", installed="2.0.1")

    def test_damaged_floor(self):
        self.sign()
        self.floor_at("2.0.x")
        r = self.install()
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"the floor file is damaged", r.stderr)
        self.assertEqual(os.listdir(self.dirs["drop"]), [])

    def test_over_download_limit(self):
        self.sign()
        self.assertRefused("exceeds the download limit", "--max-size", "4999", oracle=False)

    def test_clock_not_set(self):
        self.sign()
        self.assertRefused("the wall clock is not set: it reads 1970-01-01T00:00:05Z", "--now", "5", oracle=False)
        r = self.install("--now", "5")
        self.assertNotIn(b"not yet valid", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
