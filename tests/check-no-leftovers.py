#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Runs last: fails if any process started by a test is still alive.

Every test process inherits CALLHOME_TEST_RUN from meson's test environment,
so a stray daemon, proxy, server or bus is found by that marker in
/proc/PID/environ, whoever its user now is. Strays are reported, then ended
by their PID so that one failure does not poison the next run.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "harness"))
from chtest import wait_exit  # noqa: E402

marker = os.environ.get("CALLHOME_TEST_RUN")
if not marker:
    print("SKIP: CALLHOME_TEST_RUN is not set (run through meson test)")
    sys.exit(77)
needle = f"CALLHOME_TEST_RUN={marker}".encode()


def ancestors():
    out, pid = set(), os.getpid()
    while pid > 1:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return out


def strays():
    mine = ancestors()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in mine:
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state != "Z":
            found.append((int(d), cmd))
    return found


# A test's last SIGTERM may still be in flight: each stray's exit is waited for
# (its pidfd), two seconds at most, then they are looked for again.
left = strays()
if left:
    wait_exit([pid for pid, _ in left], 2)
    left = strays()

if left:
    for pid, cmd in left:
        print(f"FAIL: process {pid} left running by a test: {cmd}")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sys.exit(1)
print("ok - no process started by the tests is still running")
