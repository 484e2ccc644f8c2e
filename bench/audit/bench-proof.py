#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""GetConsistencyProof over a large log: the first proof reads every leaf once
(what every proof cost before the block cache), later ones read the leaves
appended since and combine cached roots of 256-leaf blocks. Baseline: that
first, full read, in the same run. Run by hand as root:
    /usr/bin/python3 bench/audit/bench-proof.py [RECORDS]   (default 1,000,000)"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "audit"))
from auditlib import gen, setup_keys, start_daemon  # noqa: E402
from chtest import TEST_ADMIN, Harness  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
DEST = ["org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1"]

with Harness("bench-proof") as h:
    d = os.path.join(h.tmp, "log")
    setup_keys(d)
    t0 = time.monotonic()
    gen(d, N, 32, 10000, 0, "64M")
    print(f"log of {N} records generated in {time.monotonic() - t0:.1f}s")
    p = start_daemon(h, d, "--retention-size=0", "--segment-size=64M")

    def proof(a, b):
        t = time.monotonic()
        r = h.busctl(TEST_ADMIN, "call", *DEST, "GetConsistencyProof", "tt", str(a), str(b), timeout=600)
        if r.returncode != 0:
            sys.exit(f"GetConsistencyProof {a} {b}: {r.stderr}")
        return time.monotonic() - t

    def noop():
        t = time.monotonic()
        h.busctl(TEST_ADMIN, "get-property", *DEST, "PendingCount")
        return time.monotonic() - t

    base = min(noop() for _ in range(5))
    first = proof(N // 3, N)
    later = [proof(a, N) for a in (1, N // 2, N - 1000, N - 1)]
    h.busctl("callhome-policy", "call", *DEST, "Append", "sssaya{ss}", "x", "inbound", "", "1", "1", "0")
    after = proof(N // 3, N + 1)
    print(f"busctl round trip (a property Get):      {base * 1000:8.1f} ms")
    print(f"first proof (reads all {N} leaves):      {first * 1000:8.1f} ms   <- the cost of every proof without the cache")
    print(f"later proofs (cached blocks), worst:     {max(later) * 1000:8.1f} ms")
    print(f"a proof after one more append:           {after * 1000:8.1f} ms")
    print(f"speed-up of a later proof, net of the round trip: "
          f"{(first - base) / max(max(later) - base, 1e-4):.0f}x")
    h.stop(p)
