#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""kill -9 of policyd at each step of a push, on the whole system
(tests/harness/system.py). Each step is held open by stopping (SIGSTOP) the
daemon policyd waits for at that step, then policyd is killed, the daemon
continued and policyd started again:

  1. snapshot asked of the collector (collector stopped): nothing recorded, nothing sent;
  2. outbound record being appended (auditd stopped);
  3. record synced, the Submit call queued at the net-worker (net-worker stopped);
  4. the server answered, the reply being recorded before MarkDelivered (auditd stopped);

After the restarts the server has counted every recorded transaction exactly
once (a resend is answered Duplicate and not counted), the outbox is empty,
no transaction id was used twice, and callhome-audit verify passes.
It waits for policyd's log lines and the server's state, never for time."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from chtest import Harness, check, skip_unless_root  # noqa: E402
from system import POLICY_NAME, POLICY_PATH, System  # noqa: E402

skip_unless_root("the push tests")


def push_in_background(s, h, method="SendMeterReadsNow"):
    """The customer's call, left waiting while policyd is held at a step (and then killed)."""
    return h.spawn(["busctl", f"--address={h.address}", "--timeout=60", "call", POLICY_NAME, POLICY_PATH,
                    POLICY_NAME, method], name="push")


def kill_policyd(s, what):
    s.kill9("policyd")
    print(f"# policyd killed (SIGKILL) {what}")


def recover(s, what, held, words, txn, resent):
    """policyd killed while `held` is stopped; `held` continued, policyd started again: it says
    `resent` of txn and delivers it."""
    kill_policyd(s, what)
    s.sigcont(held)
    s.start("policyd")
    s.wait_log("policyd", rf"{words} {txn}: {resent}")
    s.wait_log("policyd", rf"{words} {txn}: delivered")


def push_held_at_net(s, method, words):
    """A push recorded whose Submit call waits at the stopped net-worker: (txn, log offset)."""
    s.sigstop("net")
    at = s.log_size("policyd")
    r = s.call_policy("root", method)
    check(r.returncode == 0, f"{method}: the push is recorded")
    txn = json.loads(r.stdout)["data"][0]
    s.wait_log("policyd", rf"{words} {txn}: sending \(attempt 1\)", after=at)
    return txn, at


def outbound(s):
    return [x["txn"] for x in s.audit_records() if x["direction"] == "outbound"]


def main():
    with Harness("flow-crash") as h, System(h) as s:
        s.enable(MeterReads="ask", Supplies="ask")

        # 1. While the snapshot is asked for.
        s.sigstop("collector")
        at = s.log_size("policyd")
        push_in_background(s, h)
        s.wait_log("policyd", r"Meter reads \(customer\): asking the collector for a snapshot", after=at)
        kill_policyd(s, "while waiting for the snapshot")
        s.sigcont("collector")
        s.start("policyd")
        check(outbound(s) == [], "1. killed before the snapshot came: nothing recorded")

        # 2. While the outbound record is being appended.
        s.sigstop("auditd")
        at = s.log_size("policyd")
        push_in_background(s, h)
        txn2 = s.wait_log("policyd", r"Meter reads (\S+) \(customer\): recording the outbound record",
                          after=at)[0].group(1)
        kill_policyd(s, f"while {txn2} was being recorded")
        s.sigcont("auditd")
        s.start("policyd")
        recorded = txn2 in outbound(s)
        print(f"# auditd {'did' if recorded else 'did not'} record {txn2} for the killed policyd")
        if recorded:
            s.wait_log("policyd", rf"Meter reads {txn2}: delivered")
        check(True, f"2. killed while recording {txn2}: {'sent after the restart' if recorded else 'never recorded'}")

        # 3. Recorded; the Submit call waits at the stopped net-worker.
        txn3, at = push_held_at_net(s, "SendMeterReadsNow", "Meter reads")
        recover(s, f"with {txn3} queued at the net-worker", "net", "Meter reads", txn3,
                "pending since an earlier run; sending it again with the same id")
        check(True, f"3. {txn3} was sent again with its id after the restart and delivered")

        # 4. The server answered; auditd is stopped before the reply and the delivery are recorded.
        txn4, at = push_held_at_net(s, "SendSuppliesNow", "Supplies")
        s.sigstop("auditd")
        s.sigcont("net")
        s.wait_log("policyd", rf"Supplies {txn4}: the server answered Accepted", after=at)
        recover(s, f"after the server answered {txn4}, before MarkDelivered", "auditd", "Supplies", txn4,
                "the server answered Duplicate")
        check(True, f"4. {txn4} was sent again after the restart, the server answered Duplicate, delivered")

        h.wait_for(lambda: s.policy_property("PendingPushes") == 0, "the outbox to empty")
        sent = outbound(s)
        check(len(sent) == len(set(sent)), f"no transaction id was used twice: {sent}")
        st = s.device_state()
        got = sorted(x["transaction_id"] for x in st["submissions"])
        check(got == sorted(sent), f"the server counted every recorded transaction exactly once: {got}")
        check(st["counts"]["SubmitMeterReads"] + st["counts"]["SubmitSupplies"] == len(sent),
              f"and counted nothing else {st['counts']} (duplicates answered: {st['duplicates']})")
        delivered = {x["txn"] for x in s.audit_records() if x["kind"] == "delivery"}
        check(delivered == set(sent), "the audit log has a delivery for each")
        s.stop("auditd")
        r = s.verify()
        check(r.returncode == 0, f"callhome-audit verify passes ({(r.stdout + r.stderr).strip().splitlines()[-1:]})")


if __name__ == "__main__":
    main()
