#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Collector benchmarks on a 200-counter tree (root; uses the test harness).

  1. Snapshot latency over D-Bus: GetSnapshot() vs. a bare property Get as
     the baseline round trip (bench-snapshot).
  2. CPU instructions (callgrind) per snapshot, in process with the daemon's
     own code (bench-read: read + parse + judge + serialize into a D-Bus
     message), against the simplest possible reader of the same files (open,
     read, close; no checks, no parsing, no message) as the baseline. (The
     daemon itself cannot run under valgrind: its confinement refuses to.)
  3. Private memory of the daemon (Private_Clean + Private_Dirty of
     /proc/PID/smaps_rollup) after start, after 100 and after 10,000
     snapshots. Budget: at most 2 MiB, no growth; the exit status is 1 if
     it is not met (after all figures are printed).

  meson compile -C build && sudo /usr/bin/python3 bench/collector/run-bench.py [BUILD_DIR]
  (or: meson compile -C build bench-collector)
"""
import os
import pwd
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
if len(sys.argv) > 1:
    os.environ["CALLHOME_BUILD_ROOT"] = os.path.abspath(sys.argv[1])
os.environ.setdefault("CALLHOME_SOURCE_ROOT", SRC)
sys.path.insert(0, os.path.join(SRC, "tests", "harness"))
from chtest import Harness, skip_unless_root  # noqa: E402

skip_unless_root("the collector benchmark")
NAME = "org.callhome.Collector1"
MEMORY_BUDGET = 2 * 1024 * 1024
COUNTERS = 200


def private_bytes(pid):
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                fields[k] = int(v.split()[0]) * 1024
    return fields["Private_Clean"] + fields["Private_Dirty"], fields["Rss"], fields.get("Pss", 0)


def callgrind_total(out):
    m = re.search(r"Collected : (\d+)", out)
    return int(m.group(1)) if m else None


def snapshots(h, n):
    r = h.run([h.exe("bench/collector/bench-snapshot"), str(n)], user="callhome-policy", timeout=600)
    if r.returncode != 0:
        sys.exit(f"bench-snapshot failed: {r.stderr}")
    return r.stdout


with Harness("bench-collector") as h:
    tree = os.path.join(h.tmp, "tree")
    subprocess.run([sys.executable, os.path.join(HERE, "make-tree.py"), tree, str(COUNTERS)], check=True)
    # Counted, not assumed: the per-file figure divides by what the tree really holds.
    value_files = sum(len(f) for _, _, f in os.walk(tree))
    print(f"== tree: {COUNTERS} billing counters + 1 marker + 4 supplies ({value_files} value files)")

    # --- 1 + 3: latency and memory of the real, confined daemon ----------------------
    d = h.spawn([h.exe("collector/callhome-collector"), f"--source=sysfs:{tree}",
                 f"--state-dir={os.path.join(h.tmp, 'state')}"], name="collector")
    h.wait_for_name(NAME, d)
    p0 = private_bytes(d.pid)
    snapshots(h, 100)
    p1 = private_bytes(d.pid)
    out = snapshots(h, 10000)
    p2 = private_bytes(d.pid)
    print("== latency over D-Bus (10,000 calls each; client as callhome-policy)")
    print(out.rstrip())
    print("== private memory of callhome-collector (Private_Clean + Private_Dirty; Rss; Pss)")
    for label, (priv, rss, pss) in (("after start", p0), ("after 100 snapshots", p1),
                                    ("after 10,100 snapshots", p2)):
        print(f"  {label:24s} private={priv / 1024:7.0f} KiB  rss={rss / 1024:7.0f} KiB  pss={pss / 1024:7.0f} KiB")
    growth = p2[0] - p1[0]
    memory_ok = p2[0] <= MEMORY_BUDGET and growth <= 0
    print(f"  budget {MEMORY_BUDGET // 1024} KiB: used {p2[0] / MEMORY_BUDGET:.0%} of it; "
          f"growth over 10,000 snapshots: {growth / 1024:+.0f} KiB -> {'PASS' if memory_ok else 'FAIL'}")
    h.stop(d)

    # --- 2: instructions -------------------------------------------------------------
    if shutil.which("valgrind"):
        print("== instructions (callgrind)")
        counts = {}
        for n in (1, 101):
            r = h.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                       h.exe("bench/collector/bench-read"), tree, str(n)], timeout=600)
            b = h.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                       h.exe("bench/collector/bench-read"), "--baseline", tree, str(n)], timeout=600)
            counts[n] = (callgrind_total(r.stderr), callgrind_total(b.stderr))
        per = (counts[101][0] - counts[1][0]) / 100
        base = (counts[101][1] - counts[1][1]) / 100
        print(f"  in-process snapshot (read + parse + judge + serialize): {per:,.0f} Ir "
              f"({per / value_files:,.0f} per value file, {value_files} files)")
        print(f"  baseline naive reader (open/read/close, no checks): {base:,.0f} Ir; ratio {per / base:.2f}")

if not memory_ok:
    sys.exit("collector benchmark: private memory over budget or growing")
