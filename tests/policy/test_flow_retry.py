#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Pushes while the server is away, on the whole system (tests/harness/system.py),
policyd's waits shortened a hundredfold (CALLHOME_POLICYD_TIME_DIVISOR=100):

  - with the server stopped, pushes (the customer's and a scheduled one) are
    recorded and queue; the oldest is tried again on the TR-069 window of the
    policy's m and k ([5, 10], [10, 20], [20, 40] s ... for m = 5, k = 2000),
    the status saying so (PushRetry, NextPushRetry, LastPushError in words);
  - when the server is back (same port, same state) every queued transaction
    is delivered, each counted exactly once: none lost, none doubled;
  - a RetryAfter fault of 100 s is honoured: the next attempt waits 100 s
    (1 s here), not the window's 5-10 s, and then delivers once;
  - a BadRequest fault (the content refused for good) is recorded as the
    answer and settled: it does not hold up the outbox;
  - callhome-audit verify passes.
It waits for policyd's log lines and the server's state, never for time."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
import chtest  # noqa: E402
from chtest import Harness, check, skip_unless_root  # noqa: E402
from system import System  # noqa: E402

skip_unless_root("the push tests")

DIVISOR = 100


def txn_of(r, what="the push is recorded while the server is away"):
    check(r.returncode == 0, f"{what} {r.stderr.strip()}")
    return json.loads(r.stdout)["data"][0]


def attempts(s, txn, after=0):
    """(attempt, wait ms, window lo, window hi, Retry-After honoured) of each failed attempt of txn."""
    return [(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), bool(m.group(5)))
            for m in s.wait_log("policyd", rf"{txn} not delivered: .*; attempt (\d+) failed, next in (\d+) ms "
                                           r"\(window (\d+)-(\d+) s(, the server's Retry-After honoured)?\)",
                                after=after, count=1)]


def main():
    env = {"CALLHOME_POLICYD_TIME_DIVISOR": str(DIVISOR)}
    with Harness("flow-retry") as h, System(h, policyd_env=env) as s:
        s.enable(MeterReads="ask", Supplies="ask", RetryMinimumWait=5, RetryIntervalMultiplier=2000)
        s.stop_server()

        first = txn_of(s.call_policy("root", "SendMeterReadsNow"))
        seen = s.wait_log("policyd", rf"Meter reads {first} not delivered: Unreachable: .*; attempt (\d+) failed, "
                                     r"next in (\d+) ms \(window (\d+)-(\d+) s\)", count=3)
        windows = [(int(m.group(3)), int(m.group(4))) for m in seen[:3]]
        check(windows == [(5, 10), (10, 20), (20, 40)], f"tried again on the TR-069 windows of m=5, k=2000: {windows}")
        waits = [int(m.group(2)) for m in seen[:3]]
        check(all(lo * 1000 // DIVISOR <= w <= hi * 1000 // DIVISOR for w, (lo, hi) in zip(waits, windows)),
              f"each wait inside its window (ms, divided by {DIVISOR}): {waits}")
        check(s.policy_property("PushRetry") >= 3 and "Unreachable" in s.policy_property("LastPushError"),
              f"the status says so: PushRetry {s.policy_property('PushRetry')}, "
              f"LastPushError {s.policy_property('LastPushError')!r}")

        supplies = txn_of(s.call_policy("root", "SendSuppliesNow"))
        at = s.log_size("policyd")
        s.set_policy(MeterReads="automatic", MeterReadsInterval=60)
        sched = s.wait_log("policyd", r"Meter reads (\S+) \(schedule\): outbound record \d+ synced; queued to send",
                           after=at)[0].group(1)
        s.set_policy(MeterReads="ask")
        queued = s.policy_property("PendingPushes")
        check(queued >= 3, f"the customer's and the scheduled pushes queue: {queued} pending")
        # 0 while an attempt is on the wire ("none is waiting"); each failed attempt is logged, then waits
        due = chtest.wait_for_change([s.procs["policyd"].log], lambda: s.policy_property("NextPushRetry"),
                                     "an attempt to fail and wait", timeout=30)
        check(due > 0, f"NextPushRetry says when the next attempt is due: {due}")
        ids = sorted(x["txn"] for x in s.audit_records() if x["direction"] == "outbound")
        check({first, supplies, sched} <= set(ids), f"every one is in the audit log's outbox: {ids}")

        s.start("server")
        st = s.wait_server(lambda d: sum(d["counts"][k] for k in ("SubmitMeterReads", "SubmitSupplies")) >= len(ids),
                           "every queued transaction to arrive", timeout=40)
        h.wait_for(lambda: s.policy_property("PendingPushes") == 0, "the outbox to empty", timeout=30)
        st = s.device_state()
        got = sorted(x["transaction_id"] for x in st["submissions"])
        check(got == ids, f"the server has each recorded transaction exactly once: {got}")
        check(sum(st["duplicates"].values()) == 0, "none was sent twice")
        check(s.policy_property("PushRetry") == 0 and s.policy_property("LastPushError") == "",
              "the status is clear again")

        # Retry-After: 100 s asked for, 1 s here; the window would have said 5-10 s (50-100 ms).
        s.fault(fault="RetryAfter", seconds=100, operation="SubmitMeterReads", count=1)
        at = s.log_size("policyd")
        later = txn_of(s.call_policy("root", "SendMeterReadsNow"), "the server is back; a push is recorded")
        (n, wait, lo, hi, honoured), = attempts(s, later, after=at)
        check(honoured and wait == 100 * 1000 // DIVISOR and (lo, hi) == (5, 10),
              f"the server's Retry-After of 100 s is honoured: next in {wait} ms, not in the window {lo}-{hi} s")
        s.wait_log("policyd", rf"Meter reads {later}: delivered", after=at)
        st = s.device_state()
        check([x["transaction_id"] for x in st["submissions"]].count(later) == 1 and
              sum(st["duplicates"].values()) == 0, "then delivered, once")

        # A BadRequest fault: the server refuses this content for good. Recorded with its answer and
        # settled, so it does not hold up the outbox; the next push goes.
        s.fault(fault="BadRequest", reason="scripted refusal", operation="SubmitMeterReads", count=1)
        at = s.log_size("policyd")
        bad = txn_of(s.call_policy("root", "SendMeterReadsNow"), "a push the server will refuse is recorded")
        s.wait_log("policyd", rf"Meter reads {bad}: the server refused it for good: .*scripted refusal", after=at)
        s.wait_log("policyd", rf"Meter reads {bad}: delivered", after=at)
        rec = [x for x in s.audit_export(txn=bad) if x["direction"] == "inbound"]
        check(len(rec) == 1 and json.loads(rec[0]["payload"])["status"] == "Refused",
              "the refusal is recorded as the server's answer, and the transaction settled")
        nxt = txn_of(s.call_policy("root", "SendMeterReadsNow"), "the next push is recorded")
        s.wait_log("policyd", rf"Meter reads {nxt}: delivered", after=at)
        check(s.policy_property("PendingPushes") == 0, "and delivered: nothing is held up")

        s.stop("auditd")
        r = s.verify()
        check(r.returncode == 0, "callhome-audit verify passes")


if __name__ == "__main__":
    main()
