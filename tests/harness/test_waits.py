#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The harness's waits are woken by events, never by a timer:

  - Harness.wait_for() evaluates its predicate again when a file beneath the
    run's directory is written, also in directories made during the wait, and
    when a signal crosses the bus (here: a name taken);
  - a predicate never true is evaluated once when nothing happens (at most
    three times: a stray event of the harness's start; a poll would evaluate
    it some 40 times), then fails at the bound naming what
    it waited for;
  - Process.wait() returns once the process exits (its pidfd), raises
    TimeoutExpired while it runs;
  - popen_wait(), the same for a bare Popen: the exit status of a child that
    exits (reaped), TimeoutExpired at the bound for one that runs on, which
    it leaves running and unreaped for the caller to stop.

Each stimulus is started by the predicate's first evaluation, so it happens
while the harness waits."""

import contextlib
import io
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chtest import Harness, Process, check, fail, popen_wait  # noqa: E402

NAME = "org.callhome.WaitTest1"

# Takes NAME once told to on stdin, then holds it until stdin closes.
OWNER = r"""
import dbus, sys
bus = dbus.bus.BusConnection(sys.argv[1])
sys.stdin.readline()
bus.request_name(sys.argv[2])
sys.stdin.readline()
"""


def counted(predicate, first=None):
    """predicate, counting its evaluations in .n; first() runs before the first one."""
    def f():
        if f.n == 0 and first:
            first()
        f.n += 1
        return predicate()
    f.n = 0
    return f


def piped(argv):
    """A child reading its stdin (a pipe of ours), its output nowhere: its stimulus."""
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def told(p):
    """A first() that tells the child to go."""
    def go():
        p.stdin.write(b"go\n")
        p.stdin.flush()
    return go


def ended(p):
    p.stdin.close()
    return Process(p, p.args, os.devnull).wait(timeout=30)


def never(h):
    pred = counted(lambda: False)
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):  # its "FAIL:" line is expected here
            h.wait_for(pred, "something that never happens", timeout=2)
    except AssertionError as e:
        check("something that never happens" in str(e), f"a predicate never true fails at the bound, saying so: {e}")
    else:
        fail("wait_for returned for a predicate never true")
    # once; a stray event of the harness's own start (a late signal, a log line) may add one or two, where a
    # poll every 50 ms would evaluate it some 40 times
    check(pred.n <= 3, f"while nothing happens the predicate is not polled (evaluated {pred.n} times in 2 s)")


def file_in_new_directory(h):
    flag = os.path.join(h.tmp, "made", "during", "the-wait")
    p = piped(["sh", "-c", 'read go && mkdir -p "${1%/*}" && echo written > "$1" && read end', "sh", flag])
    try:
        def written():
            try:
                with open(flag) as f:
                    return f.read() == "written\n"
            except OSError:
                return False

        pred = counted(written, told(p))
        h.wait_for(pred, "the file written in a directory made meanwhile", timeout=60)
        check(True, f"wait_for returns once a child writes a file in a directory made during the wait "
                    f"({pred.n} evaluations)")
    finally:
        ended(p)


def name_on_the_bus(h):
    # Its output goes nowhere under the run's directory: only the bus can wake the wait.
    p = piped(["/usr/bin/python3", "-c", OWNER, h.address, NAME])
    try:
        pred = counted(lambda: h.name_has_owner(NAME), told(p))
        h.wait_for(pred, f"{NAME} to be owned", timeout=60)
        check(True, f"wait_for is woken by the bus: a name taken by a process that writes no file "
                    f"({pred.n} evaluations)")
    finally:
        ended(p)


def process_wait(h):
    p = piped(["cat"])
    proc = Process(p, p.args, os.devnull)
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        check(True, "Process.wait raises TimeoutExpired while the process runs")
    else:
        fail("Process.wait returned while the process ran")
    check(ended(p) == 0, "Process.wait returns the exit status once the process has exited")


def popen_waits(h):
    p = piped(["/bin/sh", "-c", "read x; exit 3"])
    p.stdin.close()
    check(popen_wait(p, 30) == 3 and p.returncode == 3, "popen_wait returns the exit status of a child that exits")
    p = piped(["cat"])
    try:
        popen_wait(p, 1)
    except subprocess.TimeoutExpired as e:
        check(e.cmd == p.args and e.timeout == 1, "popen_wait raises TimeoutExpired for a child that runs on")
    else:
        fail("popen_wait returned while the child ran")
    check(p.returncode is None and os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None,
          "popen_wait leaves the child it timed out on running and unreaped")
    check(ended(p) == 0, "which the caller stops and reaps")


def main():
    with Harness("waits", users=False, open_bus=True) as h:
        never(h)
        file_in_new_directory(h)
        name_on_the_bus(h)
        process_wait(h)
        popen_waits(h)


if __name__ == "__main__":
    main()
