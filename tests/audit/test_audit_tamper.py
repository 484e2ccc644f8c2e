#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Tampering with a log of more than 1,000 records: every change is caught by
`callhome-audit verify` (exit 1) and the record at fault is named.

  - one byte flipped at 200+ random positions, a fresh copy each time
  - a record deleted; two records swapped
  - a record forged with a recomputed chain (and CRCs) but without the key:
    only the MAC catches it
  - the tail cut behind the last checkpoint: caught against that checkpoint
  - whole segments deleted, emptied or renamed; a seal's count or a record
    forged in a middle segment (chain recomputed within it, no key); a log cut
    by retention, with flips of its own

verify checks segments on several threads by default: every run here is made
three times, with the default, --threads=1 (the sequential scan) and
--threads=4, and the three must exit alike and print the very same lines (the
same violation: record, file, offset, reason). The logs hold more segments
than 4 threads keep in flight, so the parallel scan's slots are reused.
"""
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import CLI, TOOL, cli, crc32c, gen, records, run_cpu_limited, setup_keys
from chtest import Harness, check, fail

rng = random.Random(int(os.environ.get("AUDIT_TAMPER_SEED", "20240501")))


def verify_once(d, *extra):
    """Under a CPU-seconds limit (auditlib.run_cpu_limited): every run must do linear work."""
    return run_cpu_limited([CLI, "verify", f"--dir={d}", "--no-progress"] + list(extra))


compared = 0


def verify(d, *extra):
    """verify with the default threads, --threads=1 and --threads=4: all three must agree exactly."""
    global compared
    r = verify_once(d, *extra)
    for t in ("--threads=1", "--threads=4"):
        o = verify_once(d, *extra, t)
        if (o.returncode, o.stdout) != (r.returncode, r.stdout):
            fail(f"verify {' '.join(extra)} {t} differs from the default:\n"
                 f"default: exit {r.returncode}: {r.stdout}{r.stderr}\n{t}: exit {o.returncode}: {o.stdout}{o.stderr}")
    compared += 1
    return r


def named_seq(out):
    m = re.search(r"record seq (\d+) \(file (\S+), offset (\d+)\): (.*)", out)
    return (int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)) if m else None


with Harness("audit-tamper", bus=False) as h:
    orig = os.path.join(h.tmp, "orig")
    key = setup_keys(orig)
    gen(orig, 1000, 120, 150, 300, "24K")
    gen(orig, 5, 120, 0, 0, "24K")  # a few records after the last checkpoint
    recs = records(orig)
    check(len(recs) >= 1000, f"the log holds {len(recs)} records")
    check(verify(orig, f"--key={key}").returncode == 0, "the untouched log verifies (exit 0)")
    segs = sorted(f for f in os.listdir(orig) if f.endswith(".seg"))
    check(len(segs) > 8, f"the log has {len(segs)} segments: more than 4 threads keep in flight (8)")

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
    by_seq = {r["seq"]: r for r in recs}
    x = next(r for r in recs[600:] if r["kind"] == "data" and by_seq[r["seq"] + 1]["segment"] == r["segment"])
    y = by_seq[x["seq"] + 1]

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
    r = verify_once(orig, "--threads=0")
    check(r.returncode == 2, "--threads=0 is a usage error (exit 2)")

    # --- Whole segments: the parallel scan joins segments by their headers. ---
    first_of = {s: spans[s][0][2] for s in segs}
    mid = segs[len(segs) // 2]

    def expect(r, seq, seg, words, what):
        got = named_seq(r.stdout)
        check(r.returncode == 1 and got is not None and got[0] == seq and got[1] == seg and words in got[3],
              f"{what}: exit 1, names seq {seq} in {seg} ({r.stdout.strip()})")

    fresh()
    os.unlink(os.path.join(work, mid))
    nxt = segs[segs.index(mid) + 1]
    expect(verify(work, f"--key={key}"), first_of[mid], nxt, "segment starts at seq", f"segment {mid} deleted")

    fresh()
    os.truncate(os.path.join(work, mid), 0)
    expect(verify(work, f"--key={key}"), first_of[mid], mid, "empty segment file", f"segment {mid} emptied")

    fresh()
    wrong = "%016x.seg" % (first_of[mid] + 1)
    os.rename(os.path.join(work, mid), os.path.join(work, wrong))
    expect(verify(work, f"--key={key}"), first_of[mid], wrong, "its name says", f"segment {mid} renamed to {wrong}")

    fresh()
    os.unlink(os.path.join(work, segs[0]))
    expect(verify(work, f"--key={key}"), first_of[segs[1]], segs[1], "no retention record accounts",
           "the first segment deleted")

    # A record of a middle segment forged with its chain recomputed up to the end of
    # that segment: the next header no longer continues the chain (no key), the MAC
    # catches the record itself (key).
    fresh()
    target = next(r for r in recs if r["segment"] == mid and r["kind"] == "data")
    subprocess.run([TOOL, "forge", work, str(target["seq"])], check=True)
    expect(verify(work), first_of[nxt], nxt, "does not continue the chain", f"record {target['seq']} forged in {mid}")
    expect(verify(work, f"--key={key}"), target["seq"], mid, "MAC mismatch", f"... with the key, record {target['seq']}")

    # A header claiming a far-off epoch (its CRC made right): the join fails at that header,
    # and no thread spends minutes deriving that epoch's key first.
    fresh()
    p = os.path.join(work, mid)
    with open(p, "rb") as f:
        buf = bytearray(f.read())
    far = (1 << 26).to_bytes(8, "little")
    nf = int.from_bytes(buf[64:68], "little")
    end = 72 + 32 * nf
    buf[24:32] = far
    buf[end:end + 4] = crc32c(bytes(buf[:end])).to_bytes(4, "little")
    prev = bytes(buf[32:64])
    for a, b, _ in spans[mid]:  # the records too, chain and CRCs recomputed: only the key could tell
        buf[a + 48:a + 56] = far
        prev = hashlib.sha256(prev + bytes(buf[a:b - 72])).digest()
        buf[b - 72:b - 40] = prev
        buf[b - 4:b] = crc32c(bytes(buf[a:b - 4])).to_bytes(4, "little")
    with open(p, "wb") as f:
        f.write(buf)
    expect(verify(work, f"--key={key}"), first_of[mid], mid, "does not continue the chain",
           f"segment {mid}'s header claims epoch 2^26 (no run derives its key: each within the CPU limit)")

    # A seal whose epoch began in an earlier segment, its count changed (chain
    # recomputed): only the records of the segments before tell it is wrong.
    seals = [r for r in recs if r["kind"] == "seal"]
    prev_seal_seg = {}
    last = recs[0]
    for r in recs:
        if r["kind"] == "seal":
            prev_seal_seg[r["seq"]] = last["segment"]
            last = r
    cross = [r for r in seals if prev_seal_seg[r["seq"]] != r["segment"]]
    check(len(cross) >= 3, f"{len(cross)} seals count records of an epoch that began in an earlier segment")
    for sl in cross[:3]:
        fresh()
        subprocess.run([TOOL, "forge", work, str(sl["seq"]), "seal-count"], check=True)
        expect(verify(work), sl["seq"], sl["segment"], "seal of epoch", f"seal {sl['seq']} miscounts its epoch")

    # Without checkpoint.pub the checkpoint key comes from the start record (record 1, first segment),
    # and checkpoints in every later segment are checked with it.
    fresh()
    os.unlink(os.path.join(work, "checkpoint.pub"))
    r = verify(work, f"--key={key}")
    check(r.returncode == 0 and f"{len(recs)} records" in r.stdout and "checkpoint(s)" in r.stdout,
          f"no checkpoint.pub: the start record's key checks the checkpoints of all segments ({r.stdout.strip()})")
    other = os.path.join(h.tmp, "other")
    setup_keys(other, origin="other.callhome/audit")
    expect(verify(work, f"--checkpoint-key={os.path.join(other, 'checkpoint.pub')}"), 1, segs[0], "not the one given",
           "another log's checkpoint key given")
    fresh()
    os.unlink(os.path.join(work, "checkpoint.pub"))
    ck_rec = next(r for r in recs if r["kind"] == "checkpoint" and r["segment"] not in (segs[0], segs[-1]))
    subprocess.run([TOOL, "forge", work, str(ck_rec["seq"])], check=True)
    expect(verify(work), ck_rec["seq"], ck_rec["segment"], "checkpoint signature invalid",
           f"checkpoint {ck_rec['seq']} altered, checked with the start record's key")

    # --- A log cut by retention: it starts mid-log and mid-epoch, many seals per segment. ---
    ret = os.path.join(h.tmp, "retained")
    rkey = setup_keys(ret)
    gen(ret, 1500, 100, 20, 100, "16K", "160K")
    rsegs = sorted(f for f in os.listdir(ret) if f.endswith(".seg"))
    rrecs = records(ret)
    check(rsegs[0] != "0000000000000001.seg" and len(rsegs) > 8,
          f"retention removed the oldest segments: {len(rsegs)} kept from {rsegs[0]}")
    r = verify(ret, f"--key={rkey}")
    check(r.returncode == 0 and "retention record accounts" in r.stdout,
          f"the retained log verifies with the key, alike on 1, 4 and the default threads: {r.stdout.strip()}")
    rspans = {}
    for x in rrecs:
        rspans.setdefault(x["segment"], []).append((x["offset"], x["offset"] + x["record_size"], x["seq"]))
    rsizes = {s: os.path.getsize(os.path.join(ret, s)) for s in rsegs}
    rtotal = sum(rsizes.values())

    def rfresh():
        if os.path.exists(work):
            shutil.rmtree(work)
        shutil.copytree(ret, work)

    M = 60
    for i in range(M):
        rfresh()
        pos = rng.randrange(rtotal)
        for s in rsegs:
            if pos < rsizes[s]:
                break
            pos -= rsizes[s]
        with open(os.path.join(work, s), "r+b") as f:
            f.seek(pos)
            b = f.read(1)[0]
            f.seek(pos)
            f.write(bytes([b ^ (1 << rng.randrange(8))]))
        r = verify(work, f"--key={rkey}")
        got = named_seq(r.stdout)
        want = next((seq for a, b, seq in rspans[s] if a <= pos < b), rspans[s][0][2])
        if r.returncode != 1 or not got or got[0] != want or got[1] != s:
            fail(f"retained log, flip at {s}+{pos} (record {want}): verify named {got}:\n{r.stdout}")
    check(True, f"{M} flips in the retained log: exit 1 and the record at fault named, alike on all thread counts")

    rseals = [x for x in rrecs if x["kind"] == "seal"]
    rfirst = {s: rspans[s][0][2] for s in rsegs}
    # The first seal of the log as kept: its epoch began in a removed segment, so its count is not checked;
    # the forged count shows only later, where a checkpoint root or the next header no longer matches the chain.
    s0 = rseals[0]
    rfresh()
    subprocess.run([TOOL, "forge", work, str(s0["seq"]), "seal-count"], check=True)
    r = verify(work)
    got = named_seq(r.stdout)
    check(r.returncode == 1 and got and got[0] > s0["seq"] and "seal of epoch" not in got[3] and
          ("checkpoint root" in got[3] or "does not continue the chain" in got[3] or
           "witnessed checkpoint" in got[3]),
          f"first kept seal {s0['seq']} (epoch begun before retention) recounted: its count is not checked, "
          f"the recomputed chain is caught after it ({r.stdout.strip()})")
    # A seal in a later segment that is not the first seal of its segment (its epoch lies within the segment).
    inner = next(x for x in rseals[1:] if x["segment"] != s0["segment"] and
                 sum(1 for y in rseals if y["segment"] == x["segment"] and y["seq"] < x["seq"]) > 0)
    rfresh()
    subprocess.run([TOOL, "forge", work, str(inner["seq"]), "seal-count"], check=True)
    expect(verify(work), inner["seq"], inner["segment"], "seal of epoch", f"seal {inner['seq']} inside its segment recounted")
    # The first seal of a later segment (its epoch began in the segment before).
    firsts = [x for x in rseals if x["segment"] not in (s0["segment"], rsegs[0]) and
              x["seq"] == min(y["seq"] for y in rseals if y["segment"] == x["segment"])]
    fs = firsts[len(firsts) // 2]
    rfresh()
    subprocess.run([TOOL, "forge", work, str(fs["seq"]), "seal-count"], check=True)
    expect(verify(work), fs["seq"], fs["segment"], "seal of epoch", f"first seal {fs['seq']} of {fs['segment']} recounted")
    # The first kept segment deleted: the retention record no longer describes where the log starts.
    rfresh()
    os.unlink(os.path.join(work, rsegs[0]))
    expect(verify(work), rfirst[rsegs[1]], rsegs[1], "no retention record accounts", "the first kept segment deleted")

    check(compared >= N + M + 20, f"{compared} verifications ran alike with the default, 1 and 4 threads")
