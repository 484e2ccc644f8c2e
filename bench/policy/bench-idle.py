#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What callhome costs while it has nothing to do: the goals of policyd's
benchmarks (issue 11) measured on every daemon.

  - private memory (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup):
    policyd at most 4 MiB;
  - zero wake-ups while idle between scheduled events: every process, every
    thread, no system call over an idle period.

Brings the whole system up on a private bus, as the daemons' own users
(tests/harness/system.py): the reference server, callhome-auditd (its default
epoch and checkpoint interval), callhome-collector (the simulator),
callhome-net-worker, callhome-policyd (default policy: remote services off,
so nothing is scheduled; --remote-services turns them on; --sysfs gives the
collector a sysfs counter tree instead of the simulator). Waits until
no daemon has switched context for --quiet seconds, then measures, over
--seconds each (default 60):

  1. wake-ups: context switches of every thread (/proc/PID/task/*/status);
  2. system calls entered by every thread, counted by the kernel
     (`perf stat -e raw_syscalls:sys_enter -p PID`: nothing is attached that
     would interrupt the daemon), over the same period;

and, for any daemon that made a call, which calls they were: `strace -f -c`
over a second period (strace's attach itself interrupts the call a thread
sleeps in, so its counts are not the figure).

Prints a table per daemon with the goal and the ratio measured/goal (for
wake-ups and system calls: the count itself, the goal being 0), and for each
process that woke, the system calls it made (strace's summary). A benchmark,
not a test: run it by hand, as root, on a quiet machine:

    meson compile -C build && /usr/bin/python3 bench/policy/bench-idle.py [--seconds 60]
    meson compile -C build bench-policy-idle       # the same, 60 s

Memory is read at the end of the period. The watchdog is off (no WATCHDOG_USEC), as between scheduled events it is the
only timer a unit adds; --watchdog USEC sets it to show what it costs.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "harness"))
from chtest import Harness  # noqa: E402
from system import System  # noqa: E402  (puts tests/net on the path too)
import net_common as nc  # noqa: E402

KIB_GOAL = {"policyd": 4 * 1024}  # issue 11: policyd's private memory


def threads(pid):
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return []


def switches(pid):
    """Context switches (voluntary + involuntary) of every thread of pid."""
    n = 0
    for tid in threads(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
        except FileNotFoundError:
            pass
    return n


def wait_quiet(procs, quiet, timeout):
    """Until no daemon has switched context for `quiet` seconds (or timeout: then say who did not)."""
    deadline = time.monotonic() + timeout
    last = {n: switches(p.pid) for n, p in procs.items()}
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = {n: switches(p.pid) for n, p in procs.items()}
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return []
    return [n for n in procs if switches(procs[n].pid) != last[n]] or ["(some daemon)"]


def perf_counts(procs, seconds):
    """{name: system calls entered} by every thread of each daemon over `seconds`, counted by the
    kernel's raw_syscalls:sys_enter tracepoint (perf stat): nothing stops or interrupts the daemon."""
    perfs = {n: subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(p.pid),
                                  "--", "sleep", str(seconds)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True) for n, p in procs.items()}
    out = {}
    for n, perf in perfs.items():
        _, err = perf.communicate(timeout=seconds + 60)
        m = re.search(r"^(\d+|<not counted>),[^,]*,raw_syscalls:sys_enter", err, re.M)
        if not m:
            sys.exit(f"bench-idle: perf stat on {n} said: {err.strip()}")
        # "<not counted>": the counter never ran, because no thread was ever on a CPU
        out[n] = 0 if m.group(1) == "<not counted>" else int(m.group(1))
    return out


def strace_summary(procs, seconds, tmp):
    """{name: strace -f -c summary} attached to each daemon for `seconds`: which calls they are.
    Attaching interrupts the call a thread sleeps in, and may make it run a call or two (an
    sd-event loop sees EINTR and comes round again): the count is perf's, the names strace's."""
    tracers = {}
    for name, p in procs.items():
        out = os.path.join(tmp, f"strace-{name}.txt")
        tracers[name] = (subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(p.pid)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out)
    time.sleep(seconds)  # the traced period itself: a benchmark, not a test
    result = {}
    for name, (t, out) in tracers.items():
        t.send_signal(signal.SIGINT)  # strace detaches and writes its summary
        _, err = t.communicate(timeout=30)
        result[name] = open(out).read() if os.path.exists(out) else err.decode()
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60, help="each idle period measured (default 60)")
    ap.add_argument("--quiet", type=float, default=5, help="seconds without a context switch before measuring")
    ap.add_argument("--watchdog", type=int, help="WATCHDOG_USEC for the daemons (default: none)")
    ap.add_argument("--remote-services", action="store_true",
                    help="turn remote services on first (default: the default policy, off)")
    ap.add_argument("--sysfs", action="store_true",
                    help="the collector reads a sysfs counter tree (tests/collector/sysfs-example), not the simulator")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-idle: run as root (the daemons start as root and drop to their users)")
    if a.watchdog:
        os.environ["WATCHDOG_USEC"] = str(a.watchdog)  # what systemd sets for WatchdogSec=; every daemon inherits it

    # The daemons' own default epochs and checkpoints (auditd: 15 min, 1 h), not the tests' short ones.
    with Harness("bench-policy-idle") as h, System(h, auditd_args=[], plant={} if a.sysfs else None) as s:
        procs = dict(s.procs)
        if a.remote_services:
            s.enable()  # check-ins, meter reads and supplies on their default schedules
        late = wait_quiet(procs, a.quiet, timeout=max(60, 2 * a.quiet))
        if late:
            print(f"# not quiet after 60 s: {', '.join(late)} (measuring anyway)")
        before = {n: switches(p.pid) for n, p in procs.items()}
        calls = perf_counts(procs, a.seconds)  # the idle period
        woke = {n: switches(p.pid) - before[n] for n, p in procs.items()}
        mem = {n: nc.smaps(p.pid) for n, p in procs.items()}
        nthreads = {n: len(threads(p.pid)) for n, p in procs.items()}
        busy = {n: p for n, p in procs.items() if calls[n] or woke[n]}
        traced = strace_summary(busy, a.seconds, h.tmp) if busy else {}

    print(f"idle for {a.seconds} s (system calls: perf stat -e raw_syscalls:sys_enter; wake-ups: context "
          f"switches of every thread); watchdog {'%d us' % a.watchdog if a.watchdog else 'off'}; remote services "
          f"{'on' if a.remote_services else 'off'}; collector source {'sysfs' if a.sysfs else 'sim'}")
    print(f"{'daemon':<11} {'threads':>7} {'private KiB':>11} {'(dirty)':>8} {'goal KiB':>8} {'ratio':>6}"
          f" {'wake-ups':>8} {'syscalls':>8} {'goal':>4}")
    for n in procs:
        private = mem[n].get("Private_Clean", 0) + mem[n].get("Private_Dirty", 0)
        goal = KIB_GOAL.get(n)
        print(f"{n:<11} {nthreads[n]:>7} {private:>11} {mem[n].get('Private_Dirty', 0):>8} "
              f"{goal if goal else '-':>8} {('%.2f' % (private / goal)) if goal else '-':>6} "
              f"{woke[n]:>8} {calls[n]:>8} {0:>4}")
    for n, text in traced.items():
        print(f"\n{n}: woke {woke[n]} times, {calls[n]} system calls in {a.seconds} s; "
              f"in the next {a.seconds} s (strace -f -c):\n{text.rstrip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
