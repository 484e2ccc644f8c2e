#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The outbox is bounded, and all of it survives a crash, on the whole system
(tests/harness/system.py):

  - with the server away, 64 pushes are recorded and wait (PendingPushes 64);
    the 65th is refused with OutboxFull, nothing recorded for it;
  - policyd is killed (SIGKILL) and started again with the server back: it
    reads the 64 pending transactions from the audit log's outbox and sends
    each again with its id; the server counts each exactly once.
It waits for replies, policyd's log lines and the server's state, never for time."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from chtest import Harness, check, skip_unless_root  # noqa: E402
from system import System  # noqa: E402

skip_unless_root("the push tests")

OUTBOX_MAX = 64     # FLOW_OUTBOX_MAX, policy/policyd-flow.h


def main():
    with Harness("flow-bounds") as h, System(h, policyd_env={"CALLHOME_POLICYD_TIME_DIVISOR": "100"}) as s:
        s.enable(MeterReads="ask", Supplies="ask")
        s.stop_server()
        txns = []
        for i in range(OUTBOX_MAX):
            r = s.call_policy("root", "SendMeterReadsNow" if i % 2 else "SendSuppliesNow")
            if r.returncode != 0:
                check(False, f"push {i + 1} is recorded: {r.stderr.strip()}")
            txns.append(json.loads(r.stdout)["data"][0])
        check(len(set(txns)) == OUTBOX_MAX and s.policy_property("PendingPushes") == OUTBOX_MAX,
              f"{OUTBOX_MAX} pushes recorded while the server is away, each with its own id, all pending")
        a = s.call_policy_typed("root", "SendMeterReadsNow")
        check(a["error"] == "org.callhome.Policy1.Error.OutboxFull", f"the next one: OutboxFull ({a['message']})")
        outbound = [x["txn"] for x in s.audit_records() if x["direction"] == "outbound"]
        check(sorted(outbound) == sorted(txns), "nothing was recorded for it")

        s.kill9("policyd")
        s.start("server")
        s.start("policyd")
        s.wait_log("policyd", rf"Flow: ready; .* {OUTBOX_MAX} pending transaction\(s\) to send again")
        h.wait_for(lambda: s.policy_property("PendingPushes") == 0, "the outbox to empty", timeout=60)
        st = s.device_state()
        got = sorted(x["transaction_id"] for x in st["submissions"])
        check(got == sorted(txns), f"after the crash the server has each of the {OUTBOX_MAX} exactly once")
        check(st["counts"]["SubmitMeterReads"] + st["counts"]["SubmitSupplies"] == OUTBOX_MAX and
              sum(st["duplicates"].values()) == 0, f"counted once each, none twice {st['counts']}")
        delivered = {x["txn"] for x in s.audit_records() if x["kind"] == "delivery"}
        check(delivered == set(txns), "each has its delivery record")


if __name__ == "__main__":
    main()
