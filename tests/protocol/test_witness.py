#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The server as witness of the device audit log: RFC 9162 consistency
proofs (checked against an independent proof generator written here), C2SP
signed-note checkpoints, tlog-cosignature/v1 cosignatures, and the LogFork
fault for anything that does not extend what the server acknowledged."""

import base64
import hashlib
import os
import struct
import unittest

import protocol_common as pc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from commserver import merkle, note


# ---- an independent RFC 9162 implementation (2.1.1 and 2.1.4.1), for the tests only

def _h(b):
    return hashlib.sha256(b).digest()


def mth(leaves):
    if not leaves:
        return _h(b"")
    if len(leaves) == 1:
        return _h(b"\x00" + leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _h(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def proof(m, leaves, complete=True):
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return proof(m, leaves[:k], complete) + [mth(leaves[k:])]
    return proof(m - k, leaves[k:], False) + [mth(leaves[:k])]


class ConsistencyProofs(unittest.TestCase):

    def test_all_small_trees(self):
        leaves = [b"leaf-%d" % i for i in range(40)]
        for n in range(1, 41):
            for m in range(1, n + 1):
                p = proof(m, leaves[:n])
                a, b = mth(leaves[:m]), mth(leaves[:n])
                self.assertTrue(merkle.verify_consistency(m, n, a, b, p), (m, n))
                self.assertEqual(merkle.tree_hash(leaves[:n]), b)
                if m == n:
                    continue
                for i in range(len(p)):
                    bad = list(p)
                    bad[i] = bytes(32)
                    self.assertFalse(merkle.verify_consistency(m, n, a, b, bad), (m, n, i))
                self.assertFalse(merkle.verify_consistency(m, n, a, b, p[:-1]), (m, n))
                self.assertFalse(merkle.verify_consistency(m, n, a, b, p + [bytes(32)]), (m, n))
                self.assertFalse(merkle.verify_consistency(m, n, b, b, p), (m, n))
                self.assertFalse(merkle.verify_consistency(n, m, b, a, p), (m, n))
                if m > 1:
                    self.assertFalse(merkle.verify_consistency(m - 1, n, a, b, p), (m, n))
                forked = leaves[:m - 1] + [b"evil"] + leaves[m:n]
                self.assertFalse(merkle.verify_consistency(m, n, a, mth(forked), proof(m, forked)), (m, n))

    def test_edge_cases(self):
        e = _h(b"")
        r = mth([b"x"])
        self.assertTrue(merkle.verify_consistency(0, 5, e, r, []))
        self.assertTrue(merkle.verify_consistency(3, 3, r, r, []))
        self.assertFalse(merkle.verify_consistency(3, 3, r, e, []))
        self.assertFalse(merkle.verify_consistency(1, 2, r, r, []))
        self.assertFalse(merkle.verify_consistency(1, 2, r, r, [b"short"]))
        self.assertFalse(merkle.verify_consistency(1, 2, r, r, [bytes(32)] * 65))


class SignedNotes(unittest.TestCase):

    def test_sign_parse_verify(self):
        key = Ed25519PrivateKey.generate()
        text = b"callhome.test/audit/X\n3\n" + base64.b64encode(bytes(32)) + b"\n"
        signed = note.sign_note(text, "callhome.test/audit/X", key)
        v = note.Verifier.from_vkey(note.verifier_for("callhome.test/audit/X", key).vkey())
        n = note.parse_note(signed)
        self.assertEqual(n.text, text)
        self.assertTrue(note.verify_note(n, v))
        tampered = note.parse_note(signed.replace(b"\n3\n", b"\n4\n"))
        self.assertFalse(note.verify_note(tampered, v))
        other = note.verifier_for("callhome.test/audit/X", Ed25519PrivateKey.generate())
        self.assertFalse(note.verify_note(n, other))
        for bad in (b"no signature\n", signed[:-1], signed.replace(b"\n3\n", b"\n\x01\n"), b"x" * 3000):
            with self.assertRaises(note.NoteError):
                note.parse_note(bad)


def verify_cosignature_independently(vkey, line, checkpoint_text):
    """tlog-cosignature/v1 by hand: vkey = name+keyid+base64(0x04||pub)."""
    name, kid, key_b64 = vkey.split("+", 2)
    raw = base64.b64decode(key_b64)
    assert raw[0] == 0x04
    pub = raw[1:]
    assert hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4].hex() == kid
    dash, lname, sig_b64 = line.split(" ")
    assert dash == "\u2014" and lname == name
    sig = base64.b64decode(sig_b64)
    assert len(sig) == 76 and sig[:4].hex() == kid
    ts = struct.unpack(">Q", sig[4:12])[0]
    Ed25519PublicKey.from_public_bytes(pub).verify(sig[12:], b"cosignature/v1\ntime %d\n" % ts + checkpoint_text)
    return ts


class WitnessTofu(pc.ServerTestCase):
    server_args = ("--witness-tofu",)

    def checkin(self, log, proof_from, proof_hashes=(), log_key=None, checkpoint=None, device=None):
        device = device or log.device
        body = pc.checkin_with_witness(device, checkpoint or log.checkpoint(), proof_from, proof_hashes, log_key)
        status, out = self.server.post(body, device=device)
        self.assertValidOut(out)
        return status, out

    def assertCosigned(self, out, log, size):
        self.assertEqual(pc.find(out, "Witness/AckedSize"), str(size))
        self.assertEqual(base64.b64decode(pc.find(out, "Witness/AckedRoot")), log.root(size))
        cosig = pc.find(out, "Witness/Cosignature")
        self.assertIsNotNone(cosig, out)
        body = log.checkpoint(size).encode().split(b"\n\n")[0] + b"\n"
        verify_cosignature_independently(self.server.witness_vkey, cosig, body)
        self.assertIsNotNone(note.verify_cosignature(cosig, body, *self._witness_key()))

    def _witness_key(self):
        name, _, key_b64 = self.server.witness_vkey.split("+", 2)
        return name, base64.b64decode(key_b64)[1:]

    def assertFork(self, status, out, acked_size, log):
        self.assertEqual(status, 500)
        kind, fields = pc.fault_detail(out)
        self.assertEqual(kind, "LogFork", out)
        self.assertEqual(fields["AckedSize"], str(acked_size))
        self.assertEqual(base64.b64decode(fields["AckedRoot"]), log.root(acked_size))

    def test_witness_flow(self):
        dev = pc.DEV1
        log = pc.DeviceLog(dev)
        log.append(3)

        # First contact: no key on record, LogKey accepted on first use.
        st, out = self.checkin(log, 0, log_key=log.vkey)
        self.assertEqual(st, 200, out)
        self.assertCosigned(out, log, 3)
        self.assertEqual(self.server.device_state(dev)["witness"]["log_key"], log.vkey)

        # Grows with a good proof from the acknowledged size.
        log.append(5)
        st, out = self.checkin(log, 3, log.proof(3))
        self.assertEqual(st, 200, out)
        self.assertCosigned(out, log, 8)

        # The same checkpoint again is cosigned again (the device lost our reply).
        st, out = self.checkin(log, 8)
        self.assertCosigned(out, log, 8)

        # A proof from a stale size is no fork: no cosignature, and the size to prove from.
        log.append(2)
        st, out = self.checkin(log, 3, log.proof(3))
        self.assertEqual(st, 200)
        self.assertEqual(pc.find(out, "Witness/AckedSize"), "8")
        self.assertIsNone(pc.find(out, "Witness/Cosignature"))

        # Forks: a rewritten history with a proof of its own, a bad proof, truncation, same size other root.
        forked = pc.DeviceLog(dev)
        forked.key, forked.vkey = log.key, log.vkey
        forked.leaves = list(log.leaves)
        forked.leaves[5] = b"rewritten"
        forked.append(2)
        self.assertFork(*self.checkin(forked, 8, forked.proof(8)), 8, log)
        self.assertFork(*self.checkin(log, 8, [bytes(32)] * len(log.proof(8))), 8, log)
        self.assertFork(*self.checkin(log, 8, [], checkpoint=log.checkpoint(6)), 8, log)
        self.assertFork(*self.checkin(log, 8, [], checkpoint=log.checkpoint(8, root=bytes(32))), 8, log)

        # Wrong keys.
        other = pc.DeviceLog(dev)
        other.leaves = list(log.leaves)
        st, out = self.checkin(log, 8, log.proof(8), checkpoint=other.checkpoint())
        self.assertEqual(pc.fault_detail(out)[0], "NotAuthorized")
        st, out = self.checkin(log, 8, log.proof(8), log_key=other.vkey)
        self.assertEqual(pc.fault_detail(out)[0], "NotAuthorized")

        # Malformed checkpoint.
        st, out = self.checkin(log, 8, [], checkpoint="not a checkpoint\n")
        self.assertEqual(pc.fault_detail(out)[0], "BadRequest")

        # Nothing above moved the acknowledged head: the honest log still extends it.
        st, out = self.checkin(log, 8, log.proof(8))
        self.assertEqual(st, 200, out)
        self.assertCosigned(out, log, 10)
        w = self.server.device_state(dev)["witness"]
        self.assertEqual((w["size"], base64.b64decode(w["root"])), (10, log.root()))

    def test_large_tree(self):
        dev = pc.DEV2
        log = pc.DeviceLog(dev)
        log.append(1000)
        st, out = self.checkin(log, 0, log_key=log.vkey)
        self.assertCosigned(out, log, 1000)
        log.append(12345)
        p = log.proof(1000)
        self.assertEqual(p, proof(1000, log.leaves))   # the helper agrees with the independent generator
        st, out = self.checkin(log, 1000, p)
        self.assertEqual(st, 200, out)
        self.assertCosigned(out, log, 13345)


class WitnessConfiguredKeys(pc.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = pc.pki()
        cls.workdir = pc.make_tmpdir(cls.__name__)
        keys = os.path.join(cls.workdir, "log-keys")
        os.makedirs(keys)
        cls.log = pc.DeviceLog(pc.DEV1)
        with open(os.path.join(keys, pc.DEV1 + ".vkey"), "w") as f:
            f.write(cls.log.vkey + "\n")
        cls.server = pc.CommServer(cls.pki, cls.workdir, ["--log-keys", keys])
        try:
            cls.server.start()
        except BaseException:
            cls.server.stop()
            raise

    def test_configured_key_and_no_tofu(self):
        self.log.append(4)
        st, out = self.server.post(pc.checkin_with_witness(pc.DEV1, self.log.checkpoint(), 0))
        self.assertEqual(st, 200, out)
        self.assertEqual(pc.find(out, "Witness/AckedSize"), "4")
        # Without TOFU, a device with no configured key is refused even if it sends one.
        stranger = pc.DeviceLog(pc.DEV2)
        stranger.append(1)
        st, out = self.server.post(pc.checkin_with_witness(pc.DEV2, stranger.checkpoint(), 0,
                                                           log_key=stranger.vkey), device=pc.DEV2)
        self.assertEqual(pc.fault_detail(out)[0], "NotAuthorized")
        # The admin interface can pin a key.
        st, res = self.server.admin("POST", "/v1/devices/%s/log-key" % pc.DEV2, {"vkey": stranger.vkey})
        self.assertEqual(st, 200, res)
        st, out = self.server.post(pc.checkin_with_witness(pc.DEV2, stranger.checkpoint(), 0), device=pc.DEV2)
        self.assertEqual(st, 200, out)


if __name__ == "__main__":
    pc.run_tests()
