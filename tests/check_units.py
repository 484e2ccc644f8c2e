#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The systemd units in systemd/ are valid and tightly confined.

For each *.service: `systemd-analyze verify` accepts it (ExecStart= pointed at
the freshly built binary, since nothing is installed here), and
`systemd-analyze security --offline=yes` rates its exposure at or below
its ceiling (tests/harness/units.py: 0.2, the net-worker 1.0). Each unit's
own score is printed so a regression is visible. Each unit's
SystemCallFilter=, with its groups expanded by systemd itself
(`systemd-analyze syscall-filter`), lets through what the daemon's own
confinement needs: Landlock and seccomp() (answered EPERM, the daemon refuses
to start: common/daemon.c), prctl() and prlimit64()."""
import glob
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "harness"))
from units import CONFINE_SYSCALLS, MAX_EXPOSURE, blocked, security  # noqa: E402

# The ceiling per unit; CALLHOME_UNIT_EXPOSURE_MAX overrides it for every unit.
THRESHOLD = os.environ.get("CALLHOME_UNIT_EXPOSURE_MAX")
src = os.environ.get("CALLHOME_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), ".."))
build = os.environ.get("CALLHOME_BUILD_ROOT", os.path.join(src, "build"))

units = sorted(glob.glob(os.path.join(src, "systemd", "*.service")))
if not units:
    print("SKIP: no units yet")
    sys.exit(77)


def built_binary(name):
    for root, dirs, files in os.walk(build):
        dirs[:] = [d for d in dirs if not d.endswith(".p") and not d.startswith("meson-")]
        if name in files:
            return os.path.join(root, name)
    return None


failures = 0
with tempfile.TemporaryDirectory() as tmp:
    for unit in units:
        name = os.path.basename(unit)
        text = open(unit).read()

        # verify: point ExecStart= at the built binary.
        # A daemon not built yet (its directory still empty): the unit is checked all the
        # same, with /bin/true standing in for the binary, and the output says so.
        def repl(m):
            path = built_binary(os.path.basename(m.group(2)))
            if not path:
                print(f"# {name}: {m.group(2)} is not built yet; verified with /bin/true in its place")
            return m.group(1) + (path or "/bin/true")
        local = re.sub(r"^(ExecStart=[-@:+!]*)(\S+)", repl, text, flags=re.M)
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(local)
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", path], capture_output=True, text=True)
        complaints = [l for l in (r.stdout + r.stderr).splitlines()
                      if l.strip() and "Failed to connect" not in l and "not a directory" not in l]
        if r.returncode != 0 or complaints:
            failures += 1
            print(f"not ok - {name}: systemd-analyze verify:\n  " + "\n  ".join(complaints))
        else:
            print(f"ok - {name}: systemd-analyze verify")

        stopped = blocked(text, CONFINE_SYSCALLS)
        if stopped:
            failures += 1
            print(f"not ok - {name}: SystemCallFilter= blocks what the daemon confines itself with: "
                  + " ".join(stopped))
        else:
            print(f"ok - {name}: SystemCallFilter= lets through " + " ".join(CONFINE_SYSCALLS))

        limit = float(THRESHOLD) if THRESHOLD else MAX_EXPOSURE.get(name, 0.2)
        score, label, worse, out = security(unit, cwd=os.path.dirname(unit))
        if score is None:
            failures += 1
            print(f"not ok - {name}: no exposure level from systemd-analyze security:\n{out}")
            continue
        if score > limit:
            failures += 1
            print(f"not ok - {name}: exposure {score} {label} > {limit}")
            print("\n".join(worse))
        else:
            print(f"ok - {name}: exposure {score} {label} (at most {limit})")

sys.exit(1 if failures else 0)
