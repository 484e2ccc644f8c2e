#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Consent requests and the check-in status survive a restart of callhome-policyd
(the instruction was acknowledged to the server when it was held: nothing else
would ever answer it). Against the whole system (tests/harness/system.py).

answer:
  - held requests (two diagnostics, one update) are kept in STATE_DIR/consent.json,
    mode 0600, callhome-policy's, holding what the request had and nothing more;
  - after policyd is killed (SIGKILL) and started again they are listed with the
    same ids, what they would send or install and when they expire; approved,
    denied, each answer reaches the server exactly once (and the diagnostics are
    sent once), nothing is held twice, and an answered request is gone, after
    another restart too;
  - LastCheckIn reads the same after the restart.
expired:
  - a request whose expiry passed while policyd was stopped (its wall clock set
    past it through tests/policy/flow-clock-shim.c) expires at start: audited
    "expired", the server told Refused, as at run time; nothing sent.
corrupt:
  - a consent.json that is not JSON, one over the size bound and one with a bad
    request among good ones: each reported, moved aside to consent.json.corrupt,
    policyd starts and keeps the good requests;
  - LastError (and LastCheckIn) read the same after a restart; a checkin.json of
    the earlier format (no status) still loads, its instruction kept."""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_instruction_common import (answer, check, check_in, connect, consent_requests, pc, reports,  # noqa: E402
                                     software_system, verdicts, wait_report, wait_verdict)
import chtest  # noqa: E402
from chtest import Harness, skip_unless_root, uid_of, wait_for_change  # noqa: E402
from checkinlib import payloads  # noqa: E402

SHIM = os.path.join(chtest.BUILD_ROOT, "tests", "policy", "libflow-clock-shim.so")


def consent_file(s):
    return os.path.join(s.dirs["policy"], "consent.json")


def kept(s):
    with open(consent_file(s)) as f:
        return json.load(f)["requests"]


def outcomes(s, i):
    return [r.get("Outcome") for r in reports(s, i)]


def check_in_fenced(s):
    """CheckInNow, then its audit record: whatever the check-in brought has been judged."""
    n = len(payloads(s, "checkin"))
    check_in(s)
    wait_for_change([s.dirs["audit"]], lambda: len(payloads(s, "checkin")) > n, "the check-in's audit record")


def test_answer(h, s):
    repo = os.path.join(h.tmp, "repo")
    s.start_all()
    pc.sign_package(s.dirs["pki"], repo, "fw", b"\x7fELF" + b"R" * 5000, version="2.0.1")
    connect(s)
    s.set_policy(Diagnostics="ask", SoftwareUpdates="ask", Allowlist=["meter.TotalImpressions"])
    d1 = s.enqueue({"type": "DiagnosticsRequested", "reason": "streaks \"after\" restart/ü",
                    "items": ["meter.TotalImpressions"]})
    d2 = s.enqueue({"type": "DiagnosticsRequested", "reason": "to be denied", "items": []})
    sw = s.enqueue({"type": "SoftwareAvailable", "package": "fw"})
    check_in(s)
    for i in (d1, d2, sw):
        wait_report(s, i, "AwaitingConsent")
    before = {r[0]: r for r in consent_requests(s)}
    check(sorted(before) == sorted([d1, d2, sw]), f"three requests are held ({sorted(before)})")
    last = s.policy_property("LastCheckIn")
    check(last > 0, "LastCheckIn is set")

    st = os.stat(consent_file(s))
    check(st.st_mode & 0o777 == 0o600 and st.st_uid == uid_of("callhome-policy"),
          f"consent.json is mode 0600 and callhome-policy's ({oct(st.st_mode)}, uid {st.st_uid})")
    on_disk = {r["id"]: r for r in kept(s)}
    check(sorted(on_disk) == sorted([d1, d2, sw]), "it holds the three requests")
    check(set(on_disk[d1]) == {"id", "kind", "expires_usec", "reason", "items"} and
          on_disk[d1]["reason"] == "streaks \"after\" restart/ü" and
          on_disk[d1]["items"] == ["meter.TotalImpressions"],
          f"a diagnostics request as the server sent it, nothing more ({on_disk[d1]})")
    check(set(on_disk[sw]) == {"id", "kind", "expires_usec", "package", "version", "size", "sha256"} and
          on_disk[sw]["package"] == "fw" and on_disk[sw]["version"] == "2.0.1",
          f"an update as the server offered it, nothing more ({on_disk[sw]})")

    # A power cut: no chance to tidy up.
    s.restart("policyd", kill=True)
    after = {r[0]: r for r in consent_requests(s)}
    check(after == before, f"after SIGKILL and a start: the same requests, ids, contents and expiry ({after})")
    check(s.policy_property("LastCheckIn") == last, f"LastCheckIn survives the restart ({last})")

    # The check-in that follows does not bring them again (they were acknowledged) nor hold them twice.
    check_in_fenced(s)
    check(sorted(r[0] for r in consent_requests(s)) == sorted([d1, d2, sw]), "each is held once")

    r = answer(s, "ApproveConsent", d1)
    check(r.returncode == 0, f"the diagnostics restored are approved ({r.stderr.strip()})")
    wait_report(s, d1, "Done")
    r = answer(s, "DenyConsent", d2)
    check(r.returncode == 0, f"the second is denied ({r.stderr.strip()})")
    wait_report(s, d2, "Refused")
    r = answer(s, "ApproveConsent", sw)
    check(r.returncode == 0, f"the update restored is approved ({r.stderr.strip()})")
    wait_report(s, sw, "Done")
    check(os.listdir(s.drop) == ["fw-2.0.1.pkg"], "... fetched, verified and installed")
    check(kept(s) == [] and consent_requests(s) == [], "answered, nothing waits, on disk either")

    # Started again: nothing comes back, nothing is answered twice.
    s.restart("policyd")
    check(consent_requests(s) == [], "after another restart no answered request is back")
    check_in_fenced(s)
    subs = s.submissions("SubmitDiagnostics")
    check(len(subs) == 1 and str(subs[0]["payload"]["InstructionId"]) == str(d1),
          f"the diagnostics reached the server once ({len(subs)})")
    for i, outcome in ((d1, "Done"), (d2, "Refused"), (sw, "Done")):
        check(outcomes(s, i) == ["AwaitingConsent", outcome],
              f"instruction {i}: the server was told AwaitingConsent, then {outcome}, once ({outcomes(s, i)})")
    check([v["verdict"] for v in verdicts(s, d2)] == ["held", "denied"], "the audit log has one verdict of each")


def test_expired(h, s):
    s.start_all()
    connect(s)
    s.set_policy(Diagnostics="ask")
    d = s.enqueue({"type": "DiagnosticsRequested", "reason": "nobody is there", "items": []})
    check_in(s)
    wait_report(s, d, "AwaitingConsent")
    (req,) = consent_requests(s)
    check(req[0] == d and kept(s)[0]["expires_usec"] == req[4], "held, and kept with its expiry")

    # Stopped for longer than the timeout: started with its wall clock an hour past the expiry.
    s.stop("policyd")
    with open(s.clock_file, "w") as f:
        f.write(f"{req[4] // 1000000 + 3600}\n")
    s.start("policyd")
    v = wait_verdict(s, d, "expired")
    check("the request expired" in v["why"], f"at start the request expires, audited ({v['why']})")
    rep = wait_report(s, d, "Refused")
    check("no answer from the customer within 604800 s" in rep.get("Detail", ""),
          f"the server is told Refused, as at run time ({rep.get('Detail')})")
    check(consent_requests(s) == [] and kept(s) == [], "nothing waits any more, on disk either")
    r = answer(s, "ApproveConsent", d)
    check(r.returncode != 0 and "No consent request" in r.stderr, "it can no longer be approved")
    check(s.counts().get("SubmitDiagnostics", 0) == 0, "nothing was sent")
    check(outcomes(s, d) == ["AwaitingConsent", "Refused"], f"told once ({outcomes(s, d)})")


def restart_with(s, text, why):
    """policyd stopped, consent.json replaced by `text`, started again: it must start and say `why`."""
    path = consent_file(s)
    s.stop("policyd")
    with open(path, "w") as f:
        f.write(text)
    os.chown(path, uid_of("callhome-policy"), -1)  # its own file, damaged (the daemon refuses anyone else's)
    os.chmod(path, 0o600)
    s.start("policyd")
    s.wait_log("policyd", re.escape(path) + f" {why}: moved aside to " + re.escape(path + ".corrupt"))
    with open(path + ".corrupt") as f:
        check(f.read() == text, f"a consent.json that {why}: reported, moved aside as it was, policyd started")


def test_corrupt(h, s):
    s.start_all()
    connect(s)
    s.set_policy(Diagnostics="ask")
    d = s.enqueue({"type": "DiagnosticsRequested", "reason": "kept through it all",
                   "items": ["meter.TotalImpressions"]})
    check_in(s)
    wait_report(s, d, "AwaitingConsent")
    good = kept(s)[0]

    restart_with(s, '{"requests": [', "is not a JSON object")
    check(consent_requests(s) == [], "... nothing is held from it")
    restart_with(s, json.dumps({"requests": [good], "pad": "x" * (300 << 10)}), r"is larger than \d+ bytes")
    check(consent_requests(s) == [], "... nothing is held from it")

    bad = dict(good, id=good["id"] + 1000, items=["not a name!"])
    text = json.dumps({"requests": [bad, {"id": "7"}, good]})
    restart_with(s, text, "holds requests that are not whole")
    reqs = consent_requests(s)
    check([r[0] for r in reqs] == [d] and reqs[0][3] == ["meter.TotalImpressions"],
          f"... the whole request in it is held again ({reqs})")
    check(kept(s) == [good], "... and it alone is kept")
    out = s.output("policyd")
    check("request 1 of 3 is left out" in out and "request 2 of 3 is left out" in out,
          "each request left out is named")

    # The check-in status: the last success and the last failure, kept.
    last = s.policy_property("LastCheckIn")
    s.stop_server()
    r = s.call_policy("root", "CheckInNow")
    err = s.policy_property("LastError")
    check(r.returncode != 0 and "could not be reached" in err, f"a check-in fails ({err})")
    s.restart("policyd")
    check(s.policy_property("LastError") == err and s.policy_property("LastCheckIn") == last,
          "LastError and LastCheckIn read the same after a restart")

    # A checkin.json as the earlier version wrote it (no status): loaded, its instruction kept.
    s.stop("policyd")
    state = os.path.join(s.dirs["policy"], "checkin.json")
    with open(state) as f:
        old = json.load(f)
    with open(state, "w") as f:
        f.write(json.dumps({"last_instruction": old["last_instruction"], "interval": old["interval"]}) + "\n")
    s.start("policyd")
    check(s.policy_property("LastCheckIn") == 0 and s.policy_property("LastError") == "",
          "a checkin.json without the status reads as no check-in yet")
    s.start("server")
    check_in_fenced(s)
    check(payloads(s, "checkin")[-1]["last_instruction"] == old["last_instruction"] and
          s.policy_property("LastCheckIn") > last, "... and its highest instruction is acknowledged")


PARTS = {"answer": test_answer, "expired": test_expired, "corrupt": test_corrupt}


def main():
    part = sys.argv[1]
    skip_unless_root("the consent restart test")
    if part == "expired":
        chtest.skip_if_sanitized("the clock shim is preloaded into policyd, ahead of the sanitizer runtime")
    with Harness(f"consent-restart-{part}") as h:
        s = software_system(h, repo=os.path.join(h.tmp, "repo"))
        s.clock_file = os.path.join(h.tmp, "clock")
        if part == "expired":
            s.policyd_env = {"LD_PRELOAD": SHIM, "CALLHOME_TEST_CLOCK_FILE": s.clock_file}
        with s:
            PARTS[part](h, s)
            check(s.stop("policyd") == 0, "policyd stops cleanly (under ASan: nothing leaked)")


if __name__ == "__main__":
    main()
