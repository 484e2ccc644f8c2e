# SPDX-License-Identifier: Apache-2.0
"""What the instruction, consent and software-fetch tests share: the whole
system (tests/harness/system.py) with the instruction-related options of
callhome-policyd, and ways to see what the server was told (ReportResult) and
what the audit log holds (the "instruction" records: verdict and why)."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from chtest import check, fail, uid_of, wait_for_change  # noqa: E402
from system import POLICY_NAME, POLICY_PATH, System  # noqa: E402
import protocol_common as pc  # noqa: E402
import auditlib  # noqa: E402

MODEL = "XC-9000"


def denied(r):
    return r.returncode != 0 and ("Access denied" in r.stderr or "AccessDenied" in r.stderr
                                  or "not permitted" in r.stderr or "rejected" in r.stderr)


def software_system(h, repo=None, extra=()):
    """A System whose policyd stages software in its own directory and installs
    into a drop directory (both callhome-policy's, on one file system), with the
    test PKI's code-signing root pinned and the model MODEL."""
    staging, drop = os.path.join(h.tmp, "staging"), os.path.join(h.tmp, "drop")
    uid = uid_of("callhome-policy")
    for d in (staging, drop) + ((repo,) if repo else ()):
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.chown(d, uid, -1)
    s = System(h, start=False, server_args=["--witness-tofu"] + (["--software-dir", repo] if repo else []),
               policyd_args=[f"--staging-dir={staging}", f"--drop-dir={drop}", f"--model={MODEL}",
                             "--code-signing-anchor=" + os.path.join(h.tmp, "pki", "codesign-ca.crt"), *extra])
    s.staging, s.drop = staging, drop
    return s


def connect(s):
    """Remote services on, the server set; the net-worker is told the server as
    the flow will (harmless once it does)."""
    s.enable(CheckInIntervalMin=3600, CheckInIntervalMax=7200, RetryMinimumWait=1, RetryIntervalMultiplier=1000)
    s.h.busctl("root", "call", "org.callhome.NetWorker1", "/org/callhome/NetWorker1", "org.callhome.NetWorker1",
               "SetServer", "s", s.server_url())


def check_in(s, user="root"):
    r = s.call_policy(user, "CheckInNow")
    check(r.returncode == 0, f"{user} checks in now ({r.stderr.strip()})")


def reports(s, instruction_id):
    """The ReportResult payloads the server took for one instruction, in order."""
    return [x["payload"] for x in s.submissions("ReportResult")
            if str(x["payload"].get("InstructionId")) == str(instruction_id)]


def wait_report(s, instruction_id, outcome, timeout=30):
    """Waits until the server was told `outcome` for the instruction; returns that report."""
    found = []

    def seen(_):
        found[:] = [r for r in reports(s, instruction_id) if r.get("Outcome") == outcome]
        return bool(found)

    s.wait_server(seen, f"ReportResult {outcome} for instruction {instruction_id}", timeout=timeout)
    return found[0]


def audit_export(s, type=None):
    """Every record with its payload (`callhome-audit export --json`), optionally of one type."""
    r = auditlib.cli("export", f"--dir={s.dirs['audit']}", "--json", check=0)
    recs = [json.loads(line) for line in r.stdout.splitlines() if line.strip().startswith("{")]
    return [x for x in recs if type is None or x.get("type") == type]


def verdicts(s, instruction_id):
    """The "instruction" audit records of one instruction, their payloads parsed."""
    out = []
    for rec in audit_export(s, "instruction"):
        body = json.loads(rec["payload"])
        if body.get("instruction") == instruction_id:
            out.append(body)
    return out


def wait_verdict(s, instruction_id, verdict, timeout=30):
    def found():
        return next((v for v in verdicts(s, instruction_id) if v["verdict"] == verdict), None)

    try:  # woken by each write to the audit log's directory
        return wait_for_change([s.dirs["audit"]], found, "the verdict", timeout)
    except AssertionError:
        pass
    fail(f"no audited verdict {verdict!r} on instruction {instruction_id}: {verdicts(s, instruction_id)}")


def consent_requests(s, user="root"):
    r = s.call_policy(user, "ListConsentRequests")
    check(r.returncode == 0, f"{user} lists the consent requests ({r.stderr.strip()})")
    return json.loads(r.stdout)["data"][0]


def answer(s, method, request_id, user="root"):
    return s.call_policy(user, method, "t", request_id)


__all__ = ["MODEL", "POLICY_NAME", "POLICY_PATH", "System", "answer", "audit_export", "check", "check_in", "connect",
           "consent_requests", "denied", "fail", "pc", "reports", "software_system", "verdicts", "wait_report",
           "wait_verdict"]
