#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Reports of an instruction's outcome (ReportResult, outbound record
"instruction.result") that were not delivered are never left behind, and none
is counted twice, on the whole system (tests/harness/system.py):

  1. a report whose first try failed (a scripted RetryAfter), policyd stopped
     and started again while the server is down: the flow's outbox reader hands
     it to the instructions part, which sends it again with the same id and the
     recorded content; once the server is back, the next check-in sends it at
     once, the server counts it once, the audit log marks it delivered;
  2. a report whose 5 tries all failed in one run is tried again after the
     next check-in of that run and delivered;
  3. a report the server answered while auditd was stopped (policyd killed
     before the reply and MarkDelivered were recorded): sent again after the
     restart, the server (which dedups by transaction id) answers Duplicate
     and counts it once;
  4. the same for diagnostics (SubmitDiagnostics, outbound record
     "diagnostics"): sent again with the recorded content, Time included, so
     the server finds it the same (Duplicate, counted once); the instruction
     is then reported Done.

At the end auditd's PendingCount is 0 and callhome-audit verify passes. The
test waits for policyd's log lines and the server's state, never for time."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_instruction_common import System, answer, check, check_in, connect, wait_report  # noqa: E402
from chtest import Harness, skip_unless_root  # noqa: E402

AUDIT = ("org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1")


def pending_count(s):
    return s.busctl_json("root", "get-property", *AUDIT, "PendingCount")


def report_txns(s, txn):
    """The ReportResult submissions the server counted under transaction id txn."""
    return [x for x in s.submissions("ReportResult") if x["transaction_id"] == txn]


def refused_report(s, kind):
    """An instruction of `kind` with its service off, fetched by a check-in: its report's
    first try meets a scripted RetryAfter. Returns (instruction id, report txn)."""
    s.fault(fault="RetryAfter", seconds=1, operation="ReportResult", count=1)
    iid = s.enqueue({"type": kind})
    at = s.log_size("policyd")
    check_in(s)
    txn = s.wait_log("policyd", r"^.*instruction\.result (\S+): attempt 1 failed", after=at)[0].group(1)
    return iid, txn


def killed_after_answer(s, what, txn, at):
    """`what` txn waits at the stopped net-worker: auditd is stopped, the net-worker continued,
    the server answers; policyd is killed before the reply is recorded, auditd continued and
    policyd started again, which sends txn again; the server answers Duplicate."""
    s.sigstop("auditd")
    s.sigcont("net")
    s.wait_log("policyd", rf"{what} {txn}: the server answered Accepted", after=at)
    s.kill9("policyd")
    s.sigcont("auditd")
    s.start("policyd")
    s.wait_log("policyd", rf"{what} {txn}: pending since an earlier run")
    s.wait_log("policyd", rf"{what} {txn}: delivered \(Duplicate\)")


def main():
    skip_unless_root("the instruction resume test")
    with Harness("instruction-resume") as h, System(h, server_args=["--witness-tofu"]) as s:
        connect(s)
        # A failed report waits a minute before its next try: what delivers it below is the restart
        # and the check-in, never the clock.
        s.set_policy(RetryMinimumWait=60)

        # --- 1. Pending across a restart, the server down meanwhile. ---
        iid1, txn1 = refused_report(s, "SendMeterReads")
        s.stop_server()
        s.restart("policyd")
        s.wait_log("policyd", rf"instruction\.result {txn1}: pending since an earlier run; sending it again "
                   r"with the same id")
        s.wait_log("policyd", rf"instruction\.result {txn1}: attempt 1 failed")
        check(True, f"1. {txn1}, pending, is sent again after the restart (the server is down)")
        s.start("server")
        check(report_txns(s, txn1) == [], "... it was never delivered before")
        at = s.log_size("policyd")
        check_in(s)
        s.wait_log("policyd", rf"instruction\.result {txn1}: delivered \(Accepted\)", after=at)
        got = report_txns(s, txn1)
        check(len(got) == 1 and str(got[0]["payload"].get("InstructionId")) == str(iid1)
              and got[0]["payload"].get("Outcome") == "Refused",
              f"... once the server is back, the next check-in delivers it, same id and content ({got})")

        # --- 2. All 5 tries fail in one run: tried again after the next check-in. ---
        s.set_policy(RetryMinimumWait=1)
        s.fault(fault="RetryAfter", seconds=1, operation="ReportResult", count=4)
        _, txn2 = refused_report(s, "SendSupplies")
        s.wait_log("policyd", rf"instruction\.result {txn2}: not delivered \(.*\); it stays in the audit log's "
                   r"outbox and is tried again after the next check-in")
        check(report_txns(s, txn2) == [], f"2. {txn2}: its 5 tries failed, nothing delivered")
        at = s.log_size("policyd")
        check_in(s)
        s.wait_log("policyd", rf"instruction\.result {txn2}: delivered \(Accepted\)", after=at)
        check(len(report_txns(s, txn2)) == 1, "... the next check-in of the same run delivers it, once")

        # --- 3. The server answered, policyd killed before the reply was recorded. ---
        # The resent report waits at the stopped net-worker until auditd is stopped too.
        s.set_policy(RetryMinimumWait=60)
        dup_before = s.device_state()["duplicates"]["ReportResult"]
        _, txn3 = refused_report(s, "SendMeterReads")
        s.stop("policyd")
        s.sigstop("net")
        s.start("policyd")
        s.wait_log("policyd", rf"instruction\.result {txn3}: pending since an earlier run")
        killed_after_answer(s, r"instruction\.result", txn3, 0)
        st = s.device_state()
        check(len(report_txns(s, txn3)) == 1 and st["duplicates"]["ReportResult"] == dup_before + 1,
              f"3. {txn3}: answered before policyd was killed, sent again, answered Duplicate, counted once")

        # --- 4. Diagnostics the server answered, policyd killed before the reply was recorded. ---
        # Sent again from their record, Time included: the server finds the same content, answers
        # Duplicate and counts them once; the instruction is then reported Done.
        s.set_policy(Diagnostics="ask")
        d = s.enqueue({"type": "DiagnosticsRequested", "reason": "resume test", "items": []})
        check_in(s)
        wait_report(s, d, "AwaitingConsent")
        s.sigstop("net")
        at = s.log_size("policyd")
        r = answer(s, "ApproveConsent", d)
        check(r.returncode == 0, f"root approves the diagnostics ({r.stderr.strip()})")
        txn4 = s.wait_log("policyd", r"^.*diagnostics (\S+): sending \(attempt 1\)", after=at)[0].group(1)
        killed_after_answer(s, "diagnostics", txn4, at)
        st = s.device_state()
        check(st["counts"]["SubmitDiagnostics"] == 1 and st["duplicates"]["SubmitDiagnostics"] == 1,
              f"4. {txn4}: diagnostics sent again with the recorded content, answered Duplicate, counted once")
        rec = json.loads([x for x in s.audit_export("diagnostics", txn4) if x["direction"] == "outbound"][0]["payload"])
        sub = [x["payload"] for x in s.submissions("SubmitDiagnostics")][0]
        check(rec.get("time") == sub["Time"], f"... the record holds the Time sent ({rec.get('time')}, {sub['Time']})")
        rep = wait_report(s, d, "Done")
        check("on a later try" in rep.get("Detail", ""), f"... and the instruction is then reported Done ({rep})")

        # --- Each transaction counted once, none pending, the log whole. ---
        subs = s.submissions()
        txns = [x["transaction_id"] for x in subs]
        st = s.device_state()
        check({txn1, txn2, txn3, txn4} <= set(txns) and len(txns) == len(set(txns))
              and st["counts"]["ReportResult"] + st["counts"]["SubmitDiagnostics"] == len(txns),
              f"the server counted each report and the diagnostics exactly once ({txns})")
        out = {x["txn"] for x in s.audit_records() if x["direction"] == "outbound"}
        delivered = {x["txn"] for x in s.audit_records() if x["kind"] == "delivery"}
        check(out == set(txns) and out <= delivered, "each has one outbound record and a delivery record")
        h.wait_for(lambda: pending_count(s) == 0, "auditd's outbox to empty")
        check(True, "auditd's PendingCount is 0")
        check(s.stop("policyd") == 0, "policyd stops cleanly (under ASan: nothing leaked)")
        s.stop("auditd")
        r = s.verify()
        check(r.returncode == 0, f"callhome-audit verify passes ({(r.stdout + r.stderr).strip().splitlines()[-1:]})")


if __name__ == "__main__":
    main()
