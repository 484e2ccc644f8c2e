#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The worst segments an attacker can craft against `callhome-audit verify`,
each timed against a normal log of the same size:

  normal      records of 200 payload bytes, a seal every 100, a checkpoint every 1000
  magic-tail  records, then a torn record and a record header every 8 bytes
              to the end (up to 16 MiB, the most a torn record can claim), each
              claiming to reach the end of the file (the torn-tail search CRCs what
              they claim: quadratic before it was capped)
  far-epoch   a log trimmed by retention whose records sit in the highest epoch
              the log's size lets a verifier derive the key of (one per 144 bytes),
              with valid chain and MACs: verify --key from the first key evolves the
              key that far, then checks every record

Each figure is the CPU time (user + system) of the best of --runs runs of
verify --key --threads=1, so a loaded machine does not skew the ratios.
Run by hand (not a meson test):
  /usr/bin/python3 bench/audit/bench-worstcase.py [--build=build] [--mib=16,64] [--runs=3]"""
import argparse
import os
import re
import resource
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RECORD = 360  # bytes of a far-epoch record: 72 header, align8(11 + 3 + 200), 72 trailer
MIN_RECORD = 144
TAIL_MAX = (16 << 20) - 64


def run(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def fresh(base, name, cli):
    d = os.path.join(base, name)
    out = subprocess.run([cli, "setup-keys", f"--dir={d}", "--origin=bench/audit"], check=True,
                         capture_output=True, text=True).stdout
    key = next(x.strip() for x in out.splitlines() if re.fullmatch(r"\s*[0-9a-f]{64}\s*", x))
    return d, key


def size_of(d):
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d) if n.endswith(".seg"))


def cpu_time(argv, runs):
    best = None
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = subprocess.run(argv, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = t if best is None else min(best, t)
    return best, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--mib", default="16,64")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    cli = os.path.join(a.build, "auditd", "callhome-audit")
    tool = os.path.join(a.build, "tests", "audit", "audit-testtool")
    base = tempfile.mkdtemp(prefix="audit-worstcase-", dir="/var/tmp")
    worst = 0.0
    try:
        print(f"{'MiB':>5} {'case':<11} {'bytes':>10} {'cpu s':>8} {'x normal':>9}  verdict")
        for mib in (int(x) for x in a.mib.split(",")):
            target = mib << 20
            d, key = fresh(base, f"normal-{mib}", cli)
            run([tool, "gen", d, str(target // 390), "200", "100", "1000", "1G"])
            size = size_of(d)
            cases = [("normal", d, key)]

            # A torn record can claim at most AUDIT_RECORD_MAX_SIZE (16 MiB and a little): only a tail
            # shorter than that is searched, so a larger segment starts with normal records.
            d, key = fresh(base, f"tail-{mib}", cli)
            run([tool, "gen", d, str(10 + max(0, size - TAIL_MAX) // 390), "200", "100", "1000", "1G"])
            run([tool, "craft", d, "magic-tail", str(size - size_of(d) - 8)])
            cases.append(("magic-tail", d, key))

            d, key = fresh(base, f"epoch-{mib}", cli)
            n = size // RECORD
            run([tool, "craft", d, "far-epoch", str(n * RECORD // MIN_RECORD), str(n), "mac"])
            cases.append(("far-epoch", d, key))

            normal = None
            for name, d, key in cases:
                t, r = cpu_time([cli, "verify", f"--dir={d}", f"--key={key}", "--threads=1", "--no-progress"], a.runs)
                verdict = (r.stdout.strip().splitlines() or [""])[0][:70]
                normal = t if normal is None else normal
                ratio = t / normal if normal else 0.0
                if name != "normal":
                    worst = max(worst, ratio)
                print(f"{mib:>5} {name:<11} {size_of(d):>10} {t:>8.3f} {ratio:>9.2f}  {verdict}", flush=True)
                shutil.rmtree(d)
        print(f"worst crafted / normal: {worst:.2f} (bound: 2)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if worst <= 2.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
