#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Durable Append throughput over D-Bus with 1 and 8 concurrent clients (the
group-commit effect), and callhome-auditd's memory after 100,000 appends
(Pss / Private from /proc/PID/smaps_rollup), then after 50,000 more (not growing).
Run by hand as root: /usr/bin/python3 bench/audit/bench-append.py [SECONDS]"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "audit"))
from auditlib import setup_keys, start_daemon  # noqa: E402
from chtest import Harness  # noqa: E402

CLIENT = r"""
import dbus, sys, time
bus = dbus.bus.BusConnection(sys.argv[1])
a = dbus.Interface(bus.get_object("org.callhome.Audit1", "/org/callhome/Audit1"), "org.callhome.Audit1")
me, mode, arg = sys.argv[2], sys.argv[3], float(sys.argv[4])
payload = dbus.ByteArray(b"m" * 512)
n = 0
end = time.monotonic() + arg if mode == "time" else None
while (end and time.monotonic() < end) or (not end and n < arg):
    a.Append("meter-reads", "inbound", f"{me}-{n}", payload, {})
    n += 1
print(n, flush=True)
"""


def run_clients(h, k, mode, arg):
    procs = [h.spawn(["/usr/bin/python3", "-c", CLIENT, h.address, f"c{i}", mode, str(arg)],
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


secs = float(sys.argv[1]) if len(sys.argv) > 1 else 5
with Harness("bench-append") as h:
    d = os.path.join(h.tmp, "log")
    setup_keys(d)
    p = start_daemon(h, d, "--retention-size=0", "--segment-size=64M")
    rates = {}
    for k in (1, 8):
        n, dt = run_clients(h, k, "time", secs)
        rates[k] = n / dt
        print(f"{k} client(s): {n} durable appends in {dt:.1f}s = {rates[k]:.0f}/s")
    print(f"group commit: 8 clients reach {rates[8] / rates[1]:.1f}x the rate of one")
    done = sum(1 for _ in range(0))
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
