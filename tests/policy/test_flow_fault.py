#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A witness fork fault stops automatic pushes, on the whole system
(tests/harness/system.py). policyd starts with the fault it kept from an
earlier run (its witness.json, as the witness part writes it):

  - meter reads automatic every minute (0.6 s here): each scheduled time
    passes saying automatic sending is stopped, NextMeterReads is 0, and the
    server receives no meter reads;
  - the customer's own SendMeterReadsNow still goes, counted once;
  - once an admin clears the fault (ClearForkFault), the next scheduled time
    pushes again.
It waits for policyd's log lines and the server's state, never for time."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from chtest import TEST_ADMIN, Harness, check, skip_unless_root  # noqa: E402
from system import System  # noqa: E402

skip_unless_root("the push tests")

FAULT = "test: the server holds this device to a head this log does not extend"


def main():
    with Harness("flow-fault") as h:
        s = System(h, start=False, policyd_env={"CALLHOME_POLICYD_TIME_DIVISOR": "100"})
        with s:
            for part in ("auditd", "collector", "server", "net"):
                s.start(part)
            os.makedirs(s.dirs["policy"], mode=0o700)
            with open(os.path.join(s.dirs["policy"], "witness.json"), "w") as f:
                json.dump({"fork_fault": FAULT}, f)
            s.start("policyd")
            check(FAULT in s.policy_property("ForkFault"), "policyd starts with the fork fault it kept")

            at = s.log_size("policyd")
            s.set_policy(RemoteServices=True, ServerURL=s.server_url(), MeterReads="automatic", MeterReadsInterval=60,
                         CheckInIntervalMin=3600, CheckInIntervalMax=7200)
            s.wait_log("policyd", r"Meter reads: scheduled time; not sent: automatic sending is stopped", after=at,
                       count=3)
            check(s.policy_property("NextMeterReads") == 0 and s.counts()["SubmitMeterReads"] == 0,
                  "three scheduled times passed without a push; NextMeterReads is 0; the server has none")

            r = s.call_policy("root", "SendMeterReadsNow")
            check(r.returncode == 0, f"the customer's own push is taken ({r.stderr.strip()})")
            txn = json.loads(r.stdout)["data"][0]
            s.wait_log("policyd", rf"Meter reads {txn}: delivered")
            check(s.counts()["SubmitMeterReads"] == 1, "and counted once")

            r = s.call_policy(TEST_ADMIN, "ClearForkFault")
            check(r.returncode == 0, f"an admin clears the fault ({r.stderr.strip()})")
            at = s.log_size("policyd")
            s.wait_log("policyd", r"Meter reads: scheduled time; pushing", after=at)
            s.wait_server(lambda d: d["counts"]["SubmitMeterReads"] >= 2, "a scheduled push to arrive")
            check(True, "the next scheduled time pushes again")


if __name__ == "__main__":
    main()
