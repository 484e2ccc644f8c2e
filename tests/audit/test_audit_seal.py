#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every epoch is sealed, even an empty one (journald's CVE-2023-31438 was an
unsealed empty epoch), and the key on the device moves on one way.

The daemon runs with a short --epoch-length and nothing is appended. Then:
the log is the start record followed only by seal records, one per epoch,
epochs 0, 1, 2, ... without a gap (also across a restart), each seal in the
epoch it ends and counting that epoch's records (0 for all but the first);
`verify --key` with the printed key exits 0 and a wrong key fails; seal.key
holds exactly K_e = HMAC(K_{e-1}, ...) for the current epoch, computed here
from the printed key, and neither the first key nor any older one is left in
any file of the state directory. A daemon restarted more often than its epoch
length still seals when the epoch open in the log is due, so its key moves on,
and still writes a checkpoint when the last one is an interval old.

Nothing here waits a fixed time or asserts one: each run lasts until the
records it must write are there (the Head property's sequence number, read
from the daemon), and the checks count records."""
import hmac
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import cli, setup_keys, start_daemon
from chtest import Harness, check, fail, skip_unless_root

skip_unless_root("the audit seal test")
EPOCH_MS = 200
DEST = ["org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1"]


def export(d):
    r = cli("export", f"--dir={d}", "--json", check=0)
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def head_seq(h):
    """The sequence number of the last record, from the daemon's Head property (0 if it cannot be read)."""
    r = h.busctl("callhome-policy", "--json=short", "get-property", *DEST, "Head")
    return json.loads(r.stdout)["data"][0] if r.returncode == 0 else 0


def run_until(h, p, what, records):
    """Runs the daemon until it has written `records` more records (the event), then stops it."""
    start = head_seq(h)
    h.wait_for(lambda: head_seq(h) >= start + records or not p.alive(), what, timeout=60)
    check(p.alive(), f"{what}: the daemon ran until then")
    h.stop(p)


def run_idle(h, d, seals, name):
    p = start_daemon(h, d, f"--epoch-length={EPOCH_MS}ms", name=name)
    run_until(h, p, f"{name}: {seals} seal records with nothing appended", seals)


def check_seals(recs, first_epoch, what):
    seals = [r for r in recs if r["type"] == "audit.seal"]
    others = [r["type"] for r in recs if r["type"] != "audit.seal"]
    check(not others, f"{what}: nothing but seal records was written ({others[:3]})")
    check([r["seq"] for r in recs] == list(range(recs[0]["seq"], recs[0]["seq"] + len(recs))),
          f"{what}: the seal records are consecutive records (seq {recs[0]['seq']}..{recs[-1]['seq']})")
    body = [json.loads(r["payload"]) for r in seals]
    epochs = [b["epoch"] for b in body]
    check(epochs == list(range(first_epoch, first_epoch + len(seals))),
          f"{what}: {len(seals)} seals of epochs {epochs[0]}..{epochs[-1]}, increasing by one")
    check(all(r["epoch"] == b["epoch"] for r, b in zip(seals, body)), f"{what}: each seal is a record of the epoch it ends")
    return body


with Harness("audit-seal") as h:
    d = os.path.join(h.tmp, "log")
    key = setup_keys(d)
    k0 = bytes.fromhex(key)

    run_idle(h, d, 5, "auditd-idle")
    recs = export(d)
    check(recs[0]["seq"] == 1 and recs[0]["type"] == "audit.start" and recs[0]["epoch"] == 0,
          "the log starts with its start record, in epoch 0")
    body = check_seals(recs[1:], 0, "first run")
    n1 = len(body)
    check(n1 >= 5, f"the daemon sealed {n1} epochs, at least the 5 it was run for")
    check(body[0]["records"] == 1 and all(b["records"] == 0 for b in body[1:]),
          f"the first seal counts the start record, the other {n1 - 1} epochs were empty and still sealed")

    # A restart continues the epochs where they were.
    run_idle(h, d, 3, "auditd-idle-2")
    recs = export(d)
    body = check_seals(recs[1:], 0, "after a restart")
    check(len(body) >= n1 + 3 and all(b["records"] == 0 for b in body[1:]),
          f"after a restart, sealing goes on from epoch {n1} ({len(body) - n1} more empty epochs sealed)")
    n = len(body)

    r = cli("verify", f"--dir={d}", f"--key={key}", "--no-progress")
    check(r.returncode == 0 and f"{n} seal(s)" in r.stdout,
          f"verify --key with the printed key exits 0: {r.stdout.strip().splitlines()[0] if r.stdout else r.stderr}")
    wrong = bytes([k0[0] ^ 0x80]) + k0[1:]
    r = cli("verify", f"--dir={d}", f"--key={wrong.hex()}", "--no-progress")
    check(r.returncode == 1, "verify with a different key exits 1 (the seals' MACs are checked with the key)")

    # The key on the device: exactly the current epoch's, none before it.
    keys = [k0]
    for _ in range(n):
        keys.append(hmac.new(keys[-1], b"callhome-audit evolve", "sha256").digest())
    with open(os.path.join(d, "seal.key"), "rb") as f:
        kf = f.read()
    check(kf[:8] == b"CHSEALK1" and struct.unpack_from("<Q", kf, 8)[0] == n and kf[16:48] == keys[n],
          f"seal.key holds epoch {n} and K_{n} = HMAC-SHA256(K_{n - 1}, 'callhome-audit evolve'), derived here from the printed key")
    check(kf[16:48] != k0, "the key file has evolved: it differs from the first key")
    for name in os.listdir(d):
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        for e, k in enumerate(keys[:n]):
            if k in data or k.hex().encode() in data:
                fail(f"the key of sealed epoch {e} is still in {name}")
    check(True, f"neither the first key nor any of the {n - 1} later sealed epochs' keys is left in the state directory")

    # Restarts: the first seal after a start is due when the epoch open in the
    # log is that old, so epochs still end. Each run lasts until its seal.
    d2 = os.path.join(h.tmp, "log-restarts")
    key2 = setup_keys(d2)
    for i in range(4):
        p = start_daemon(h, d2, "--epoch-length=1500ms", name=f"auditd-restart-{i}")
        run_until(h, p, f"run {i}: a seal", 1)
    seals = [r for r in export(d2) if r["type"] == "audit.seal"]
    check(len(seals) >= 4 and [json.loads(r["payload"])["epoch"] for r in seals] == list(range(len(seals))),
          f"four runs, each until its seal: {len(seals)} seals of consecutive epochs")
    r = cli("verify", f"--dir={d2}", f"--key={key2}", "--no-progress")
    check(r.returncode == 0, f"... and verify --key exits 0: {r.stdout.strip().splitlines()[0] if r.stdout else r.stderr}")

    # The same for checkpoints: once the log has one, the next is due a
    # --checkpoint-interval after it, whatever the restarts in between.
    d3 = os.path.join(h.tmp, "log-checkpoints")
    setup_keys(d3)
    p = start_daemon(h, d3, "--epoch-length=1h", name="auditd-first-checkpoint")
    r = h.busctl("callhome-policy", "call", "org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1",
                 "GetCheckpoint")
    check(r.returncode == 0, "a first checkpoint on request")
    h.stop(p)
    for i in range(4):
        p = start_daemon(h, d3, "--epoch-length=1h", "--checkpoint-interval=1500ms", name=f"auditd-ckpt-{i}")
        r = h.busctl("callhome-policy", "call", "org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1",
                     "Append", "sssaya{ss}", "meter-reads", "inbound", f"T-{i}", "1", "65", "0")
        check(r.returncode == 0, f"run {i}: an append ({r.stderr.strip()})")
        run_until(h, p, f"run {i}: a timed checkpoint after the append", 1)
    recs = export(d3)
    ckpts = [r for r in recs if r["type"] == "audit.checkpoint"]
    check(len(ckpts) == 5 and all(recs[recs.index(c) - 1]["type"] == "meter-reads" for c in ckpts[1:]),
          f"four runs, each until its checkpoint: {len(ckpts) - 1} timed checkpoints after the first, each "
          "covering that run's append")
