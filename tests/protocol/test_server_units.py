#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The reference server's state and service, in process: the idempotency
window is bounded and survives a restart in arrival order; every operation
runs its common checks (identity, scripted faults) exactly once."""

import os
import unittest
from unittest import mock

import protocol_common as pc

from commserver import httpd, service, software, state
from commserver.main import ServerContext


class TransactionWindow(unittest.TestCase):

    def setUp(self):
        self.dir = pc.make_tmpdir("state")
        self.addCleanup(pc.cleanup_tmp, self.dir)
        self.path = os.path.join(self.dir, "state.json")

    def record(self, st, txid, content="same"):
        return st.record_submission(pc.DEV1, "SubmitMeterReads", txid, "digest-" + content, {})

    def test_bounded_window_in_arrival_order_across_restarts(self):
        # Ids whose sorted order is not their arrival order.
        ids = ["z-%d" % i for i in range(5)] + ["a-%d" % i for i in range(5)]
        with mock.patch.object(state, "MAX_KEPT_TRANSACTIONS", 6):
            st = state.State(self.path)
            for t in ids:
                self.assertEqual(self.record(st, t), "Accepted")
            kept = list(st.devices[pc.DEV1]["transactions"])
            self.assertEqual(kept, ids[-6:])
            # Within the window: a repeat is a Duplicate, other content refused.
            self.assertEqual(self.record(st, ids[-1]), "Duplicate")
            with self.assertRaises(state.StateError):
                self.record(st, ids[-6], "other")
            # After a restart the oldest is still the first forgotten.
            st = state.State(self.path)
            self.assertEqual(list(st.devices[pc.DEV1]["transactions"]), ids[-6:])
            self.assertEqual(self.record(st, "m-new"), "Accepted")
            self.assertEqual(list(st.devices[pc.DEV1]["transactions"]), ids[-5:] + ["m-new"])
            self.assertEqual(self.record(st, ids[-5]), "Duplicate")
            # Beyond the window an id is forgotten: counted again (documented).
            self.assertEqual(self.record(st, ids[0]), "Accepted")
            self.assertEqual(st.devices[pc.DEV1]["counts"]["SubmitMeterReads"], len(ids) + 2)
            self.assertEqual(len(st.devices[pc.DEV1]["transactions"]), 6)

    def test_default_window(self):
        st = state.State(None)
        n = state.MAX_KEPT_TRANSACTIONS + 50
        for i in range(n):
            self.record(st, "t-%d" % i)
        dev = st.devices[pc.DEV1]
        self.assertEqual(len(dev["transactions"]), state.MAX_KEPT_TRANSACTIONS)
        self.assertEqual(len(dev["submissions"]), state.MAX_KEPT_SUBMISSIONS)
        self.assertEqual(self.record(st, "t-%d" % (n - state.MAX_KEPT_TRANSACTIONS)), "Duplicate")
        self.assertEqual(self.record(st, "t-49"), "Accepted")


class CommonChecksOnce(unittest.TestCase):
    """begin() — identity and scripted faults — once per operation."""

    def setUp(self):
        self.state = state.State(None)
        self.app = service.make_wsgi_app(ServerContext(self.state, software.Repository(None), None, None))

    def call(self, inner):
        return httpd.call_wsgi(self.app, pc.envelope(inner), pc.DEV1, None)

    def test_each_submission_runs_begin_once(self):
        diag = self.state.enqueue(pc.DEV1, {"type": "DiagnosticsRequested", "reason": "r", "items": []})
        d, ns = pc.DEV1, pc.TNS
        requests = {
            "SubmitMeterReads": '<SubmitMeterReads xmlns="%s"><DeviceId>%s</DeviceId><TransactionId>t1</TransactionId>'
                                '<Time>2026-01-01T00:00:00Z</Time><Meter><Name>m</Name><Value>1</Value></Meter>'
                                '</SubmitMeterReads>' % (ns, d),
            "SubmitSupplies": '<SubmitSupplies xmlns="%s"><DeviceId>%s</DeviceId><TransactionId>t2</TransactionId>'
                              '<Time>2026-01-01T00:00:00Z</Time><Supply><Name>s</Name><Level>1</Level>'
                              '<MaxCapacity>2</MaxCapacity></Supply></SubmitSupplies>' % (ns, d),
            "SubmitDiagnostics": '<SubmitDiagnostics xmlns="%s"><DeviceId>%s</DeviceId><TransactionId>t3</TransactionId>'
                                 '<InstructionId>%d</InstructionId><Time>2026-01-01T00:00:00Z</Time>'
                                 '</SubmitDiagnostics>' % (ns, d, diag),
            "ReportResult": '<ReportResult xmlns="%s"><DeviceId>%s</DeviceId><TransactionId>t4</TransactionId>'
                            '<InstructionId>%d</InstructionId><Outcome>Done</Outcome></ReportResult>' % (ns, d, diag),
            "CheckIn": '<CheckIn xmlns="%s"><DeviceId>%s</DeviceId><AgentVersion>1</AgentVersion>'
                       '<LastInstruction>0</LastInstruction></CheckIn>' % (ns, d),
        }
        real = service.begin
        for op, inner in requests.items():
            with self.subTest(op):
                calls = []
                with mock.patch.object(service, "begin", lambda *a: calls.append(a[1]) or real(*a)):
                    status, _, out = self.call(inner)
                self.assertEqual(status, 200, out)
                self.assertEqual(calls, [op])
        # A scripted fault is consumed by exactly one call.
        self.state.add_fault(pc.DEV1, {"fault": "RetryAfter", "seconds": 5, "operation": "SubmitDiagnostics",
                                       "count": 1})
        inner = requests["SubmitDiagnostics"].replace("t3", "t5")
        self.assertEqual(pc.fault_detail(self.call(inner)[2])[0], "RetryAfter")
        self.assertEqual(pc.find(self.call(inner)[2], "Status"), "Accepted")


if __name__ == "__main__":
    pc.run_tests()
