#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""An interrupted software download resumes where it stopped. A 4 MiB package
(16 GetSoftware ranges) is being downloaded into policyd's staging file when
the net-worker is stopped and killed; a new one is started. policyd's next
attempt asks for the bytes after those already staged: the server's message
log shows every GetSoftware range after the interruption starting at or past
that offset (none from 0), fewer bytes are fetched the second time, the audit
log's "software.download" records say where each attempt began, and the
package installs whole."""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_instruction_common import (audit_export, check, check_in, connect, pc, software_system,  # noqa: E402
                                     wait_report)
from test_software_fetch import window_from  # noqa: E402
from chtest import Harness, skip_unless_root  # noqa: E402

SIZE = 4 << 20


def get_software_requests(s, start=0):
    """(Offset, Length) of each GetSoftware request the server received, from message `start` on."""
    out = []
    for m in s.server_messages()[start:]:
        if m.get("type") == "message" and m.get("dir") == "in" and m.get("op") == "GetSoftware":
            x = re.search(r"<Offset>(\d+)</Offset><Length>(\d+)</Length>", m.get("body", ""))
            out.append((int(x.group(1)), int(x.group(2))))
    return out


def main():
    skip_unless_root("the download resume test")
    with Harness("software-resume") as h, software_system(h, repo=os.path.join(h.tmp, "repo")) as s:
        repo = os.path.join(h.tmp, "repo")
        s.start_all()
        pc.sign_package(s.dirs["pki"], repo, "fw-big", os.urandom(SIZE), version="1.0.0")
        connect(s)
        s.set_policy(SoftwareUpdates="automatic", MaintenanceWindowStart=window_from(-1), MaintenanceWindowMinutes=120)
        staged = os.path.join(s.staging, "fw-big-1.0.0.part")

        def size():
            try:
                return os.stat(staged).st_size
            except FileNotFoundError:
                return 0

        pid = s.enqueue({"type": "SoftwareAvailable", "package": "fw-big"})
        check_in(s)
        # Stop the net-worker as soon as the first range is in the staging file.
        h.wait_for(lambda: size() > 0, "the first bytes in the staging file", timeout=30, interval=0.002)
        s.sigstop("net")
        first = size()
        check(0 < first < SIZE, f"the download is interrupted part way: {first} of {SIZE} bytes staged")
        mark = len(s.server_messages())
        s.kill9("net")
        s.start("net")
        connect(s)

        rep = wait_report(s, pid, "Done", timeout=45)
        check(os.listdir(s.drop) == ["fw-big-1.0.0.pkg"], f"the package is installed ({rep.get('Detail')})")
        with open(os.path.join(s.drop, "fw-big-1.0.0.pkg"), "rb") as f, open(os.path.join(repo, "fw-big.pkg"), "rb") as g:
            check(f.read() == g.read(), "whole, byte for byte")

        after = [r for r in get_software_requests(s, mark) if r[1] > 0]
        check(after and min(o for o, _ in after) >= first,
              f"after the interruption every range starts past the {first} bytes staged ({after[:3]}...)")
        fetched = sum(min(n, SIZE - o) for o, n in after)
        check(fetched <= SIZE - first < SIZE, f"the second time {fetched} bytes are fetched, not {SIZE}")

        downloads = [json.loads(r["payload"]) for r in audit_export(s, "software.download")]
        check(downloads[0]["resumed_from"] == 0 and "error" in downloads[0],
              f"the audit log has the interrupted attempt, from 0 ({downloads[0]})")
        check(downloads[-1]["resumed_from"] >= first and downloads[-1]["written"] == SIZE - downloads[-1]["resumed_from"],
              f"... and the one that resumed ({downloads[-1]})")
        check(s.stop("policyd") == 0, "policyd stops cleanly (under ASan: nothing leaked)")


if __name__ == "__main__":
    main()
