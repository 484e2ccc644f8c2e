#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Tampering with a log of more than 1,000 records: every change is caught by
`callhome-audit verify` (exit 1) and the record at fault is named.

  - one byte flipped at 200+ random positions, a fresh copy each time
  - a record deleted; two records swapped
  - a record forged with a recomputed chain (and CRCs) but without the key:
    only the MAC catches it
  - the tail cut behind the last checkpoint: caught against that checkpoint
"""
import os
import random
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import CLI, TOOL, cli, gen, records, setup_keys
from chtest import Harness, check, fail

rng = random.Random(int(os.environ.get("AUDIT_TAMPER_SEED", "20240501")))


def verify(d, *extra):
    return subprocess.run([CLI, "verify", f"--dir={d}", "--no-progress"] + list(extra),
                          capture_output=True, text=True, timeout=60)


def named_seq(out):
    m = re.search(r"record seq (\d+) \(file (\S+), offset (\d+)\): (.*)", out)
    return (int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)) if m else None


with Harness("audit-tamper", bus=False) as h:
    orig = os.path.join(h.tmp, "orig")
    key = setup_keys(orig)
    gen(orig, 1000, 120, 150, 300, "96K")
    gen(orig, 5, 120, 0, 0, "96K")  # a few records after the last checkpoint
    recs = records(orig)
    check(len(recs) >= 1000, f"the log holds {len(recs)} records")
    check(verify(orig, f"--key={key}").returncode == 0, "the untouched log verifies (exit 0)")
    segs = sorted(f for f in os.listdir(orig) if f.endswith(".seg"))

    # Byte ranges: which record (or segment header, named by its first record) covers each byte.
    spans = {}
    for r in recs:
        spans.setdefault(r["segment"], []).append((r["offset"], r["offset"] + r["record_size"], r["seq"]))

    def owner(seg, pos):
        for a, b, seq in spans[seg]:
            if a <= pos < b:
                return seq
        return spans[seg][0][2]  # the header: named by the first record the segment should hold

    sizes = {s: os.path.getsize(os.path.join(orig, s)) for s in segs}
    total = sum(sizes.values())
    work = os.path.join(h.tmp, "work")
    caught = named = 0
    N = 200
    for i in range(N):
        if os.path.exists(work):
            shutil.rmtree(work)
        shutil.copytree(orig, work)
        pos = rng.randrange(total)
        for s in segs:
            if pos < sizes[s]:
                break
            pos -= sizes[s]
        path = os.path.join(work, s)
        with open(path, "r+b") as f:
            f.seek(pos)
            b = f.read(1)[0]
            f.seek(pos)
            f.write(bytes([b ^ (1 << rng.randrange(8))]))
        r = verify(work)  # without the key: CRC, chain and checkpoints alone catch a flip
        if r.returncode != 1:
            fail(f"flip at {s}+{pos}: verify exited {r.returncode}:\n{r.stdout}{r.stderr}")
        caught += 1
        got = named_seq(r.stdout)
        want = owner(s, pos)
        if not got or got[0] != want or got[1] != s:
            fail(f"flip at {s}+{pos} (record {want}): verify named {got}:\n{r.stdout}")
        named += 1
    check(caught == N, f"{N} single-byte flips at random positions: verify exits 1 every time")
    check(named == N, f"... and names the record holding the flipped byte, its file and offset each time")

    def fresh():
        if os.path.exists(work):
            shutil.rmtree(work)
        shutil.copytree(orig, work)

    def rewrite(seg, fn):
        p = os.path.join(work, seg)
        with open(p, "rb") as f:
            buf = bytearray(f.read())
        buf = fn(buf)
        with open(p, "wb") as f:
            f.write(buf)

    # A record deleted from the middle of a segment.
    fresh()
    victim = next(r for r in recs[500:] if r["kind"] == "data")
    a, b = victim["offset"], victim["offset"] + victim["record_size"]
    rewrite(victim["segment"], lambda buf: buf[:a] + buf[b:])
    r = verify(work, f"--key={key}")
    got = named_seq(r.stdout)
    check(r.returncode == 1 and got and got[0] == victim["seq"],
          f"record {victim['seq']} deleted: exit 1, names seq {victim['seq']} ({r.stdout.strip()})")

    # Two neighbouring records swapped.
    fresh()
    x = next(r for r in recs[600:] if r["kind"] == "data")
    y = next(r for r in recs if r["seq"] == x["seq"] + 1)
    assert x["segment"] == y["segment"] or True

    def swap(buf):
        xa, xb = x["offset"], x["offset"] + x["record_size"]
        yb = y["offset"] + y["record_size"]
        return buf[:xa] + buf[xb:yb] + buf[xa:xb] + buf[yb:]
    if x["segment"] == y["segment"]:
        rewrite(x["segment"], swap)
        r = verify(work, f"--key={key}")
        got = named_seq(r.stdout)
        check(r.returncode == 1 and got and got[0] == x["seq"],
              f"records {x['seq']} and {y['seq']} swapped: exit 1, names seq {x['seq']} ({r.stdout.strip()})")
    else:
        fail("chose a pair across segments; pick another")

    # A forged record: payload changed, chain hashes and CRCs recomputed, no key.
    fresh()
    last = recs[-1]
    check(last["kind"] == "data" and last["segment"] == segs[-1], "the last record is a data record after the last checkpoint")
    target = recs[-3]
    subprocess.run([TOOL, "forge", work, str(target["seq"])], check=True)
    r = verify(work)
    check(r.returncode == 0, "a forgery with a recomputed chain passes the chain and CRC checks alone (exit 0 without the key)")
    r = verify(work, f"--key={key}")
    got = named_seq(r.stdout)
    check(r.returncode == 1 and got and got[0] == target["seq"] and "MAC" in got[3],
          f"... and the MAC catches it with the key: names seq {target['seq']} ({r.stdout.strip()})")
    r = verify(work, "--key=" + ("00" * 32))
    check(r.returncode == 1, "a wrong verification key fails verification")

    # The tail cut behind the last checkpoint, verified against a copy of that checkpoint held elsewhere.
    fresh()
    ck = os.path.join(h.tmp, "witness.note")
    with open(ck, "w") as f:
        f.write(cli("checkpoint", f"--dir={orig}", check=0).stdout)
    ckpts = [r for r in recs if r["kind"] == "checkpoint"]
    lastck = ckpts[-1]
    size = lastck["seq"] - 1
    check(verify(orig, f"--checkpoint={ck}").returncode == 0, f"the whole log extends the saved checkpoint (size {size})")
    cut = next(r for r in recs if r["seq"] == size - 10)  # cut a few records behind the checkpoint
    for s in segs:
        if s > cut["segment"]:
            os.unlink(os.path.join(work, s))
    with open(os.path.join(work, cut["segment"]), "r+b") as f:
        f.truncate(cut["offset"])
    r = verify(work)
    check(r.returncode == 0, "the cut log is consistent in itself (a cut at a record boundary is invisible alone)")
    r = verify(work, f"--checkpoint={ck}")
    check(r.returncode == 1 and "truncated" in r.stdout,
          f"... but verify against the saved checkpoint exits 1: {r.stdout.strip()}")

    # A rewritten history, re-signed by whoever holds the device's keys, is a fork to the witness.
    fresh()
    r = verify(work, f"--checkpoint={ck}", "--checkpoint-key=" + "x+00000000+AAAA")
    check(r.returncode == 2, "a malformed checkpoint key is a usage error (exit 2)")
    r = verify(os.path.join(h.tmp, "nonexistent"))
    check(r.returncode == 2, "a missing log directory is an I/O error (exit 2)")
    r = subprocess.run([CLI, "verify", "--bogus"], capture_output=True, text=True)
    check(r.returncode == 2, "an unknown option is a usage error (exit 2)")
