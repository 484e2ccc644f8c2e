# SPDX-License-Identifier: Apache-2.0
"""Reading the project's systemd units as systemd does, for the tests that check them
(check_units.py, check_install.py) and the one that runs each daemon in its unit's
sandbox without systemd (test_units_run.py)."""

import re
import subprocess

_groups = {}


def expand(token):
    """A syscall name, or the names of a group (and of the groups in it) as this systemd defines them."""
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


def settings(text, key):
    """Every value of Key= in the unit text, in order."""
    return re.findall(rf"^{re.escape(key)}=(.*)$", text, flags=re.M)


def setting(text, key, default=None):
    """The last value of Key=, as systemd keeps it for a single-valued setting."""
    values = settings(text, key)
    return values[-1] if values else default


def syscall_filter(text):
    """The unit's SystemCallFilter= lines in systemd's semantics: the first line makes an
    allowlist (or, with ~, a denylist); later lines add or remove. Returns (allow, names):
    allow is True when names are what is allowed, False when they are what is denied,
    None when the unit filters nothing."""
    allow = None
    names = set()
    for value in settings(text, "SystemCallFilter"):
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
    return allow, names


def blocked(text, syscalls):
    """Those of syscalls that the unit's SystemCallFilter= blocks."""
    allow, names = syscall_filter(text)
    if allow is None:
        return []
    return [s for s in syscalls if (s not in names) == allow]


def security(path, cwd=None, root=None):
    """`systemd-analyze security --offline=yes` of a unit file: (score, label, the ✗ lines, full output)."""
    argv = ["systemd-analyze", "security", "--offline=yes", "--no-pager"]
    if root:
        argv.append(f"--root={root}")
    r = subprocess.run(argv + [path], capture_output=True, text=True, cwd=cwd)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\S+)", r.stdout)
    if not m:
        return None, None, [], r.stdout + r.stderr
    return (float(m.group(1)), m.group(2), [l for l in r.stdout.splitlines() if l.startswith("✗")],
            r.stdout + r.stderr)


# The highest exposure each unit may have (issue 13): the net-worker needs the network.
MAX_EXPOSURE = {
    "callhome-collector.service": 0.2,
    "callhome-auditd.service": 0.2,
    "callhome-policyd.service": 0.2,
    "callhome-net-worker.service": 1.0,
}

# What each daemon calls to confine itself (common/confine.c) once systemd's filter is on:
# Landlock and its own seccomp filter (answered EPERM, the daemon refuses to start:
# common/daemon.c), no_new_privs, its resource limits.
CONFINE_SYSCALLS = ["landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
                    "seccomp", "prctl", "prlimit64"]
