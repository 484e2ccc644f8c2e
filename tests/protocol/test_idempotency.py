#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Submissions are idempotent by transaction id: a repeat (however it is
serialised, however many at once, across a server restart) is acknowledged
as Duplicate and counted once; reusing an id for other content is refused."""

import os
import threading
import unittest

import protocol_common as pc


def meter_reads(device, txid, value, pretty=False):
    sep = "\n  " if pretty else ""
    return pc.envelope(
        '<SubmitMeterReads xmlns="{ns}">{s}<DeviceId>{d}</DeviceId>{s}<TransactionId>{t}</TransactionId>{s}'
        '<Time>2026-03-01T10:00:00Z</Time>{s}<Meter><Name>prtMarkerLifeCount.1</Name><Value>{v}</Value>'
        '<Unit>impressions</Unit></Meter>{s}</SubmitMeterReads>'.format(ns=pc.TNS, d=device, t=txid, v=value, s=sep))


def supplies(device, txid):
    return pc.envelope(
        '<SubmitSupplies xmlns="%s"><DeviceId>%s</DeviceId><TransactionId>%s</TransactionId>'
        '<Time>2026-03-01T10:00:00Z</Time><Supply><Name>toner.black</Name><Type>toner</Type><Level>55</Level>'
        '<MaxCapacity>100</MaxCapacity></Supply></SubmitSupplies>' % (pc.TNS, device, txid))


class Idempotency(pc.ServerTestCase):

    def submit(self, body, device=pc.DEV1):
        status, out = self.server.post(body, device=device)
        self.assertValidOut(out)
        return status, out

    def test_repeat_is_acknowledged_and_counted_once(self):
        dev = pc.DEV1
        st, out = self.submit(meter_reads(dev, dev + "-100", 5000))
        self.assertEqual((st, pc.find(out, "Status"), pc.find(out, "TransactionId")),
                         (200, "Accepted", dev + "-100"))
        for _ in range(3):
            st, out = self.submit(meter_reads(dev, dev + "-100", 5000))
            self.assertEqual((st, pc.find(out, "Status")), (200, "Duplicate"))
        # A retransmission serialised differently (whitespace, prefixes) is still the same content.
        st, out = self.submit(meter_reads(dev, dev + "-100", 5000, pretty=True))
        self.assertEqual(pc.find(out, "Status"), "Duplicate")
        prefixed = meter_reads(dev, dev + "-100", 5000).replace(b'<SubmitMeterReads xmlns="%s">' % pc.TNS.encode(),
                                                                b'<c:SubmitMeterReads xmlns:c="%s" xmlns="%s">'
                                                                % (pc.TNS.encode(), pc.TNS.encode())) \
            .replace(b"</SubmitMeterReads>", b"</c:SubmitMeterReads>")
        st, out = self.submit(prefixed)
        self.assertEqual(pc.find(out, "Status"), "Duplicate")

        state = self.server.device_state(dev)
        self.assertEqual(state["counts"]["SubmitMeterReads"], 1)
        self.assertEqual(state["duplicates"]["SubmitMeterReads"], 5)
        self.assertEqual([s["transaction_id"] for s in state["submissions"]
                          if s["op"] == "SubmitMeterReads"], [dev + "-100"])

    def test_same_id_other_content_is_refused(self):
        dev = pc.DEV1
        self.assertEqual(pc.find(self.submit(meter_reads(dev, dev + "-200", 1))[1], "Status"), "Accepted")
        st, out = self.submit(meter_reads(dev, dev + "-200", 2))
        self.assertEqual(st, 500)
        self.assertEqual(pc.fault_detail(out)[0], "BadRequest")
        st, out = self.submit(supplies(dev, dev + "-200"))
        self.assertEqual(pc.fault_detail(out)[0], "BadRequest")

    def test_ids_are_per_device(self):
        self.assertEqual(pc.find(self.submit(supplies(pc.DEV1, "shared-1"))[1], "Status"), "Accepted")
        self.assertEqual(pc.find(self.submit(supplies(pc.DEV2, "shared-1"), device=pc.DEV2)[1], "Status"),
                         "Accepted")

    def test_concurrent_repeats_count_once(self):
        dev = pc.DEV2
        results, errors = [], []

        def worker():
            try:
                results.append(pc.find(self.server.post(supplies(dev, dev + "-race"), device=dev)[1], "Status"))
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(sorted(results), ["Accepted"] + ["Duplicate"] * 7)
        self.assertEqual(self.server.device_state(dev)["duplicates"]["SubmitSupplies"], 7)


class IdempotencyAcrossRestart(unittest.TestCase):

    def test_restart_remembers_transactions(self):
        pki = pc.pki()
        workdir = pc.make_tmpdir(type(self).__name__)
        state = os.path.join(workdir, "state")
        dev = pc.DEV1
        with pc.CommServer(pki, workdir, state_dir=state) as s:
            self.assertEqual(pc.find(s.post(meter_reads(dev, dev + "-1", 10))[1], "Status"), "Accepted")
        self.assertEqual(s.returncode, 0, "SIGTERM ends the server cleanly")
        with pc.CommServer(pki, workdir, state_dir=state) as s:
            self.assertEqual(pc.find(s.post(meter_reads(dev, dev + "-1", 10))[1], "Status"), "Duplicate")
            self.assertEqual(s.device_state(dev)["counts"]["SubmitMeterReads"], 1)


if __name__ == "__main__":
    pc.run_tests()
