#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Compactness: an idle CheckIn request and its empty reply are each at most
512 bytes of SOAP, and the envelopes PROTOCOL.md shows are exactly what
goes over the wire."""

import os
import re

import protocol_common as pc

LIMIT = 512
PROTOCOL_MD = os.path.join(pc.SOAP_DIR, "PROTOCOL.md")


def documented(marker):
    """The fenced block following <!-- marker --> in PROTOCOL.md, as bytes."""
    with open(PROTOCOL_MD, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- %s -->\s*```xml\n(.*?)\n```" % re.escape(marker), text, re.S)
    assert m, "PROTOCOL.md lacks the %s example" % marker
    return m.group(1).encode()


class Compact(pc.ServerTestCase):

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

    def test_reply_with_one_instruction_is_small(self):
        self.server.enqueue(pc.DEV2, {"type": "SendMeterReads"})
        status, reply = self.server.post(pc.idle_checkin(pc.DEV2), device=pc.DEV2)
        self.assertEqual(status, 200)
        self.assertLessEqual(len(reply), LIMIT)
        self.assertValidOut(reply)


if __name__ == "__main__":
    pc.run_tests()
