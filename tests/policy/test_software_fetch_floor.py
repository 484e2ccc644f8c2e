#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The version floor and the maintenance window, with software updates
"automatic":

  - the floor policyd finds on disk at start (2.0.5 installed) holds: an older
    version, well signed, is refused before anything is fetched, audited and
    reported Failed; a newer one installs and raises the floor on disk;
  - outside the maintenance window an offer is scheduled for the window's
    start (audited), nothing is fetched before it; the same package offered
    again meanwhile is refused (one staging file per package)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_instruction_common import (check, check_in, connect, pc, software_system, verdicts,  # noqa: E402
                                     wait_report, wait_verdict)
from test_software_fetch import window_from  # noqa: E402
from chtest import Harness, skip_unless_root  # noqa: E402


def main():
    skip_unless_root("the software floor test")
    with Harness("software-floor") as h, software_system(h, repo=os.path.join(h.tmp, "repo")) as s:
        repo = os.path.join(h.tmp, "repo")
        for part in ("auditd", "collector", "server", "net"):
            s.start(part)
        # What an earlier install left: policyd takes the state directory over at start.
        os.makedirs(s.dirs["policy"], mode=0o700, exist_ok=True)
        floor = os.path.join(s.dirs["policy"], "software-floor-fw")
        with open(floor, "w") as f:
            f.write("2.0.5\n")
        s.start("policyd")
        connect(s)
        s.set_policy(SoftwareUpdates="automatic", MaintenanceWindowStart=window_from(-1), MaintenanceWindowMinutes=120)

        pc.sign_package(s.dirs["pki"], repo, "fw", b"O" * 5000, version="2.0.1")
        older = s.enqueue({"type": "SoftwareAvailable", "package": "fw"})
        check_in(s)
        rep = wait_report(s, older, "Failed")
        check("version 2.0.1 is not newer than the installed 2.0.5 (no rollback)" in rep.get("Detail", ""),
              f"an older version than the floor on disk is refused and reported ({rep.get('Detail')})")
        check(wait_verdict(s, older, "refused")["why"] == rep["Detail"], "... and audited")
        check(os.listdir(s.drop) == [] and os.listdir(s.staging) == [] and
              all("Data" not in m.get("body", "") or "<Offset>0</Offset><Length>0</Length>" in m.get("body", "")
                  for m in s.server_messages() if m.get("op") == "GetSoftware" and m.get("dir") == "in"),
              "nothing but the manifest was fetched, nothing installed")

        pc.sign_package(s.dirs["pki"], repo, "fw", b"N" * 5000, version="2.0.6")
        newer = s.enqueue({"type": "SoftwareAvailable", "package": "fw"})
        check_in(s)
        wait_report(s, newer, "Done")
        check(os.listdir(s.drop) == ["fw-2.0.6.pkg"], "a newer version installs")
        with open(floor) as f:
            check(f.read() == "2.0.6\n", "and raises the floor on disk")

        # Outside the window: scheduled for it, nothing fetched now.
        later_window = window_from(180)  # once: the minute may turn before it is checked
        s.set_policy(MaintenanceWindowStart=later_window, MaintenanceWindowMinutes=15)
        pc.sign_package(s.dirs["pki"], repo, "fw-later", b"L" * 5000, version="1.0.0")
        fetched = s.counts().get("GetSoftware", 0)
        later = s.enqueue({"type": "SoftwareAvailable", "package": "fw-later"})
        again = s.enqueue({"type": "SoftwareAvailable", "package": "fw-later"})
        check_in(s)
        v = wait_verdict(s, later, "scheduled")
        check("fetched in the maintenance window, at " in v["why"] and later_window in v["why"],
              f"outside the window the offer is scheduled for it ({v['why']})")
        rep = wait_report(s, again, "Refused")
        check(rep.get("Detail") == "this package is already being handled for an earlier instruction",
              "the same package offered again meanwhile is refused: one download per package")
        check(s.counts().get("GetSoftware", 0) == fetched and len(verdicts(s, later)) == 1,
              "nothing is fetched before the window")
        check(s.stop("policyd") == 0, "policyd stops cleanly (under ASan: nothing leaked)")


if __name__ == "__main__":
    main()
