#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The systemd units in systemd/ are valid and tightly confined.

For each *.service: `systemd-analyze verify` accepts it (ExecStart= pointed at
the freshly built binary, since nothing is installed here), and
`systemd-analyze security --offline=yes` rates its exposure at or below
THRESHOLD. Each unit's own score is printed so a regression is visible.
Each unit's SystemCallFilter=, with its groups expanded by systemd itself
(`systemd-analyze syscall-filter`), lets through what the daemon's own
confinement needs: Landlock (answered EPERM, the daemon would run without it
and warn)."""
import glob
import os
import re
import subprocess
import sys
import tempfile

THRESHOLD = float(os.environ.get("CALLHOME_UNIT_EXPOSURE_MAX", "2.0"))
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


# What each daemon calls to confine itself (common/confine.c), after systemd's filter is on.
CONFINE_SYSCALLS = ["landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"]
_groups = {}


def expand(token):
    """A syscall name, or the names of a group (and of the groups in it) as systemd defines them."""
    if not token.startswith("@"):
        return {token}
    if token not in _groups:
        r = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", token],
                           capture_output=True, text=True, check=True)
        _groups[token] = set()
        for line in r.stdout.splitlines()[1:]:
            line = line.strip()
            if line and not line.startswith("#"):
                _groups[token] |= expand(line)
    return _groups[token]


def filter_blocks(text):
    """The syscalls of CONFINE_SYSCALLS that the unit's SystemCallFilter= lines block, in systemd's
    semantics: the first line makes an allowlist (or, with ~, a denylist); later lines add or remove."""
    allow = None  # True: `names` is what is allowed; False: what is denied
    names = set()
    for value in re.findall(r"^SystemCallFilter=(.*)$", text, flags=re.M):
        deny = value.startswith("~")
        tokens = value.lstrip("~").split()
        if not tokens:
            allow, names = None, set()  # an empty assignment resets
            continue
        listed = set().union(*(expand(t) for t in tokens))
        if allow is None:
            allow = not deny
        if allow != deny:
            names |= listed
        else:
            names -= listed
    if allow is None:
        return []
    return [s for s in CONFINE_SYSCALLS if (s not in names) == allow]


failures = 0
with tempfile.TemporaryDirectory() as tmp:
    for unit in units:
        name = os.path.basename(unit)
        text = open(unit).read()

        # verify: point ExecStart= at the built binary.
        def repl(m):
            path = built_binary(os.path.basename(m.group(2)))
            return m.group(1) + (path or m.group(2))
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

        blocked = filter_blocks(text)
        if blocked:
            failures += 1
            print(f"not ok - {name}: SystemCallFilter= blocks what the daemon confines itself with: "
                  + " ".join(blocked))
        else:
            print(f"ok - {name}: SystemCallFilter= lets through " + " ".join(CONFINE_SYSCALLS))

        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", unit],
                           capture_output=True, text=True, cwd=os.path.dirname(unit))
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\S+)", r.stdout)
        if not m:
            failures += 1
            print(f"not ok - {name}: no exposure level from systemd-analyze security:\n{r.stdout}{r.stderr}")
            continue
        score = float(m.group(1))
        if score > THRESHOLD:
            failures += 1
            print(f"not ok - {name}: exposure {score} {m.group(2)} > {THRESHOLD}")
            print("\n".join(l for l in r.stdout.splitlines() if l.startswith("✗")))
        else:
            print(f"ok - {name}: exposure {score} {m.group(2)} (at most {THRESHOLD})")

sys.exit(1 if failures else 0)
