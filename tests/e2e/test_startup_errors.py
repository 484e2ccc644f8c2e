#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every start-up failure names the step and the path, so a person can act on it.

Each daemon that has a state directory is started as root with one beneath a
0700 directory (a clone under /root): root makes it ready, then the daemon,
dropped to its user, cannot reach it. Then one started with a bus socket its
user cannot reach. Each must exit non-zero, without owning its name, with one
line that names the step, the path, the user where it matters, and the error."""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from chtest import SERVICE_USERS, Harness, check, skip_unless_root  # noqa: E402

skip_unless_root("dropping to the service users")
DAEMONS = [("auditd/callhome-auditd", "org.callhome.Audit1", []),
           ("collector/callhome-collector", "org.callhome.Collector1", ["--source=sim:1"]),
           ("policy/callhome-policyd", "org.callhome.Policy1", [])]

closed = tempfile.mkdtemp(prefix="callhome-closed-")  # 0700: only root gets through
try:
    with Harness("startup-errors") as h:
        for exe, name, extra in DAEMONS:
            user = SERVICE_USERS[name]
            state = os.path.join(closed, os.path.basename(exe))
            r = h.run([h.exe(exe), f"--state-dir={state}"] + extra, timeout=30)
            out = (r.stdout + r.stderr).strip()
            print(f"# {os.path.basename(exe)}: {out}")
            check(r.returncode != 0, f"{os.path.basename(exe)} exits non-zero ({r.returncode}) with an unreachable state directory")
            check(f"State directory {state}: the user {user} cannot reach it: Permission denied" in out,
                  f"{os.path.basename(exe)} names the step, the path, its user and the error")
            check(not h.name_has_owner(name), f"{name} was never owned")

        sock = os.path.join(closed, "system_bus_socket")
        exe = "collector/callhome-collector"
        r = h.run([h.exe(exe), "--source=sim:1", f"--state-dir={h.tmp}/collector"],
                  env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={sock}"}, timeout=30)
        out = (r.stdout + r.stderr).strip()
        print(f"# collector, unreachable bus: {out}")
        check(r.returncode != 0, "the collector exits non-zero when it cannot reach the bus")
        check(f"Bus: cannot connect to unix:path={sock}: Permission denied" in out,
              "it names the step (Bus), the address and the error")
finally:
    shutil.rmtree(closed, ignore_errors=True)
