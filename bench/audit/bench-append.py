#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Durable Append throughput over D-Bus with 1 and 8 concurrent clients (the
group-commit effect), side by side with 8 clients against a daemon that syncs
every append on its own (--group-commit-max=1, the baseline); then
callhome-auditd's memory after 100,000 appends (Pss / Private from
/proc/PID/smaps_rollup), and after 50,000 more (not growing).
Run by hand as root: /usr/bin/python3 bench/audit/bench-append.py [SECONDS]"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "audit"))
from auditlib import setup_keys, start_daemon  # noqa: E402
from chtest import Harness  # noqa: E402

# A C client (bench-append-client.c): the figures are the daemon's and the disk's.
CLIENT = "bench/audit/bench-append-client"


def run_clients(h, k, mode, arg):
    procs = [h.spawn([h.exe(CLIENT)] + (["-n"] if mode == "count" else []) + [f"c{i}", str(arg)],
                     user="callhome-policy", name=f"bench-client-{k}-{i}") for i in range(k)]
    t0 = time.monotonic()
    for p in procs:
        p.wait(timeout=3600)
    dt = time.monotonic() - t0
    total = sum(int(p.output().split()[-1]) for p in procs)
    return total, dt


def smaps(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                out[k] = int(v.split()[0])
    return out


def raw_syncs(path, secs):
    """The disk's own rate of durable 700-byte appends (write + fdatasync), one writer, no D-Bus."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    n, end = 0, time.monotonic() + secs
    try:
        while time.monotonic() < end:
            os.write(fd, b"r" * 700)
            os.fdatasync(fd)
            n += 1
    finally:
        os.close(fd)
        os.unlink(path)
    return n / secs


secs = float(sys.argv[1]) if len(sys.argv) > 1 else 5
with Harness("bench-append") as h:
    disk = raw_syncs(os.path.join(h.tmp, "raw-syncs"), secs)
    print(f"baseline, the disk alone: {disk:.0f} write+fdatasync/s (one writer, no D-Bus)")
    d = os.path.join(h.tmp, "log")
    setup_keys(d)
    p = start_daemon(h, d, "--retention-size=0", "--segment-size=64M")
    rates = {}
    for k in (1, 8):
        n, dt = run_clients(h, k, "time", secs)
        rates[k] = n / dt
        print(f"{k} client(s): {n} durable appends in {dt:.1f}s = {rates[k]:.0f}/s")
    print(f"group commit: 8 clients reach {rates[8] / rates[1]:.1f}x the rate of one")
    h.stop(p)
    h.procs.remove(p)
    d1 = os.path.join(h.tmp, "log-sync-each")
    setup_keys(d1)
    p1 = start_daemon(h, d1, "--retention-size=0", "--segment-size=64M", "--group-commit-max=1", name="auditd-sync-each")
    n, dt = run_clients(h, 8, "time", secs)
    print(f"baseline, one fdatasync per append (--group-commit-max=1), 8 clients: {n} in {dt:.1f}s = {n / dt:.0f}/s; "
          f"group commit gives {rates[8] / (n / dt):.1f}x that")
    h.stop(p1)
    h.procs.remove(p1)
    p = start_daemon(h, d, "--retention-size=0", "--segment-size=64M", name="auditd-memory")
    n, dt = run_clients(h, 8, "count", 100000 // 8)
    m1 = smaps(p.pid)
    print(f"after 100,000 more appends: Pss {m1['Pss']} kB, Private_Dirty {m1['Private_Dirty']} kB, "
          f"Private_Clean {m1['Private_Clean']} kB, Rss {m1['Rss']} kB")
    run_clients(h, 8, "count", 50000 // 8)
    m2 = smaps(p.pid)
    print(f"after 50,000 more:          Pss {m2['Pss']} kB, Private_Dirty {m2['Private_Dirty']} kB, "
          f"Private_Clean {m2['Private_Clean']} kB, Rss {m2['Rss']} kB")
    priv = m1["Private_Dirty"] + m1["Private_Clean"]
    print(f"private memory {priv} kB ({'within' if priv <= 4096 else 'OVER'} the 4 MiB goal); "
          f"growth over 50,000 appends: {m2['Private_Dirty'] + m2['Private_Clean'] - priv} kB")
