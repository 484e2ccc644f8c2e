#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What callhome-auditd checks when it starts, and how it lives with limits.

A log cut while the daemon was stopped is not taken for a whole log: the
daemon's own traces (each segment's index says up to which record it synced,
and whether a later segment was started; the key file must have made the log's
last MAC) know of more than the cut files hold. Each case: Broken names the
cut, Append is refused, nothing is cut or moved on.
  - cut at a record boundary after a clean stop (records appended over the bus)
  - cut back to a seal, the key file matching that seal's epoch
  - the last segment removed, with or without its index file
  - the key file rolled back one epoch (records follow the seal) / from another log
  - a clean restart is accepted (Broken empty)
Under RLIMIT_FSIZE smaller than a segment (prlimit), appends go on in new
segments: the daemon is neither killed by SIGXFSZ nor stops; verify exits 0.
ListPendingPage pages the outbox with a cursor; a pending record damaged on
disk is listed as "unreadable" by ListPending and ListPendingPage, which do
not fail; a page stops before about 16 MiB of records."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import (DAEMON, Notify, audit_append, audit_call, audit_property, cli, gen, records, setup_keys,
                      start_daemon)
from chtest import Harness, check, fail, skip_unless_root

skip_unless_root("the audit start-up test")

# Appends three 6 MiB outbound records (dbus-python: too large for busctl's
# argument list), then prints: how many, and the length of each reply's list
# with its cursor (0: at the end).
BIG_PAGES = r"""
import dbus, sys
bus = dbus.bus.BusConnection(sys.argv[1])
audit = dbus.Interface(bus.get_object("org.callhome.Audit1", "/org/callhome/Audit1"), "org.callhome.Audit1")
for i in range(3):
    audit.Append("meter-reads", "outbound", f"BIG-{i}", dbus.ByteArray(b"b" * (6 << 20)), {}, timeout=60)
first, cursor = audit.ListPendingPage(dbus.UInt64(0), dbus.UInt32(1000), timeout=60)
big = [r for r in first if str(r[5]).startswith("BIG-")]
rest, end = audit.ListPendingPage(cursor, dbus.UInt32(1000), timeout=60)
whole = audit.ListPending(timeout=60)
print(3, int(len(big) == 2 and cursor == big[-1][0]), int(len(rest) == 1 and end == 0),
      int(str(rest[0][5]) == "BIG-2"), int([str(r[5]) for r in whole][-2:] == ["BIG-0", "BIG-1"]))
"""


def refused(h, d, name, what):
    """Starts the daemon on d; it must refuse the log naming `what`, and cut nothing."""
    sizes = {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".seg")}
    key_before = open(os.path.join(d, "seal.key"), "rb").read()
    p = start_daemon(h, d, "--epoch-length=1h", "--checkpoint-interval=1h", name=name)
    broken = audit_property(h, "Broken")
    r = audit_append(h, f"T-{name}")
    h.stop(p)
    check(broken and what in broken, f"{name}: Broken names it ({(broken or '')[:160]})")
    check(r.returncode != 0 and "does not accept records" in r.stderr, f"{name}: Append refused")
    after = {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".seg")}
    check(after == sizes and open(os.path.join(d, "seal.key"), "rb").read() == key_before,
          f"{name}: nothing cut, the key not moved on")


def accepted(h, d, name):
    p = start_daemon(h, d, "--epoch-length=1h", "--checkpoint-interval=1h", name=name)
    broken = audit_property(h, "Broken")
    h.stop(p)
    check(broken == "", f"{name}: accepted (Broken empty: {broken!r})")


def cut(d, rec):
    """The log cut right after record rec (a record boundary)."""
    with open(os.path.join(d, rec["segment"]), "r+b") as f:
        f.truncate(rec["offset"] + rec["record_size"])


with Harness("audit-startup") as h:
    # --- a cut at a record boundary, after the daemon stopped cleanly -------------
    d = os.path.join(h.tmp, "bus-log")
    key = setup_keys(d)
    p = start_daemon(h, d, "--epoch-length=1h", "--checkpoint-interval=1h", name="auditd-appends")
    for i in range(8):
        r = audit_append(h, f"B-{i}")
        if r.returncode != 0:
            fail(f"Append B-{i}: {r.stderr}")
    h.stop(p)
    accepted(h, d, "clean-restart")
    recs = records(d)
    cut(d, recs[-4])
    refused(h, d, "cut-at-boundary", f"the log now ends at seq {recs[-4]['seq']}")

    # --- cut back to a seal: the key file is at the epoch after it -----------------
    d = os.path.join(h.tmp, "seal-log")
    setup_keys(d)
    gen(d, 5, 100, 5)  # five records, then the seal of epoch 0
    gen(d, 3, 100)     # three records of epoch 1
    recs = records(d)
    seal = [x for x in recs if x["type"] == "audit.seal"][-1]
    cut(d, seal)
    r = cli("verify", f"--dir={d}", "--no-progress")
    check(r.returncode == 0, "cut back to the seal, the files alone verify (what the daemon must not be fooled by)")
    refused(h, d, "cut-to-seal", f"the log now ends at seq {seal['seq']}")

    # --- the last segment removed --------------------------------------------------
    d = os.path.join(h.tmp, "segs-log")
    setup_keys(d)
    gen(d, 60, 300, 0, 0, "4K")
    segs = sorted(f for f in os.listdir(d) if f.endswith(".seg"))
    check(len(segs) >= 3, f"{len(segs)} segments")
    aside = os.path.join(h.tmp, "segs-aside")
    shutil.copytree(d, aside)
    os.unlink(os.path.join(d, segs[-1]))
    refused(h, d, "segment-removed", f"{segs[-1][:16]}.idx is there but its segment is gone")
    os.unlink(os.path.join(d, segs[-1][:16] + ".idx"))
    refused(h, d, "segment-and-index-removed", f"a segment starting at seq {int(segs[-1][:16], 16)} followed it")

    # --- key files: rolled back, or another log's ----------------------------------
    d = os.path.join(h.tmp, "key-log")
    setup_keys(d)
    gen(d, 5, 100, 5)  # ... seal of epoch 0: the key file is at epoch 1
    old_key = open(os.path.join(d, "seal.key"), "rb").read()
    gen(d, 5, 100, 5)  # ... seal of epoch 1: the key file is at epoch 2
    gen(d, 2, 100)     # records of epoch 2
    good_key = open(os.path.join(d, "seal.key"), "rb").read()
    with open(os.path.join(d, "seal.key"), "wb") as f:
        f.write(old_key)
    refused(h, d, "key-rolled-back", "the key file was rolled back")
    other = os.path.join(h.tmp, "other-log")
    setup_keys(other)
    d2 = os.path.join(h.tmp, "key-log-2")
    setup_keys(d2)
    gen(d2, 3, 100)
    shutil.copy(os.path.join(other, "seal.key"), os.path.join(d2, "seal.key"))
    refused(h, d2, "key-of-another-log", "did not make the MAC of the log's last record")
    with open(os.path.join(d, "seal.key"), "wb") as f:
        f.write(good_key)
    accepted(h, d, "key-restored")

    # --- a file-size limit smaller than a segment ------------------------------------
    d = os.path.join(h.tmp, "fsize-log")
    key = setup_keys(d)
    n = Notify(h.tmp)
    p = h.spawn(["prlimit", "--fsize=32768", "--", DAEMON, f"--state-dir={d}", "--epoch-length=1h",
                 "--checkpoint-interval=1h"], env={"NOTIFY_SOCKET": n.path}, name="auditd-fsize")
    try:
        n.wait_ready(p)
    finally:
        n.close()
    for i in range(40):
        r = audit_append(h, f"F-{i}", payload=bytes(2000))
        if r.returncode != 0:
            fail(f"under RLIMIT_FSIZE=32K, Append F-{i} failed: {r.stderr}\n{p.output()}")
    check(p.alive(), "under RLIMIT_FSIZE=32K, 40 appends of 2000 bytes (80K) all acknowledged; the daemon lives")
    r = audit_append(h, "F-big", payload=bytes(40000))
    check(r.returncode != 0 and "file-size limit" in r.stderr and p.alive(),
          f"a record larger than the limit is refused with a clear error, the daemon lives ({r.stderr.strip()[:120]})")
    h.stop(p)
    segs = [f for f in os.listdir(d) if f.endswith(".seg")]
    check(len(segs) >= 3 and all(os.path.getsize(os.path.join(d, f)) <= 32768 for f in os.listdir(d)),
          f"{len(segs)} segments, no file over the limit")
    r = cli("verify", f"--dir={d}", f"--key={key}", "--no-progress")
    check(r.returncode == 0, f"verify exits 0: {r.stdout.strip().splitlines()[0]}")

    # --- ListPendingPage, and a damaged pending record ---------------------------------
    d = os.path.join(h.tmp, "pending-log")
    setup_keys(d)
    p = start_daemon(h, d, "--epoch-length=1h", "--checkpoint-interval=1h", name="auditd-pending")
    for i in range(25):
        r = audit_append(h, f"P-{i:02}", payload=f"payload {i}".encode())
        if r.returncode != 0:
            fail(f"Append P-{i}: {r.stderr}")
    pages, cursor, got = 0, 0, []
    while True:
        r = audit_call(h, "callhome-policy", "ListPendingPage", "tu", str(cursor), "10")
        if r.returncode != 0:
            fail(f"ListPendingPage({cursor}, 10): {r.stderr}")
        recs_, cursor = json.loads(r.stdout)["data"]
        got += [x[5] for x in recs_]
        pages += 1
        if cursor == 0 or pages > 10:
            break
    check(pages == 3 and got == [f"P-{i:02}" for i in range(25)],
          f"ListPendingPage by 10: {pages} pages, every pending transaction once, in order")
    r = audit_call(h, "callhome-policy", "ListPendingPage", "tu", "0", "0")
    check(r.returncode != 0 and "Page size" in r.stderr, "a page size of 0 is refused")

    victim = [x for x in records(d) if x["txn"] == "P-07"][0]
    with open(os.path.join(d, victim["segment"]), "r+b") as f:
        f.seek(victim["offset"] + victim["record_size"] - 80)
        b = f.read(1)[0]
        f.seek(victim["offset"] + victim["record_size"] - 80)
        f.write(bytes([b ^ 0xFF]))
    r = audit_call(h, "callhome-policy", "ListPending")
    check(r.returncode == 0, f"ListPending with a damaged pending record does not fail ({r.stderr.strip()[:120]})")
    lst = json.loads(r.stdout)["data"][0]
    bad = [x for x in lst if x[2] == "unreadable"]
    check(len(lst) == 25 and len(bad) == 1 and bad[0][0] == victim["seq"] and bad[0][5] == "P-07"
          and "error" in bad[0][6],
          f"... it lists all 25, record {victim['seq']} (P-07) as unreadable: {bad[0][6] if bad else None}")
    r = audit_call(h, "callhome-policy", "ListPendingPage", "tu", "0", "1000")
    check(r.returncode == 0 and [x[2] for x in json.loads(r.stdout)["data"][0]].count("unreadable") == 1,
          "... and so does ListPendingPage")

    # A page is bounded in bytes too (about 16 MiB of records, at least one).
    r = h.run(["/usr/bin/python3", "-c", BIG_PAGES, h.address], timeout=120)
    check(r.returncode == 0 and r.stdout.split() == ["3", "1", "1", "1", "1"],
          f"three pending records of 6 MiB: pages of 2 and 1 (16 MiB bound), ListPending stops at 2 too ({r.stdout.strip()} {r.stderr.strip()[-200:]})")
    h.stop(p)
