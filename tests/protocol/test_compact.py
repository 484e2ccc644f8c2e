#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Compactness: an idle CheckIn request and its empty reply are each at most
512 bytes of SOAP, the envelopes PROTOCOL.md shows are exactly what goes
over the wire, every figure of its "Compactness" table is measured here
exactly, and every figure of its "Bounds" table is derived from measured
messages."""

import base64
import os
import re

import protocol_common as pc

LIMIT = 512
PROTOCOL_MD = os.path.join(pc.SOAP_DIR, "PROTOCOL.md")
MAX_ID_DIGITS = 20            # xs:unsignedLong
MAX_ESCAPED = 5               # "&" is written "&amp;": the most bytes one character takes


def protocol_md():
    with open(PROTOCOL_MD, encoding="utf-8") as f:
        return f.read()


def documented(marker):
    """The fenced block following <!-- marker --> in PROTOCOL.md, as bytes."""
    m = re.search(r"<!-- %s -->\s*```xml\n(.*?)\n```" % re.escape(marker), protocol_md(), re.S)
    assert m, "PROTOCOL.md lacks the %s example" % marker
    return m.group(1).encode()


def documented_table(heading):
    """{first cell: number} of the table under `heading` in PROTOCOL.md."""
    text = protocol_md()
    start = text.index("\n" + heading + "\n")
    rows = {}
    for line in text[start:].split("\n")[1:]:
        if rows and not line.startswith("|"):
            break
        m = re.fullmatch(r"\| (.+?) \| \**([0-9,]+)\** \|", line)
        if m:
            rows[m.group(1)] = int(m.group(2).replace(",", ""))
    assert rows, "no table under " + heading
    return rows


def elements(reply, name):
    """Each `name` element of a reply, as the bytes sent."""
    return [m.group(0) for m in re.finditer(rb"<%s>.*?</%s>" % (name.encode(), name.encode()), reply, re.S)]


def content(reply, name):
    """The content of the first `name` element, as the bytes sent (escaped)."""
    return re.search(rb"<%s>(.*?)</%s>" % (name.encode(), name.encode()), reply, re.S).group(1)


PACKAGE = "p" * 64


class Compact(pc.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = pc.pki()
        cls.workdir = pc.make_tmpdir(cls.__name__)
        repo = os.path.join(cls.workdir, "repo")
        pc.sign_package(cls.pki, repo, PACKAGE, os.urandom(300_000))
        cls.server = pc.CommServer(cls.pki, cls.workdir, ["--witness-tofu", "--software-dir", repo])
        try:
            cls.server.start()
        except BaseException:
            cls.server.stop()
            raise

    def test_idle_checkin_is_small(self):
        req = pc.idle_checkin(pc.DEV1, last=0, version="0.1.0")
        status, reply = self.server.post(req)
        self.assertEqual(status, 200)
        print("\nidle CheckIn request: %d bytes, reply: %d bytes (limit %d)" % (len(req), len(reply), LIMIT))
        self.assertLessEqual(len(req), LIMIT)
        self.assertLessEqual(len(reply), LIMIT)
        self.assertValidOut(reply)
        # What the documentation promises is byte for byte what was measured.
        self.assertEqual(documented("idle-checkin-request"), req)
        self.assertEqual(documented("idle-checkin-reply"), reply)
        # A realistic idle check-in (long serial, long version, instruction counter) is small too.
        req = pc.idle_checkin("A" * 64, last=18446744073709551615, version="1" * 32)
        self.assertLessEqual(len(req), LIMIT)
        ok, diag = pc.xmllint_validate(req)
        self.assertTrue(ok, diag)

    def post(self, body, device=pc.DEV1, status=200):
        st, reply = self.server.post(body, device=device)
        self.assertEqual(st, status, reply)
        self.assertValidOut(reply)
        return reply

    def test_documented_figures_are_measured(self):
        """Every row of PROTOCOL.md's Compactness table, measured exactly.
        (DEV2 and the witness of DEV1 are this test's alone; DEV1's
        instruction queue is left empty.)"""
        s = self.server
        measured = {}
        measured["idle CheckIn request (12-character serial, version `0.1.0`)"] = len(pc.idle_checkin())
        worst = pc.idle_checkin("A" * 64, last=2 ** 64 - 1, version="1" * 32)
        ok, diag = pc.xmllint_validate(worst)
        self.assertTrue(ok, diag)
        measured["idle CheckIn request, worst case (64-character serial, 32-character version, "
                 "LastInstruction 2^64-1)"] = len(worst)
        measured["empty CheckIn reply"] = len(self.post(pc.idle_checkin()))

        iid = s.enqueue(pc.DEV2, {"type": "SetCheckInInterval", "seconds": 3600})
        reply = self.post(pc.idle_checkin(pc.DEV2), device=pc.DEV2)
        self.assertEqual(len(elements(reply, "Instruction")), 1)
        self.assertLessEqual(len(reply), LIMIT)
        measured["CheckIn reply with one `SetCheckInInterval` instruction (`Id` 1, 3600 seconds)"] = \
            len(reply) - len(str(iid)) + 1
        self.post(pc.idle_checkin(pc.DEV2, last=iid), device=pc.DEV2)

        reply = self.post(pc.idle_checkin(pc.DEV1), device=pc.DEV2, status=500)
        self.assertEqual(pc.fault_detail(reply)[0], "NotAuthorized")
        measured["NotAuthorized Fault (a 12-character `DeviceId` that is not the certificate's)"] = len(reply)

        log = pc.DeviceLog(pc.DEV1)
        self.assertEqual(len(log.name), 32)
        log.append(1000)
        first = pc.checkin_with_witness(pc.DEV1, log.checkpoint(), 0, log_key=log.vkey)
        measured["CheckIn with a checkpoint, its `LogKey` and no proof (first contact, 1000 records)"] = len(first)
        reply = self.post(first)
        self.assertEqual(pc.find(reply, "Witness/AckedSize"), "1000")
        measured["CheckIn reply acknowledging a checkpoint (`AckedSize`, `AckedRoot`, `Cosignature`)"] = len(reply)
        log.append(24)
        proof = log.proof(1000)
        self.assertEqual(len(proof), 8)
        second = pc.checkin_with_witness(pc.DEV1, log.checkpoint(), 1000, proof)
        measured["CheckIn with a checkpoint and an 8-hash consistency proof (1000 → 1024 records)"] = len(second)
        reply = self.post(second)
        self.assertEqual(pc.find(reply, "Witness/AckedSize"), "1024")
        self.assertIsNotNone(pc.find(reply, "Witness/Cosignature"))

        print("\nmeasured:\n" + "\n".join("  %5d  %s" % (v, k) for k, v in measured.items()))
        self.assertEqual(documented_table("### Compactness"), measured)

    def test_documented_bounds_hold(self):
        """PROTOCOL.md's Bounds table: the largest instruction, the witness
        part, the largest CheckIn reply and the first GetSoftware range, each
        derived from a measured message: what is measured plus what the
        bound allows more (digits of an unsignedLong, escaped characters)."""
        s = self.server
        bounds = documented_table("## Bounds (for the client's parser)")
        derived = {}
        items = ["i%063d" % n for n in range(64)]
        last = 0
        # The largest DiagnosticsRequested: every Reason character escaped.
        for reason, key in (("&" * 256, "largest"), ("r" * 256, "plain")):
            iid = s.enqueue(pc.DEV2, {"type": "DiagnosticsRequested", "reason": reason, "items": items})
            reply = self.post(pc.idle_checkin(pc.DEV2, last=last), device=pc.DEV2)
            (ins,) = elements(reply, "Instruction")
            self.assertIn(b"<Id>%d</Id>" % iid, ins)
            if key == "largest":
                derived["one `Instruction`: a `DiagnosticsRequested` with a 20-digit `Id`, a 256-character "
                        "`Reason` of `&` and 64 `Item`s of 64 characters"] = \
                    len(ins) - len(str(iid)) + MAX_ID_DIGITS
            else:
                derived["the same with a 1-digit `Id` and a 256-character ASCII `Reason` with nothing to "
                        "escape"] = len(ins) - len(str(iid)) + 1
            last = iid
        self.post(pc.idle_checkin(pc.DEV2, last=last), device=pc.DEV2)
        largest = max(v for k, v in derived.items() if k.startswith("one "))

        # The witness part: its markup, plus the largest values the XSD allows.
        log = pc.DeviceLog(pc.DEV2)
        log.append(3)
        reply = self.post(pc.checkin_with_witness(pc.DEV2, log.checkpoint(), 0, log_key=log.vkey, last=last),
                          device=pc.DEV2)
        (witness,) = elements(reply, "Witness")
        self.assertEqual(len(content(witness, "AckedRoot")), 44)
        markup = len(witness) - sum(len(content(witness, n)) for n in ("AckedSize", "AckedRoot", "Cosignature"))
        derived["the `Witness` of a CheckIn reply: 20-digit `AckedSize`, a 512-character `Cosignature` "
                "of `&`"] = markup + MAX_ID_DIGITS + 44 + 512 * MAX_ESCAPED
        witness_max = derived["the `Witness` of a CheckIn reply: 20-digit `AckedSize`, a 512-character "
                              "`Cosignature` of `&`"]

        # A CheckIn reply: 16 of the largest instructions and a witness.
        ids = [s.enqueue(pc.DEV2, {"type": "DiagnosticsRequested", "reason": "&" * 256, "items": items})
               for _ in range(16)]
        log.append(1)
        reply = self.post(pc.checkin_with_witness(pc.DEV2, log.checkpoint(), 3, log.proof(3), last=last),
                          device=pc.DEV2)
        instructions = elements(reply, "Instruction")
        self.assertEqual(len(instructions), 16)
        wrapper = len(reply) - sum(map(len, instructions)) - len(elements(reply, "Witness")[0])
        derived["a CheckIn reply: 16 such instructions and such a `Witness`"] = \
            wrapper + 16 * largest + witness_max
        self.assertLessEqual(len(reply), derived["a CheckIn reply: 16 such instructions and such a `Witness`"])
        self.post(pc.idle_checkin(pc.DEV2, last=ids[-1]), device=pc.DEV2)

        # GetSoftware, first range of a large package.
        reply = self.post(pc.envelope(
            '<GetSoftware xmlns="%s"><DeviceId>%s</DeviceId><PackageId>%s</PackageId><Offset>0</Offset>'
            '<Length>262144</Length></GetSoftware>' % (pc.TNS, pc.DEV1, PACKAGE)))
        fields = {n: pc.find(reply, n) for n in ("Data", "Manifest", "ManifestSignature", "SignerCertificate",
                                                  "TotalSize")}
        self.assertEqual(len(base64.b64decode(fields["Data"])), 262144)
        self.assertEqual(len(fields["Data"]), 349528)
        fixed = len(reply) - sum(len(fields[n]) for n in ("Data", "Manifest", "ManifestSignature",
                                                           "SignerCertificate", "TotalSize")) + 16
        b64len = lambda n: 4 * ((n + 2) // 3)
        derived["a first GetSoftware range besides the base64 of the signer certificate: 262,144 bytes of "
                "`Data`, a 1,024-byte manifest, an 80-byte signature, a 64-character `PackageId`, a 16-digit "
                "`TotalSize`"] = fixed + 349528 + b64len(1024) + b64len(80)

        print("\nderived:\n" + "\n".join("  %6d  %s" % (v, k) for k, v in derived.items()))
        self.assertEqual(bounds, derived)


if __name__ == "__main__":
    pc.run_tests()
