#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Retention on the daemon: only what an outside witness covers goes (a checkpoint the server
cosigned, handed over by policyd; or the customer's acknowledgement), never a pending outbound
record; a log no witness covers stops taking transactions at twice --retention-size; a log whose
start was moved by someone holding the device's keys is refused, not served."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import TOOL, Cosigner, ack_tag, ay, cli, mth, parse_note, records, setup_keys, start_daemon  # noqa: E402
from chtest import TEST_ADMIN, Harness, check, skip_unless_root  # noqa: E402

skip_unless_root("the audit retention test")
DEST = ["org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1"]
ORIGIN = "test.callhome/audit"


def call(h, user, member, *args):
    return h.busctl(user, "--json=short", "call", *DEST, member, *args)


def append(h, txn, direction="internal", size=1000):
    payload = bytes(size)
    return call(h, "callhome-policy", "Append", "sssaya{ss}", "meter-reads", direction, txn, *ay(payload), "0")


def pending(h):
    return [x[5] for x in json.loads(call(h, "callhome-policy", "ListPending").stdout)["data"][0]]


def acknowledge(h, d, key, user=TEST_ADMIN, tag=None):
    leaves = [bytes.fromhex(x["hash"]) for x in records(d)]
    n, root = len(leaves), mth(leaves)
    return call(h, user, "Acknowledge", "tayay", str(n), *ay(root), *ay(tag or ack_tag(key, ORIGIN, n, root)))


def segments(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".seg"))


with Harness("audit-retention") as h:
    witness, stranger = Cosigner(), Cosigner()
    wkey = os.path.join(h.tmp, "witness.pub")
    with open(wkey, "w") as f:
        f.write(witness.vkey + "\n")
    opts = ["--epoch-length=1h", "--checkpoint-interval=1h", "--segment-size=8K", "--retention-size=32K",
            f"--witness-key={wkey}"]

    # --- A pending outbound record in the oldest segment survives retention and a restart. ---
    d = os.path.join(h.tmp, "log")
    key = setup_keys(d, ORIGIN)
    p = start_daemon(h, d, *opts)
    check(append(h, "SN-PENDING-1", direction="outbound").returncode == 0, "an outbound transaction is recorded")
    for i in range(40):
        append(h, f"A-{i}")
    check(segments(d)[0] == "0000000000000001.seg", "without a witness, nothing is removed past --retention-size")
    r_ack = acknowledge(h, d, key)
    for i in range(40):
        append(h, f"B-{i}")
    h.stop(p)
    p = start_daemon(h, d, *opts)
    check(pending(h) == ["SN-PENDING-1"], "after many appends and a restart the pending record is still listed")
    check(segments(d)[0] == "0000000000000001.seg", "... and its segment is still there: a pending record pins it")
    check(r_ack.returncode == 0, f"the customer acknowledged the log ({r_ack.stderr.strip()})")

    # Delivered, and acknowledged again: retention removes what the acknowledgement covers.
    check(call(h, "callhome-policy", "MarkDelivered", "sa{ss}", "SN-PENDING-1", "0").returncode == 0, "delivered")
    # This time with `callhome-audit acknowledge`, which verifies the log with the key and prints the arguments.
    ck = json.loads(call(h, TEST_ADMIN, "GetCheckpoint").stdout)["data"][0]
    ck_file = os.path.join(h.tmp, "ack.note")
    with open(ck_file, "w") as f:
        f.write(ck)
    args = cli("acknowledge", f"--dir={d}", f"--key={key}", f"--witness-checkpoint={ck_file}", check=0).stdout.split()
    _, ck_size, ck_root, _, _ = parse_note(ck)
    check(args == [str(ck_size)] + ay(ck_root) +
          ay(ack_tag(key, ORIGIN, ck_size, ck_root)), "callhome-audit acknowledge prints size, root and the tag as defined")
    r = call(h, TEST_ADMIN, "Acknowledge", "tayay", *args)
    check(r.returncode == 0, f"acknowledged again ({r.stderr.strip()})")
    check(segments(d)[0] != "0000000000000001.seg", f"then retention removes the oldest segments ({segments(d)[0]})")
    r = cli("verify", f"--dir={d}", f"--key={key}", "--no-progress")
    check(r.returncode == 0 and "acknowledgement" in r.stdout, f"verify --key accepts it ({r.stdout.strip()})")

    # Who may hand over what.
    r = acknowledge(h, d, key, user="callhome-policy")
    check(r.returncode != 0 and ("AccessDenied" in r.stderr or "Access denied" in r.stderr or "not permitted" in r.stderr),
          "policyd cannot acknowledge for the customer")
    leaves = [bytes.fromhex(x["hash"]) for x in records(d)]
    r = call(h, TEST_ADMIN, "Acknowledge", "tayay", str(len(leaves)), *ay(bytes(32)), *ay(bytes(32)))
    check(r.returncode != 0 and "not one this log extends" in r.stderr, "an acknowledgement of another root is refused")

    # --- A checkpoint the server cosigned, handed over by policyd. ---
    early = call(h, TEST_ADMIN, "GetCheckpoint")
    early_note = json.loads(early.stdout)["data"][0]
    _, early_size, _, _, _ = parse_note(early_note)
    early_file = os.path.join(h.tmp, "early.note")
    with open(early_file, "w") as f:
        f.write(witness.cosign(early_note))
    r = call(h, "callhome-policy", "AddCosignedCheckpoint", "s", stranger.cosign(early_note))
    check(r.returncode != 0 and "cosignature" in r.stderr, "a cosignature by another witness is refused")
    r = call(h, TEST_ADMIN, "AddCosignedCheckpoint", "s", witness.cosign(early_note))
    check(r.returncode != 0, "the customer's admins cannot hand over cosignatures")
    r = call(h, "callhome-policy", "AddCosignedCheckpoint", "s", witness.cosign(early_note))
    check(r.returncode == 0, f"policyd hands over the cosigned checkpoint of size {early_size} ({r.stderr.strip()})")
    for i in range(60):
        append(h, f"C-{i}")
    h.stop(p)
    p = start_daemon(h, d, *opts)
    note = json.loads(call(h, TEST_ADMIN, "GetCheckpoint").stdout)["data"][0]
    h.stop(p)
    p = start_daemon(h, d, *opts, "--checkpoint-interval=100ms")
    h.wait_for(lambda: json.loads(call(h, TEST_ADMIN, "GetCheckpoint").stdout)["data"][0] != note, "a new checkpoint")
    note = json.loads(call(h, TEST_ADMIN, "GetCheckpoint").stdout)["data"][0]
    _, size, _, _, _ = parse_note(note)
    r = call(h, "callhome-policy", "AddCosignedCheckpoint", "s", witness.cosign(note))
    check(r.returncode == 0, f"... and a later one of size {size}")
    h.stop(p)
    first = int(segments(d)[0][:16], 16)
    check(first > early_size + 1, f"retention moved the start (seq {first}) past the early checkpoint ({early_size})")
    r = cli("verify", f"--dir={d}", "--no-progress", f"--witness-checkpoint={early_file}", f"--witness-key={wkey}")
    check(r.returncode == 0 and "cosignature" in r.stdout and "cosigned 2026-01-01" in r.stdout,
          f"verify: the log extends the early cosigned checkpoint, as the later one vouches ({r.stdout.strip()})")
    r = cli("verify", f"--dir={d}", "--no-progress", f"--witness-checkpoint={early_file}")
    check(r.returncode == 1 and "not comparable" not in r.stdout,
          f"without the witness key that cannot be shown: exit 1 ({r.stdout.strip()[:200]})")
    r = cli("verify", f"--dir={d}", "--no-progress", f"--key={key}")
    check(r.returncode == 1 and "--witness-key" in r.stdout,
          f"the customer's key alone cannot check a cosignature: exit 1 ({r.stdout.strip()[:200]})")

    # --- The start moved by someone holding the device's keys: the daemon refuses to serve it. ---
    fake = os.path.join(h.tmp, "faked")
    shutil.copytree(d, fake)
    subprocess.run([TOOL, "cut-start", fake, "1", "none"], check=True, capture_output=True)
    p = start_daemon(h, fake, *opts)
    broken = json.loads(h.busctl(TEST_ADMIN, "--json=short", "get-property", *DEST, "Broken").stdout)["data"]
    check("no witness record covers" in broken, f"the daemon reports the log broken ({broken[:160]})")
    r = call(h, TEST_ADMIN, "GetConsistencyProof", "tt", "1", "2")
    check(r.returncode != 0 and ("LogBroken" in r.stderr or "not usable" in r.stderr),
          f"... and serves no consistency proof from it ({r.stderr.strip()[:120]})")
    h.stop(p)

    # --- No witness at all: past --retention-size the log grows, at twice it refuses transactions. ---
    full = os.path.join(h.tmp, "full")
    fkey = setup_keys(full, ORIGIN)
    p = start_daemon(h, full, *opts)
    check(append(h, "SN-F-1", direction="outbound").returncode == 0, "an outbound transaction before the log fills")
    refused = None
    for i in range(200):
        r = append(h, f"F-{i}")
        if r.returncode != 0:
            refused = r
            break
    total = sum(os.path.getsize(os.path.join(full, s)) for s in segments(full))
    check(refused is not None and "log is full" in refused.stderr and total >= 64 * 1024,
          f"at twice --retention-size ({total} bytes) appends are refused with LogFull, nothing removed")
    check(segments(full)[0] == "0000000000000001.seg", "... and nothing was removed")
    r = call(h, "callhome-policy", "MarkDelivered", "sa{ss}", "SN-F-1", "0")
    check(r.returncode == 0, "a delivery is still recorded")
    r = acknowledge(h, full, fkey)
    check(r.returncode == 0, f"the customer acknowledges ({r.stderr.strip()})")
    check(append(h, "F-after").returncode == 0, "... and appends go in again")
    check(segments(full)[0] != "0000000000000001.seg", "... as retention removed what the acknowledgement covers")
    h.stop(p)
    r = cli("verify", f"--dir={full}", f"--key={fkey}", "--no-progress")
    check(r.returncode == 0, f"the log verifies ({r.stdout.strip()[:200]})")
