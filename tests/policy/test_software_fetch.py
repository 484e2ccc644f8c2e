#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Software offered by the reference server (SoftwareAvailable, queued through
its admin port), with SoftwareUpdates "automatic" and the maintenance window
open: policyd fetches the signed manifest, verifies it, downloads the package
through the net-worker into its staging directory, checks it and installs it
into the drop directory; each bad package is refused for its own reason,
audited, reported (ReportResult Failed) and never installed:

  unsigned (empty signature), tampered (package and digest changed after
  signing), wrong signer (not from the pinned code-signing root), wrong
  model, expired. The good one raises the version floor kept on disk.
(test_software_fetch_floor.py: older versions, the window.)"""

import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_instruction_common import (audit_export, check, check_in, connect, pc, software_system,  # noqa: E402
                                     wait_report, wait_verdict)
from chtest import Harness, skip_unless_root  # noqa: E402


def window_from(offset_minutes):
    """The local time offset_minutes from now as HH:MM (the policy's window start)."""
    t = time.localtime(time.time() + offset_minutes * 60)
    return f"{t.tm_hour:02d}:{t.tm_min:02d}"


def make_repo(pki, repo):
    def sign(pid, data=b"P" * 6000, version="2.0.5", **kw):
        pc.sign_package(pki, repo, pid, data, version=version, **kw)

    def edit(name, change):
        path = os.path.join(repo, name)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(change(data))

    sign("fw")
    sign("fw-unsigned")
    edit("fw-unsigned.manifest.sig", lambda d: b"")
    # The package and its manifest's digest changed after signing: the server still
    # serves it (size and digest agree), the signature no longer holds.
    sign("fw-tampered", data=b"T" * 6000)
    import hashlib
    evil = b"T" * 5999 + b"!"
    edit("fw-tampered.pkg", lambda d: evil)
    good = hashlib.sha256(b"T" * 6000).hexdigest().encode()
    edit("fw-tampered.manifest", lambda d: d.replace(good, hashlib.sha256(evil).hexdigest().encode()))
    sign("fw-signer")
    subprocess.run(["openssl", "dgst", "-sha256", "-sign", os.path.join(pki, "codesign-untrusted.key"),
                    "-out", os.path.join(repo, "fw-signer.manifest.sig"), os.path.join(repo, "fw-signer.manifest")],
                   check=True, timeout=30)
    shutil.copyfile(os.path.join(pki, "codesign-untrusted.crt"), os.path.join(repo, "fw-signer.signer.pem"))
    sign("fw-model", model="XC-1000")
    sign("fw-expired", extra=("--expires", "2001-01-01T00:00:00Z"))


BAD = {
    "fw-unsigned": "manifest signature verification failed",
    "fw-tampered": "manifest signature verification failed",
    "fw-signer": "signer certificate does not chain to the pinned code-signing anchor",
    "fw-model": "manifest is for model XC-1000, this device is XC-9000",
    "fw-expired": "manifest expired at 2001-01-01T00:00:00Z",
}


def main():
    skip_unless_root("the software fetch test")
    with Harness("software-fetch") as h, software_system(h, repo=os.path.join(h.tmp, "repo")) as s:
        repo = os.path.join(h.tmp, "repo")
        s.start_all()
        make_repo(s.dirs["pki"], repo)
        connect(s)
        s.set_policy(SoftwareUpdates="automatic", MaintenanceWindowStart=window_from(-1), MaintenanceWindowMinutes=120)

        ids = {pid: s.enqueue({"type": "SoftwareAvailable", "package": pid}) for pid in ["fw"] + sorted(BAD)}
        check_in(s)
        for pid, why in BAD.items():
            rep = wait_report(s, ids[pid], "Failed")
            check(why in rep.get("Detail", ""), f"{pid}: refused and reported ({rep.get('Detail')})")
        audited = {v["instruction"]: v for v in map(json.loads, (r["payload"] for r in audit_export(s, "instruction")))
                   if v["verdict"] == "refused"}
        for pid, why in BAD.items():
            check(why in audited[ids[pid]]["why"], f"{pid}: ... and audited with its reason")
        rep = wait_report(s, ids["fw"], "Done")
        check(os.listdir(s.drop) == ["fw-2.0.5.pkg"], f"the good package, and only it, is in the drop directory "
                                                      f"({rep.get('Detail')})")
        with open(os.path.join(s.drop, "fw-2.0.5.pkg"), "rb") as f, open(os.path.join(repo, "fw.pkg"), "rb") as g:
            check(f.read() == g.read(), "byte for byte")
        check(wait_verdict(s, ids["fw"], "allowed")["why"] ==
              "software updates are automatic and the maintenance window is open", "fetched at once: the window is open")
        check(os.listdir(s.staging) == [], "nothing is left in the staging directory")
        with open(os.path.join(s.dirs["policy"], "software-floor-fw")) as f:
            check(f.read() == "2.0.5\n", "the version floor is raised and kept on disk")
        check(s.stop("policyd") == 0, "policyd stops cleanly (under ASan: nothing leaked)")


if __name__ == "__main__":
    main()
