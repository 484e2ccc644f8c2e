#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Pushes, off by default and kept to their callers, on the whole system
(tests/harness/system.py: server, auditd, collector, net-worker, policyd):

  - with the master switch off and both services automatic on short
    intervals, several scheduled times pass (policyd says so at each) and the
    server receives nothing at all: no TLS handshake, no message;
  - SendMeterReadsNow/SendSuppliesNow answer typed errors naming what to change:
    RemoteServicesOff, then ServiceOff;
  - only root and callhome-admin may call them: another user and another
    service user get AccessDenied, from the bus policy and, on a bus that lets
    everything through, from policyd's own check;
  - the running interface equals ipc/org.callhome.Policy1.xml.
It waits for policyd's log lines and the server's state, never for time."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from chtest import TEST_ADMIN, TEST_OTHER, Harness, check, skip_unless_root  # noqa: E402
from system import System  # noqa: E402

skip_unless_root("the push tests")

DIVISOR = {"CALLHOME_POLICYD_TIME_DIVISOR": "100"}   # an interval of 60 s passes in 0.6 s
TICKS = 4
ERR = "org.callhome.Policy1.Error."


def access(s, label):
    for method in ("SendMeterReadsNow", "SendSuppliesNow"):
        for user in (TEST_OTHER, "callhome-collector", "callhome-policy"):
            a = s.call_policy_typed(user, method)
            check(not a["ok"] and a["error"] == "org.freedesktop.DBus.Error.AccessDenied",
                  f"{label}: {user} may not call {method} ({a['error']})")
    check(s.counts()["SubmitMeterReads"] == 0, f"{label}: and nothing was sent for them")


def main():
    with Harness("flow-off") as h, System(h, policyd_env=DIVISOR) as s:
        check(s.policy_property("RemoteServices") is False, "remote services are off by default")
        check(s.policy_property("NextMeterReads") == 0 and s.policy_property("NextSupplies") == 0,
              "no scheduled push would send (NextMeterReads, NextSupplies are 0)")

        # Both services automatic, every minute (0.6 s here), the master switch still off.
        at = s.log_size("policyd")
        s.set_policy(MeterReads="automatic", Supplies="automatic", MeterReadsInterval=60, SuppliesInterval=60,
                     ServerURL=s.server_url())
        for words in ("Meter reads", "Supplies"):
            s.wait_log("policyd", rf"^callhome-policyd: {words}: scheduled time; not sent: remote services are off",
                       after=at, count=TICKS)
        check(True, f"{TICKS} scheduled times of each kind passed, each saying remote services are off")
        check(s.server_messages() == [], "the server received nothing: not a handshake, not a message")
        check(all(v == 0 for v in s.counts().values()), f"and counted nothing {s.counts()}")
        check(s.policy_property("NextMeterReads") == 0, "NextMeterReads stays 0 while nothing would be sent")
        check([r for r in s.audit_records() if r["direction"] == "outbound"] == [], "no outbound record was made")

        h.check_interface_contract("org.callhome.Policy1")
        a = s.call_policy_typed("root", "SendMeterReadsNow")
        check(a["error"] == ERR + "RemoteServicesOff" and "RemoteServices" in a["message"],
              f"SendMeterReadsNow with the master switch off: RemoteServicesOff ({a['message']})")
        s.set_policy(RemoteServices=True, MeterReads="ask", Supplies="off")
        a = s.call_policy_typed(TEST_ADMIN, "SendSuppliesNow")
        check(a["error"] == ERR + "ServiceOff" and "Supplies" in a["message"],
              f"SendSuppliesNow with Supplies off: ServiceOff ({a['message']})")
        access(s, "system bus")
        a = s.call_policy_typed(TEST_ADMIN, "SendMeterReadsNow")
        check(a["ok"] and "-" in a["reply"], f"a member of callhome-admin may: {a['reply']}")
        s.wait_server(lambda d: d["counts"]["SubmitMeterReads"] == 1, "the admin's push to arrive")
        check(s.counts()["SubmitSupplies"] == 0, "and only what was asked for went")

    # The daemon's own check, on a bus whose policy lets everyone call everything.
    with Harness("flow-open", open_bus=True) as h, System(h, policyd_env=DIVISOR) as s:
        s.enable(MeterReads="ask", Supplies="ask")
        access(s, "open bus")
        a = s.call_policy_typed("root", "SendSuppliesNow")
        check(a["ok"], f"root may ({a['reply']})")
        s.wait_server(lambda d: d["counts"]["SubmitSupplies"] == 1, "root's push to arrive")


if __name__ == "__main__":
    main()
