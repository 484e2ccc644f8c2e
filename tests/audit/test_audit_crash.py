#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Crash safety of callhome-auditd.

  - The log cut at every byte offset inside its last record (one written but
    never synced, as a crash leaves it): the daemon starts, cuts the torn
    record, logs the recovery and writes a recovery record; `verify` exits 0;
    every record lying wholly before the cut is still there, unchanged. Cut at
    random offsets before it (records the log had synced are gone): refused
    as a cut log, nothing cut.
  - kill -9 during a burst of concurrent appends from several clients: every
    append that was acknowledged survives, with the hash it was acknowledged with.
"""
import json
import os
import random
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import cli, gen, records, setup_keys, start_daemon
from chtest import Harness, check, fail, skip_unless_root

skip_unless_root("the audit crash test")
rng = random.Random(int(os.environ.get("AUDIT_CRASH_SEED", "4242")))

CLIENT = r"""
import dbus, sys
bus = dbus.bus.BusConnection(sys.argv[1])
obj = bus.get_object("org.callhome.Audit1", "/org/callhome/Audit1")
audit = dbus.Interface(obj, "org.callhome.Audit1")
me = sys.argv[2]
i = 0
while True:
    txn = f"{me}-{i}"
    try:
        seq, h = audit.Append("meter-reads", "outbound", txn, dbus.ByteArray(b"x" * 300), {"client": me}, timeout=10)
    except Exception as e:
        print("ERR", type(e).__name__, flush=True)
        break
    print("ACK", int(seq), txn, bytes(h).hex(), flush=True)
    i += 1
"""

with Harness("audit-crash") as h:
    orig = os.path.join(h.tmp, "orig")
    key = setup_keys(orig)
    gen(orig, 150, 60, 0, 50, "1G")
    gen(orig, 1, 8, 0, 0, "1G", synced=False)  # a small last record, never synced: the one a crash may tear
    before = records(orig)
    last = before[-1]
    seg = last["segment"]
    segpath = os.path.join(orig, seg)
    segsize = os.path.getsize(segpath)
    first_off = before[0]["offset"] if before[0]["segment"] == seg else 0
    check(last["offset"] + last["record_size"] == segsize, "the last record ends the last segment")

    cuts = list(range(last["offset"] + 1, segsize))  # every offset inside the last record
    cuts += [rng.randrange(first_off, segsize) for _ in range(100)]
    work = os.path.join(h.tmp, "work")
    recovered = refused = 0
    for n, cut in enumerate(cuts):
        if os.path.exists(work):
            shutil.rmtree(work)
        shutil.copytree(orig, work)
        with open(os.path.join(work, seg), "r+b") as f:
            f.truncate(cut)
        p = start_daemon(h, work, name=f"auditd-cut-{n}")
        h.stop(p)
        h.procs.remove(p)
        out = p.output()
        if cut < last["offset"]:
            # Records the log had synced are gone: a cut, not a torn write. Refused, nothing cut.
            if "Appends refused: the log was cut" not in out or os.path.getsize(os.path.join(work, seg)) != cut:
                fail(f"cut at {cut} (before the last, unsynced record): not refused as a cut log:\n{out}")
            refused += 1
            continue
        kept = [r for r in before if r["segment"] != seg or r["offset"] + r["record_size"] <= cut]
        at_boundary = any(r["offset"] + r["record_size"] == cut for r in before) or cut == first_off
        if not at_boundary:
            if "Recovery: cut a torn record" not in out:
                fail(f"cut at {cut}: the daemon did not log the recovery:\n{out}")
            recovered += 1
        r = cli("verify", f"--dir={work}", f"--key={key}", "--no-progress")
        if r.returncode != 0:
            fail(f"cut at {cut}: verify after recovery exited {r.returncode}:\n{r.stdout}{r.stderr}\n{out}")
        after = records(work)
        for a, b in zip(kept, after):
            if a["seq"] != b["seq"] or a["hash"] != b["hash"]:
                fail(f"cut at {cut}: record {a['seq']} changed or lost after recovery")
        if len(after) < len(kept):
            fail(f"cut at {cut}: {len(kept)} records lay wholly before the cut, {len(after)} remain")
        if not at_boundary:
            at = len(kept) + (0 if kept else 1)  # a log cut inside its first record starts afresh
            rec = after[at]
            if rec["type"] != "audit.recovery":
                fail(f"cut at {cut}: no recovery record after the last good one: {rec}")
            info = json.loads(cli("export", f"--dir={work}", "--json").stdout.splitlines()[at])["payload"]
            info = json.loads(info)
            good_end = kept[-1]["offset"] + kept[-1]["record_size"] if kept else first_off
            if info["last_good_seq"] != (kept[-1]["seq"] if kept else 0) or info["dropped_bytes"] != cut - good_end:
                fail(f"cut at {cut}: recovery record says {info}")
    check(refused > 0, f"{len(cuts)} cuts ({segsize - last['offset'] - 1} inside the last record, 100 random in the last "
                       f"segment): {recovered} torn writes recovered and recorded (verify exits 0, every whole record "
                       f"kept), {refused} cuts into synced records refused with nothing cut")

    # A damaged record followed by good ones is tampering, not a torn write: never "recovered".
    shutil.rmtree(work)
    shutil.copytree(orig, work)
    mid = before[len(before) // 2]
    with open(os.path.join(work, mid["segment"]), "r+b") as f:
        f.seek(mid["offset"] + 80)
        b = f.read(1)[0]
        f.seek(mid["offset"] + 80)
        f.write(bytes([b ^ 0xFF]))
    size_before = os.path.getsize(os.path.join(work, mid["segment"]))
    p = start_daemon(h, work, name="auditd-damaged")
    r = h.busctl("callhome-policy", "call", "org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1",
                 "Append", "sssaya{ss}", "meter-reads", "outbound", "X-1", "1", "65", "0")
    check(r.returncode != 0 and "does not accept records" in r.stderr and f"seq {mid['seq']}" in r.stderr,
          f"a damaged record in the middle: Append refused (LogBroken) naming seq {mid['seq']}")
    h.stop(p)
    check("move it aside" in p.output(), "the daemon tells the operator what to do")
    check(os.path.getsize(os.path.join(work, mid["segment"])) == size_before, "... and cut nothing")

    # A record's size field enlarged in place (still in range, reaching past the end
    # of the segment) looks like a torn tail from that record on; the whole records
    # behind it say otherwise: refused, nothing cut, verify names that record.
    shutil.rmtree(work)
    shutil.copytree(orig, work)
    segp = os.path.join(work, mid["segment"])
    size_before = os.path.getsize(segp)
    grown = size_before - mid["offset"] + 8 * 64
    with open(segp, "r+b") as f:
        f.seek(mid["offset"] + 4)
        f.write(grown.to_bytes(4, "little"))
    p = start_daemon(h, work, name="auditd-size-field")
    r = h.busctl("callhome-policy", "call", "org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1",
                 "Append", "sssaya{ss}", "meter-reads", "outbound", "X-2", "1", "65", "0")
    h.stop(p)
    check(r.returncode != 0 and "does not accept records" in r.stderr and f"seq {mid['seq']}" in r.stderr,
          f"a size field enlarged in record {mid['seq']}: Append refused (LogBroken), not recovered")
    check("Recovery: cut" not in p.output() and os.path.getsize(segp) == size_before,
          "... and the daemon cut nothing")
    r = cli("verify", f"--dir={work}", "--no-progress")
    check(r.returncode == 1 and f"record seq {mid['seq']}" in r.stdout + r.stderr and "not a torn write" in r.stdout + r.stderr,
          f"verify exits 1 naming record {mid['seq']}, not a torn write: {(r.stdout + r.stderr).strip()[:200]}")

    # kill -9 during a burst of concurrent appends.
    shutil.rmtree(work)
    shutil.copytree(orig, work)
    p = start_daemon(h, work, name="auditd-burst")
    clients = [h.spawn(["/usr/bin/python3", "-c", CLIENT, h.address, f"c{i}"], user="callhome-policy", name=f"client{i}")
               for i in range(6)]
    # Kill in the middle of the burst: once every client has had appends acknowledged, while they go on
    # (a loaded machine starts them slowly).
    h.wait_for(lambda: all(c.output().count("ACK ") >= 10 for c in clients), "every client's first acknowledged appends",
               timeout=60)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    for c in clients:
        c.wait(timeout=30)
    acked = []
    for c in clients:
        for line in c.output().splitlines():
            if line.startswith("ACK "):
                _, seq, txn, hh = line.split()
                acked.append((int(seq), txn, hh))
    check(len(acked) > 50, f"{len(acked)} appends acknowledged by 6 concurrent clients before kill -9")
    p2 = start_daemon(h, work, name="auditd-after-kill")
    h.stop(p2)
    r = cli("verify", f"--dir={work}", f"--key={key}", "--no-progress")
    check(r.returncode == 0, f"verify after kill -9 and restart exits 0 ({r.stdout.strip().splitlines()[0]})")
    have = {rec["seq"]: rec for rec in records(work)}
    lost = [(s, t) for s, t, hh in acked if s not in have or have[s]["txn"] != t or have[s]["hash"] != hh]
    check(not lost, f"every acknowledged append survived kill -9 with its hash ({len(acked)} checked, lost: {lost[:5]})")
    pend = [rec for rec in records(work) if rec["direction"] == "outbound" and rec["txn"].startswith("c")]
    check(len(pend) >= len(acked), "the outbox after restart holds every acknowledged outbound transaction")
