#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The customer's consent on org.callhome.Policy1, against the whole system:

  - DiagnosticsRequested (Diagnostics "ask") and SoftwareAvailable
    (SoftwareUpdates "ask") are held: the server is told AwaitingConsent, the
    requests are listed with what they would send or install, and
    ConsentRequestAdded goes to the policy's readers only;
  - callers other than root and callhome-admin can neither list nor answer;
  - approved diagnostics reach the server (SubmitDiagnostics) with machine data
    only: the collector's counters that were asked for and that the allowlist
    lets out; the one it does not is left out, and the audit log says so;
  - a denied request is reported Refused and sends nothing;
  - an approved update is fetched, verified and installed in the drop directory;
  - each answer is audited with the caller's uid; an answered request is gone;
  - the policy of the moment decides: a request approved after its service was
    turned off is refused."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_instruction_common import (answer, audit_export, check, check_in, connect, consent_requests,  # noqa: E402
                                     denied, pc, software_system, wait_report, wait_verdict)
from chtest import TEST_ADMIN, TEST_OTHER, Harness, skip_unless_root, uid_of  # noqa: E402
from system import POLICY_PATH  # noqa: E402


def main():
    skip_unless_root("the consent test")
    with Harness("consent") as h, software_system(h, repo=os.path.join(h.tmp, "repo")) as s:
        repo = os.path.join(h.tmp, "repo")
        s.start_all()
        pc.sign_package(s.dirs["pki"], repo, "fw", b"\x7fELF" + b"U" * 70000, version="3.1.4")
        connect(s)
        s.set_policy(Diagnostics="ask", SoftwareUpdates="ask",
                     Allowlist=["meter.TotalImpressions", "meter.TotalTwoSidedImpressions", "supply.*"])
        ears = h.listen_signals(["root", TEST_OTHER], POLICY_PATH)

        d1 = s.enqueue({"type": "DiagnosticsRequested", "reason": "print quality",
                        "items": ["meter.TotalImpressions", "TotalTwoSidedImpressions", "meter.TotalSheets"]})
        d2 = s.enqueue({"type": "DiagnosticsRequested", "reason": "second opinion", "items": ["meter.TotalImpressions"]})
        sw = s.enqueue({"type": "SoftwareAvailable", "package": "fw"})
        d3 = s.enqueue({"type": "DiagnosticsRequested", "reason": "asked while on", "items": []})
        check_in(s)
        for i in (d1, d2, sw, d3):
            wait_report(s, i, "AwaitingConsent")
            check(wait_verdict(s, i, "held")["why"] in ("diagnostics are never sent without consent",
                                                        "software updates are set to ask"),
                  f"instruction {i} is held, audited, and the server told AwaitingConsent")

        reqs = {r[0]: r for r in consent_requests(s, TEST_ADMIN)}
        check(sorted(reqs) == sorted([d1, d2, sw, d3]), f"callhome-admin lists the four requests ({sorted(reqs)})")
        check(reqs[d1][1] == "diagnostics" and reqs[d1][2] == "send diagnostics: print quality" and
              reqs[d1][3] == ["meter.TotalImpressions", "TotalTwoSidedImpressions", "meter.TotalSheets"],
              f"the diagnostics request says what would be sent ({reqs[d1]})")
        check(reqs[sw][1] == "software" and reqs[sw][2] == "install software fw version 3.1.4" and
              reqs[sw][3][:3] == ["package=fw", "version=3.1.4", "size=70004"] and reqs[sw][3][3].startswith("sha256="),
              f"the software request says what would be installed ({reqs[sw]})")
        check(all(r[4] > 0 for r in reqs.values()), "each says when it expires")
        check(s.counts().get("SubmitDiagnostics", 0) == 0 and s.counts().get("GetSoftware", 0) == 0,
              "nothing was sent or fetched without consent")

        # Only root and callhome-admin see or answer them.
        for user in (TEST_OTHER, "callhome-collector", "callhome-net"):
            check(denied(s.call_policy(user, "ListConsentRequests")), f"{user} cannot list the requests")
            check(denied(answer(s, "ApproveConsent", d1, user)), f"{user} cannot approve one")
            check(denied(answer(s, "DenyConsent", d1, user)), f"{user} cannot deny one")
        h.wait_for(lambda: len([m for m, a in h.signals_so_far(ears["root"])[0] if m == "ConsentRequestAdded"]) == 4,
                   "four ConsentRequestAdded")
        check(True, "root hears ConsentRequestAdded for each")

        # Approved diagnostics: machine data only, through the allowlist.
        r = answer(s, "ApproveConsent", d1, TEST_ADMIN)
        check(r.returncode == 0, f"callhome-admin approves the diagnostics ({r.stderr.strip()})")
        rep = wait_report(s, d1, "Done")
        subs = s.submissions("SubmitDiagnostics")
        check(len(subs) == 1 and str(subs[0]["payload"]["InstructionId"]) == str(d1),
              f"the server got the diagnostics it asked for ({rep.get('Detail')})")
        entries = {e["Name"]: e["Value"] for e in subs[0]["payload"].get("Entry", [])}
        check(sorted(entries) == ["meter.TotalImpressions", "meter.TotalTwoSidedImpressions"] and
              all(v.isdigit() for v in entries.values()),
              f"only the allowlisted counters asked for were sent, with their values ({entries})")
        out = [json.loads(x["payload"]) for x in audit_export(s, "diagnostics") if x["direction"] == "outbound"]
        check(len(out) == 1 and out[0]["left_out"] == ["meter.TotalSheets"] and out[0]["entries"] == entries,
              "the audit log holds what was sent and what the allowlist left out")
        v = wait_verdict(s, d1, "approved")
        check(v["arguments"]["uid"] == uid_of(TEST_ADMIN), "the approval is audited with the caller's uid")

        # Denied: refused, nothing sent.
        r = answer(s, "DenyConsent", d2, "root")
        check(r.returncode == 0, f"root denies the second request ({r.stderr.strip()})")
        rep = wait_report(s, d2, "Refused")
        check(rep.get("Detail") == "denied by uid 0", f"the server is told Refused ({rep.get('Detail')})")
        check(wait_verdict(s, d2, "denied")["arguments"]["uid"] == 0, "the denial is audited with the caller's uid")
        check(len(s.submissions("SubmitDiagnostics")) == 1, "nothing was sent for it")

        # Approved update: fetched, verified, installed.
        r = answer(s, "ApproveConsent", sw, TEST_ADMIN)
        check(r.returncode == 0, f"callhome-admin approves the update ({r.stderr.strip()})")
        rep = wait_report(s, sw, "Done")
        check(os.listdir(s.drop) == ["fw-3.1.4.pkg"], f"the update is in the drop directory ({rep.get('Detail')})")
        with open(os.path.join(s.drop, "fw-3.1.4.pkg"), "rb") as f, open(os.path.join(repo, "fw.pkg"), "rb") as g:
            check(f.read() == g.read(), "byte for byte")
        check(wait_verdict(s, sw, "installed")["arguments"] == {"installed": "fw-3.1.4.pkg"}, "the install is audited")

        # The policy of the moment decides: diagnostics turned off meanwhile, an approval sends nothing.
        s.set_policy(Diagnostics="off")
        r = answer(s, "ApproveConsent", d3, "root")
        check(r.returncode == 0, f"root approves a request held before diagnostics were turned off ({r.stderr.strip()})")
        rep = wait_report(s, d3, "Refused")
        check("off in the customer's policy" in rep.get("Detail", "") and len(s.submissions("SubmitDiagnostics")) == 1,
              f"... it is refused, nothing sent ({rep.get('Detail')})")

        # Answered requests are gone.
        check(consent_requests(s) == [], "no request waits any more")
        r = answer(s, "ApproveConsent", d2, "root")
        check(r.returncode != 0 and "No consent request" in r.stderr,
              f"an answered request cannot be answered again ({r.stderr.strip()})")
        h.wait_for(lambda: sorted(a[2] for m, a in h.signals_so_far(ears["root"])[0] if m == "ConsentRequestRemoved")
                   == ["approved", "approved", "approved", "denied"], "ConsentRequestRemoved for each")
        check(True, "root hears ConsentRequestRemoved for each, saying why")
        check(h.signals_so_far(ears[TEST_OTHER]) == ([], []), "another user hears none of it")
        check(s.stop("policyd") == 0, "policyd stops cleanly (under ASan: nothing leaked)")


if __name__ == "__main__":
    main()
