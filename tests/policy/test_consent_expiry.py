#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Consent requests expire: with callhome-policyd --consent-timeout=3, a held
diagnostics request and a held update that nobody answers are removed
(ConsentRequestRemoved "expired"), audited ("expired") and reported Refused;
nothing is sent or fetched, and an expired request can no longer be approved."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_instruction_common import (answer, check, check_in, connect, consent_requests, pc,  # noqa: E402
                                     software_system, wait_report, wait_verdict)
from chtest import Harness, skip_unless_root  # noqa: E402
from system import POLICY_PATH  # noqa: E402


def main():
    skip_unless_root("the consent expiry test")
    with Harness("consent-expiry") as h, \
            software_system(h, repo=os.path.join(h.tmp, "repo"), extra=["--consent-timeout=3"]) as s:
        s.start_all()
        pc.sign_package(s.dirs["pki"], os.path.join(h.tmp, "repo"), "fw", b"E" * 4000, version="1.2.3")
        connect(s)
        s.set_policy(Diagnostics="ask", SoftwareUpdates="ask")
        ears = h.listen_signals(["root"], POLICY_PATH)
        d = s.enqueue({"type": "DiagnosticsRequested", "reason": "nobody answers", "items": []})
        sw = s.enqueue({"type": "SoftwareAvailable", "package": "fw"})
        check_in(s)
        for i in (d, sw):
            wait_report(s, i, "AwaitingConsent")
        check(True, "both are held and the server told AwaitingConsent")

        h.wait_for(lambda: sorted(a[2] for m, a in h.signals_so_far(ears["root"])[0] if m == "ConsentRequestRemoved")
                   == ["expired", "expired"], "both requests to expire", timeout=30)
        check(True, "ConsentRequestRemoved says each expired")
        for i in (d, sw):
            rep = wait_report(s, i, "Refused")
            check("no answer from the customer within 3 s" in rep.get("Detail", ""),
                  f"instruction {i}: the server is told Refused, saying why ({rep.get('Detail')})")
            v = wait_verdict(s, i, "expired")
            check("the request expired" in v["why"], "... and the expiry is audited")
        check(consent_requests(s) == [], "nothing waits any more")
        r = answer(s, "ApproveConsent", d)
        check(r.returncode != 0 and "No consent request" in r.stderr, "an expired request cannot be approved")
        check(s.counts().get("SubmitDiagnostics", 0) == 0 and s.counts().get("GetSoftware", 0) == 0 and
              os.listdir(s.drop) == [], "nothing was sent, fetched or installed")
        check(s.stop("policyd") == 0, "policyd stops cleanly (under ASan: nothing leaked)")


if __name__ == "__main__":
    main()
