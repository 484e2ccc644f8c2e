#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check-ins of callhome-policyd against the whole system (tests/harness/system.py:
the reference server, auditd, collector, net-worker, policyd, each as its own user).

basics:
  - remote services off: CheckInNow is refused with RemoteServicesOff, the server
    sees nothing;
  - callers other than root and callhome-admin are denied CheckInNow, ClearForkFault
    and the status;
  - CheckInNow: the server sees the check-in; the instructions it queued reach
    instruction_handle() in order (the check-in's audit record lists them); the
    highest is kept on disk and acknowledged by the next check-in, after a
    restart of policyd too; the status properties follow, with change signals.
schedule:
  - the scheduled time lies within the policy's interval bounds; the server's
    SetCheckInInterval is clamped to them and audited, and the schedule follows;
  - the server's RetryAfter is honoured; a failure is said in words (LastError)
    and counted (RetryState), the next try set in the TR-069 window; the retry
    timer fires and gets through once the server is back.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from chtest import TEST_ADMIN, TEST_OTHER, Harness, check, skip_unless_root  # noqa: E402
from system import POLICY_NAME, POLICY_PATH, System  # noqa: E402
from checkinlib import AUDIT, checkins_received, payloads  # noqa: E402


def denied(r):
    return r.returncode != 0 and ("Access denied" in r.stderr or "AccessDenied" in r.stderr
                                  or "not permitted" in r.stderr or "rejected" in r.stderr)


def checkin_records(s):
    return payloads(s, "checkin")


def register_log_key(s):
    """The vendor registers the printer's audit log key with the server (the witness test has it learnt on first use)."""
    key = s.busctl_json("root", "get-property", *AUDIT, "CheckpointKey")
    st, res = s.server.admin("POST", f"/v1/devices/{s.serial}/log-key", {"vkey": key})
    check(st == 200, f"the server knows the log key ({res})")


def test_basics(h, s):
    # --- Remote services off (the default): nothing is sent, CheckInNow says why. ---
    s.set_policy(ServerURL=s.server_url())
    r = s.call_policy("root", "CheckInNow")
    check(r.returncode != 0 and "Remote services are off" in r.stderr,
          f"remote services off: CheckInNow refused with a clear error ({r.stderr.strip()})")
    check(s.counts().get("CheckIn", 0) == 0, "the server saw no check-in")
    check(s.policy_property("NextCheckIn") == 0, "and none is scheduled")
    check(s.policy_property("RetryState")[1].startswith("off"), "RetryState says remote services are off")

    # --- Who may check in and clear a fork fault. ---
    for user in (TEST_OTHER, "callhome-collector", "callhome-net"):
        check(denied(s.call_policy(user, "CheckInNow")), f"{user} cannot call CheckInNow")
        check(denied(s.call_policy(user, "ClearForkFault")), f"{user} cannot call ClearForkFault")
        check(denied(h.busctl(user, "get-property", POLICY_NAME, POLICY_PATH, POLICY_NAME, "LastError")),
              f"{user} cannot read LastError")

    # --- On: a check-in with instructions, in order, acknowledged next time. ---
    s.set_policy(RemoteServices=True, CheckInIntervalMin=3600, CheckInIntervalMax=7200)
    register_log_key(s)
    before = time.time()
    nxt = s.policy_property("NextCheckIn") / 1e6
    check(before + 3500 <= nxt <= before + 7300, f"the next check-in is set within the bounds ({nxt - before:.0f} s)")
    ears = h.listen_signals(["root"], POLICY_PATH)
    ids = [s.enqueue({"type": "SendSupplies"}), s.enqueue({"type": "SendMeterReads"})]
    mark = s.log_size("policyd")
    r = s.call_policy(TEST_ADMIN, "CheckInNow")
    check(r.returncode == 0, f"callhome-admin checks in now ({r.stderr.strip()})")
    check(s.counts().get("CheckIn") == 1, "the server saw one check-in")
    found = s.wait_log("policyd", r"[Ii]nstruction (\d+) \((\w+)\)", after=mark, count=2)
    check([(int(m.group(1)), m.group(2)) for m in found[:2]] == [(ids[0], "SendSupplies"), (ids[1], "SendMeterReads")],
          f"both instructions reached instruction_handle, in order ({[m.group(0) for m in found]})")
    h.wait_for(lambda: checkin_records(s), "the check-in's audit record")
    rec = checkin_records(s)[-1]
    check(rec["outcome"] == "done" and rec["why"] == "customer" and rec["device_id"] == s.serial
          and [i["id"] for i in rec["instructions"]] == ids,
          f"the check-in is audited with the instructions handed over ({rec})")
    check(s.policy_property("LastCheckIn") > 0 and s.policy_property("LastError") == "",
          "LastCheckIn is set, LastError empty")
    check(s.policy_property("RetryState") == [0, "on schedule"], "RetryState: on schedule")
    h.wait_for(lambda: any(m == "PropertiesChanged" and "LastCheckIn" in json.dumps(a)
                           for m, a in h.signals_so_far(ears["root"])[0]), "PropertiesChanged of LastCheckIn")

    # Kept across a restart of policyd, and acknowledged: the server drops what it delivered.
    with open(os.path.join(s.dirs["policy"], "checkin.json")) as f:
        check(json.load(f)["last_instruction"] == ids[1], "the highest instruction is kept in checkin.json")
    s.restart("policyd")
    r = s.call_policy("root", "CheckInNow")
    check(r.returncode == 0, f"root checks in again after a restart ({r.stderr.strip()})")
    st = s.device_state()
    h.wait_for(lambda: len(checkin_records(s)) == 2, "the second check-in's audit record")
    check(st["counts"].get("CheckIn") == 2 and st["last_acked_instruction"] == ids[1],
          f"the second check-in acknowledged instruction {ids[1]} (server: {st['last_acked_instruction']})")
    check(f"<LastInstruction>{ids[1]}</LastInstruction>" in
          checkins_received(s)[-1],
          "... as LastInstruction on the wire")
    rec = checkin_records(s)[-1]
    check(rec["last_instruction"] == ids[1] and rec["instructions"] == [],
          f"nothing was handed over twice ({rec})")


def test_schedule(h, s):
    s.set_policy(ServerURL=s.server_url(), RemoteServices=True, CheckInIntervalMin=3600, CheckInIntervalMax=7200)
    register_log_key(s)
    # --- The server sets the interval: clamped to the policy's bounds [3600, 7200], audited. ---
    for asked, lo, hi in ((60, 3240, 3600), (2678400, 6480, 7200)):
        s.enqueue({"type": "SetCheckInInterval", "seconds": asked})
        n = len(payloads(s, "checkin.interval"))
        r = s.call_policy("root", "CheckInNow")
        check(r.returncode == 0, f"a check-in brings SetCheckInInterval {asked} ({r.stderr.strip()})")
        h.wait_for(lambda: len(payloads(s, "checkin.interval")) > n, "the interval's audit record")
        rec = payloads(s, "checkin.interval")[-1]
        check(rec == {"requested": asked, "kept": min(max(asked, 3600), 7200), "min": 3600, "max": 7200},
              f"{asked} s asked, clamped and audited ({rec})")
        nxt = s.policy_property("NextCheckIn") / 1e6 - time.time()
        check(lo - 5 <= nxt <= hi + 1, f"the next check-in follows it: {nxt:.0f} s within [{lo}, {hi}]")
    # The bounds move below the time set: a new time within them.
    s.set_policy(CheckInIntervalMax=5000)
    nxt = s.policy_property("NextCheckIn") / 1e6 - time.time()
    check(4500 - 5 <= nxt <= 5001, f"a lower CheckInIntervalMax brings the next check-in within it ({nxt:.0f} s)")
    with open(os.path.join(s.dirs["policy"], "checkin.json")) as f:
        check(json.load(f)["interval"] == 7200, "the server's interval is kept in checkin.json")

    # --- The server asks to be called later: Retry-After honoured over the TR-069 window. ---
    s.fault(fault="RetryAfter", seconds=600, operation="CheckIn", count=1)
    r = s.call_policy("root", "CheckInNow")
    check(r.returncode != 0 and "called again later (in 600 s)" in r.stderr, f"RetryAfter said in words ({r.stderr.strip()})")
    check(s.policy_property("RetryState") == [1, "retrying when the server asked"], "RetryState: as the server asked")
    nxt = s.policy_property("NextCheckIn") / 1e6 - time.time()
    check(590 <= nxt <= 601, f"the next try is 600 s away, not in the 5..10 s window ({nxt:.0f} s)")

    # --- A failure, in words; the retry window counts it. ---
    s.stop_server()
    r = s.call_policy("root", "CheckInNow")
    err = s.policy_property("LastError")
    check(r.returncode != 0 and "could not be reached" in r.stderr and "could not be reached" in err,
          f"with the server gone the check-in fails, said in words ({err})")
    failures, state = s.policy_property("RetryState")
    check(failures == 2 and "TR-069" in state, f"RetryState counts the failures ({failures}, {state})")
    check(checkin_records(s)[-1]["outcome"] == "failed", "the failed check-in is audited too")
    # m = 5 s, k = 2000 (the defaults): the second retry lies within [10, 20] s.
    nxt = s.policy_property("NextCheckIn") / 1e6 - time.time()
    check(0 < nxt <= 21, f"the retry is set in the TR-069 window ({nxt:.1f} s)")

    # --- The retry timer: with the server back (and m = 1 s), the scheduled retry gets through. ---
    s.start("server")
    seen = s.counts().get("CheckIn", 0)
    s.set_policy(ServerURL=s.server_url(), RetryMinimumWait=1)
    nxt = s.policy_property("NextCheckIn") / 1e6 - time.time()
    check(nxt <= 5, f"the retry is set anew in the window of the new m: [2, 4] s ({nxt:.1f} s)")
    s.wait_server(lambda d: d["counts"].get("CheckIn", 0) > seen, "the scheduled retry's check-in")
    h.wait_for(lambda: checkin_records(s)[-1]["why"] == "retry" and checkin_records(s)[-1]["outcome"] == "done",
               "the retry's audit record")
    check(s.policy_property("RetryState") == [0, "on schedule"] and s.policy_property("LastError") == "",
          "after it the schedule is back to normal")

    # --- Off again: nothing scheduled. ---
    s.set_policy(RemoteServices=False)
    check(s.policy_property("NextCheckIn") == 0, "remote services off: no check-in scheduled")

    # --- No device id yet (policyd starts while the collector is away): the check-in says so. ---
    s.stop("collector")
    s.restart("policyd")
    s.set_policy(RemoteServices=True)
    seen = s.counts().get("CheckIn", 0)
    r = s.call_policy("root", "CheckInNow")
    check(r.returncode != 0 and "No device id: no snapshot from the collector" in r.stderr,
          f"without the collector's snapshot the check-in fails, saying why ({r.stderr.strip()})")
    check("No device id" in s.policy_property("LastError") and s.counts().get("CheckIn", 0) == seen,
          "LastError says so, and the server saw nothing")
    s.start("collector")
    r = s.call_policy("root", "CheckInNow")
    check(r.returncode == 0 and s.counts().get("CheckIn", 0) == seen + 1,
          f"with the collector back, the device id is learnt and the check-in made ({r.stderr.strip()})")
    s.set_policy(RemoteServices=False)
    check(s.verify().returncode == 0, "callhome-audit verify passes")


def main():
    skip_unless_root("the check-in test")
    which = sys.argv[1] if len(sys.argv) > 1 else "basics"
    with Harness(f"checkin-{which}") as h, System(h) as s:
        {"basics": test_basics, "schedule": test_schedule}[which](h, s)


if __name__ == "__main__":
    main()
