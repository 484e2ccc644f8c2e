#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""callhome-auditd on the private bus, as its own user, with the project's bus
policy: who may append and read; the outbox; records, filters, the head and its
signals; checkpoints and consistency proofs checked against an independent
RFC 9162 implementation; the daemon's own caller check on a bus that allows all;
retention that leaves the log verifiable."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import (ack_tag, ay, cli, gen, consistency_proof, mth, parse_note, records, setup_keys, start_daemon,
                      verify_consistency)
from chtest import TEST_ADMIN, TEST_OTHER, Harness, check, gid_of, proc_status, skip_unless_root, uid_of

skip_unless_root("the audit bus test")
DEST = ["org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1"]


def call(h, user, member, *args):
    return h.busctl(user, "--json=short", "call", *DEST, member, *args)


def append(h, user, txn, direction="outbound", payload=b"hello", typ="meter-reads"):
    return call(h, user, "Append", "sssaya{ss}", typ, direction, txn, str(len(payload)),
                *[str(b) for b in payload], "1", "attempt", "1")


def denied(r):
    return r.returncode != 0 and ("Access denied" in r.stderr or "AccessDenied" in r.stderr or
                                  "not permitted" in r.stderr)


def data(r):
    return json.loads(r.stdout)["data"]


with Harness("audit-bus") as h:
    d = os.path.join(h.tmp, "log")
    key = setup_keys(d)
    mon = h.spawn(["busctl", f"--address={h.address}", "monitor", "--json=short",
                   "--match=type='signal',sender='org.callhome.Audit1'"], name="monitor")
    p = start_daemon(h, d, "--checkpoint-interval=1h", "--epoch-length=1h", "--segment-size=8K",
                     "--retention-size=40K")
    h.check_interface_contract("org.callhome.Audit1")
    st = proc_status(p.pid)
    check(st["Uid"].split()[0] == str(uid_of("callhome-audit")), "the daemon runs as callhome-audit")
    check(st["CapEff"] == "0000000000000000" and st["NoNewPrivs"] == "1" and st["Seccomp"] == "2",
          "... with no capabilities, no_new_privs and its seccomp filter")

    r = append(h, "callhome-policy", "SN1-1")
    check(r.returncode == 0, f"policyd's user appends ({r.stderr.strip()})")
    seq1, hash1 = data(r)
    check(seq1 == 2 and len(hash1) == 32, "Append returns the sequence number and the 32-byte chain hash")
    check(append(h, "root", "SN1-2").returncode == 0, "root appends")
    for u in (TEST_ADMIN, TEST_OTHER, "callhome-collector", "callhome-net"):
        check(denied(append(h, u, "SN1-X")), f"{u} may not append (AccessDenied)")
        check(denied(call(h, u, "MarkDelivered", "sa{ss}", "SN1-1", "0")), f"{u} may not record a delivery")

    for u in ("root", "callhome-policy", TEST_ADMIN):
        r = call(h, u, "GetRecord", "t", str(seq1))
        check(r.returncode == 0 and data(r)[0][0] == seq1, f"{u} reads a record")
    for u in (TEST_OTHER, "callhome-collector"):
        check(denied(call(h, u, "GetRecord", "t", str(seq1))), f"{u} may not read (AccessDenied)")

    rec = data(call(h, "root", "GetRecord", "t", str(seq1)))[0]
    check(rec[2:6] == ["data", "outbound", "meter-reads", "SN1-1"] and bytes(rec[7]) == b"hello" and
          rec[6] == {"attempt": "1"} and rec[8] == hash1, "GetRecord returns what was appended, with its hash")

    # Bad input: InvalidArgs with a message a person can act on.
    r = call(h, "callhome-policy", "Append", "sssaya{ss}", "audit.seal", "outbound", "T", "0", "0")
    check(r.returncode != 0 and "not valid" in r.stderr, "the log's own record types cannot be appended")
    r = call(h, "callhome-policy", "Append", "sssaya{ss}", "x", "sideways", "T", "0", "0")
    check(r.returncode != 0 and "Direction" in r.stderr, "an unknown direction is refused")
    r = call(h, "callhome-policy", "Append", "sssaya{ss}", "x", "outbound", "", "0", "0")
    check(r.returncode != 0 and "transaction id" in r.stderr, "an outbound record needs a transaction id")
    r = append(h, "callhome-policy", "SN1-1")
    check(r.returncode != 0 and "already pending" in r.stderr, "the same pending transaction is not recorded twice")
    r = call(h, "callhome-policy", "ListRecords", "tua{sv}", "0", "5000", "0")
    check(r.returncode != 0 and "Page size" in r.stderr, "a page size beyond the bound is refused")

    # The outbox.
    pend = [x[5] for x in data(call(h, TEST_ADMIN, "ListPending"))[0]]
    check(pend == ["SN1-1", "SN1-2"], f"ListPending lists the outbound transactions without delivery ({pend})")
    check(append(h, "callhome-policy", "SN1-R", direction="inbound").returncode == 0, "an inbound reply is recorded")
    r = call(h, "callhome-policy", "MarkDelivered", "sa{ss}", "SN1-1", "1", "server-ack", "ok")
    check(r.returncode == 0 and data(r)[0] > seq1, "MarkDelivered appends a delivery record")
    pend = [x[5] for x in data(call(h, "callhome-policy", "ListPending"))[0]]
    check(pend == ["SN1-2"], "... and the transaction leaves the outbox")
    r = call(h, "callhome-policy", "MarkDelivered", "sa{ss}", "SN1-1", "0")
    check(r.returncode != 0 and ("NotPending" in r.stderr or "No pending" in r.stderr), "a second delivery is refused")

    # The outbox survives a restart (it is the log).
    h.stop(p)
    p = start_daemon(h, d, "--checkpoint-interval=1h", "--epoch-length=1h", "--segment-size=8K",
                     "--retention-size=40K")
    pend = [x[5] for x in data(call(h, "callhome-policy", "ListPending"))[0]]
    check(pend == ["SN1-2"], "after a restart the outbox still holds the undelivered transaction")

    # Filters and paging.
    for i in range(30):
        append(h, "callhome-policy", f"S-{i}", typ="supplies", payload=bytes(300))
    r = data(call(h, TEST_ADMIN, "ListRecords", "tua{sv}", "0", "10", "2", "type", "s", "supplies", "payload", "b", "false"))
    recs, last = r
    check(len(recs) == 10 and all(x[4] == "supplies" and x[7] == [] for x in recs),
          "ListRecords pages with a type filter, without payloads when asked")
    r2 = data(call(h, TEST_ADMIN, "ListRecords", "tua{sv}", str(last), "100", "1", "txn", "s", "S-29"))
    check(len(r2[0]) == 1 and r2[0][0][5] == "S-29", "ListRecords continues after the last record it examined")

    # Head, Appended and PropertiesChanged.
    head = data(h.busctl(TEST_ADMIN, "--json=short", "get-property", *DEST, "Head"))
    r = append(h, "callhome-policy", "SN1-LAST")
    seq_last, hash_last = data(r)
    head2 = data(h.busctl(TEST_ADMIN, "--json=short", "get-property", *DEST, "Head"))
    check(head2[0] == seq_last and head2[1] == hash_last and head2[0] == head[0] + 1,
          "the Head property follows each append (sequence, hash, sealed-through)")
    def heard():
        sigs = [json.loads(l) for l in mon.output().split("\n")[:-1] if l.startswith("{")]  # whole lines
        return ([s["payload"]["data"] for s in sigs if s.get("member") == "Appended"],
                [s["payload"]["data"] for s in sigs if s.get("member") == "PropertiesChanged"])

    # The Appended signal follows the durable record: wait for it, then for the Head change after it.
    h.wait_for(lambda: [seq_last, "meter-reads", "SN1-LAST"] in heard()[0], "the Appended signal of the last append")
    check(True, "an Appended signal goes out for each append")
    h.wait_for(lambda: any(c[1].get("Head", {}).get("data", [0])[0] == seq_last for c in heard()[1]),
               "a PropertiesChanged of Head with the last append")
    check(True, "Head changes are signalled (PropertiesChanged)")

    # The signals carry transaction ids: the bus delivers them to the log's readers only.
    ears = h.listen_signals((TEST_ADMIN, "callhome-policy", TEST_OTHER, "callhome-net"), DEST[1], 3)
    check(append(h, "callhome-policy", "SN1-EARS").returncode == 0, "an append while four users listen")
    for u, got in h.signals_heard(ears).items():
        if u in (TEST_ADMIN, "callhome-policy"):
            check("Appended" in got and "PropertiesChanged" in got, f"{u} receives the log's signals ({got})")
        else:
            check(got == [], f"{u} receives none of the log's signals ({got})")

    # Checkpoints and consistency proofs against the independent implementation.
    note1 = data(call(h, TEST_ADMIN, "GetCheckpoint"))[0]
    o1, size1, root1, _, _ = parse_note(note1)
    for i in range(7):
        append(h, "callhome-policy", f"C-{i}")
    h.stop(p)  # a checkpoint now: restart with a short interval
    p = start_daemon(h, d, "--checkpoint-interval=300ms", "--epoch-length=1h", "--segment-size=8K",
                     "--retention-size=40K")
    # Wait for the timed checkpoint itself, not for a time.
    h.wait_for(lambda: parse_note(data(call(h, TEST_ADMIN, "GetCheckpoint"))[0])[1] > size1,
               "a timed checkpoint covering the appends")
    note2 = data(call(h, TEST_ADMIN, "GetCheckpoint"))[0]
    o2, size2, root2, _, _ = parse_note(note2)
    check(size2 > size1, f"a newer checkpoint covers more records ({size1} -> {size2})")
    leaves = [bytes.fromhex(x["hash"]) for x in records(d)]
    check(mth(leaves[:size2]) == root2 and mth(leaves[:size1]) == root1,
          "checkpoint roots equal the independent Merkle tree hash over the records' chain hashes")
    check(consistency_proof(size1, leaves[:size2]) ==
          [bytes(x) for x in data(call(h, TEST_ADMIN, "GetConsistencyProof", "tt", str(size1), str(size2)))[0]],
          "the daemon's proof equals RFC 9162 PROOF computed independently")
    proof = [bytes(x) for x in data(call(h, TEST_ADMIN, "GetConsistencyProof", "tt", str(size1), str(size2)))[0]]
    check(verify_consistency(size1, size2, root1, root2, proof),
          f"the consistency proof {size1}->{size2} verifies with the independent RFC 9162 verifier")
    check(not verify_consistency(size1, size2, root1, root2, proof[:-1] + [bytes(32)]),
          "... and an altered proof does not")
    r = call(h, TEST_ADMIN, "GetConsistencyProof", "tt", str(size2), str(size1))
    check(r.returncode != 0 and "old size" in r.stderr, "a proof with old > new is refused")

    # Retention kept the log verifiable from its first kept segment. No timer
    # writes records from here on, and nothing is removed before the customer
    # acknowledges, so a copy then holds every segment as it was when closed
    # (to stage a crash in a removal below).
    h.stop(p)
    p = start_daemon(h, d, "--checkpoint-interval=1h", "--epoch-length=1h", "--segment-size=8K",
                     "--retention-size=40K")
    kept_aside = os.path.join(h.tmp, "segments-aside")
    os.makedirs(kept_aside)
    # Pending outbound records are never removed: deliver them, so that retention may go as far
    # as the customer acknowledges.
    for x in data(call(h, "callhome-policy", "ListPending"))[0]:
        check(call(h, "callhome-policy", "MarkDelivered", "sa{ss}", x[5], "0").returncode == 0, f"{x[5]} delivered")
    for i in range(70):
        append(h, "callhome-policy", f"R-{i}", direction="internal", payload=bytes(1000))
    segs_before = sorted(f for f in os.listdir(d) if f.endswith(".seg"))
    check(segs_before[0] == "0000000000000001.seg", "without a witness, retention removes nothing")
    for f in segs_before:
        shutil.copy2(os.path.join(d, f), kept_aside)
    leaves = [bytes.fromhex(x["hash"]) for x in records(d)]
    n = len(leaves)
    r = call(h, TEST_ADMIN, "Acknowledge", "tayay", str(n), *ay(mth(leaves)), *ay(ack_tag(key, o1, n, mth(leaves))))
    check(r.returncode == 0, f"the customer acknowledges records 1..{n} ({r.stderr.strip()})")
    segs = sorted(f for f in os.listdir(d) if f.endswith(".seg"))
    check(segs[0] != "0000000000000001.seg", f"retention removed the oldest segments (first kept: {segs[0]})")
    # The index is bounded: leaves go with their segment. A proof from a size
    # before the first kept segment is refused clearly; from one at or after it
    # (a witness's recent checkpoint) it is made from the first kept segment's
    # header (the subtrees over the removed leaves) and the kept leaves.
    r = call(h, TEST_ADMIN, "GetConsistencyProof", "tt", str(size1), str(size2))
    check(r.returncode != 0 and "removed segments" in r.stderr,
          f"a proof from size {size1}, whose leaves were removed, is refused clearly")
    r = call(h, TEST_ADMIN, "Acknowledge", "tayay", str(size1), *ay(root1), *ay(ack_tag(key, o1, size1, root1)))
    check(r.returncode != 0 and "removed segments" in r.stderr
          and "older than the first kept segment" in r.stderr,
          f"an acknowledgement of a checkpoint before the first kept segment is refused clearly ({r.stderr.strip()})")
    full = os.path.join(h.tmp, "full-log")
    shutil.copytree(d, full)
    for f in os.listdir(kept_aside):
        if not os.path.exists(os.path.join(full, f)):
            shutil.copy2(os.path.join(kept_aside, f), full)
    all_leaves = [bytes.fromhex(x["hash"]) for x in records(full)]
    first_kept, size_now = int(segs[0][:16], 16), len(all_leaves)
    for m in (first_kept - 1, first_kept + 2):
        r = call(h, TEST_ADMIN, "GetConsistencyProof", "tt", str(m), str(size_now))
        got = [bytes(x) for x in data(r)[0]] if r.returncode == 0 else r.stderr
        check(got == consistency_proof(m, all_leaves) and
              verify_consistency(m, size_now, mth(all_leaves[:m]), mth(all_leaves), got),
              f"a proof {m}->{size_now} after retention equals RFC 9162 PROOF over every leaf and verifies")
    h.stop(p)
    r = cli("verify", f"--dir={d}", f"--key={key}", "--no-progress")
    check(r.returncode == 0 and "retention record accounts" in r.stdout,
          f"verify exits 0 from the first kept segment: {r.stdout.strip().splitlines()[0]}")

    # A crash in the middle of a removal (the retention record is written first,
    # then the oldest segments are unlinked, oldest first) leaves the newest of
    # the condemned segments behind: still a whole log, and the daemon finishes the job.
    removed = sorted(f for f in os.listdir(kept_aside) if f not in segs)
    check(len(removed) >= 2, f"retention removed {len(removed)} segments")
    for f in removed[-2:]:
        shutil.copy2(os.path.join(kept_aside, f), d)
        # as the crash would have left them: the audit user's (root's copies would be refused)
        os.chown(os.path.join(d, f), uid_of("callhome-audit"), gid_of("callhome-audit"))
    r = cli("verify", f"--dir={d}", f"--key={key}", "--no-progress")
    check(r.returncode == 0 and "2 segment(s) before seq" in r.stdout and "left over" in r.stdout,
          f"verify exits 0 with two condemned segments left over: {r.stdout.strip()}")
    p = start_daemon(h, d, "--epoch-length=1h", "--segment-size=8K", "--retention-size=40K")
    h.stop(p)
    check("Retention: removed 2 segment(s)" in p.output(), "the daemon finishes the removal at start")
    check(sorted(f for f in os.listdir(d) if f.endswith(".seg"))[0] == segs[0], "... and the first kept segment is first again")
    r = cli("verify", f"--dir={d}", f"--key={key}", "--no-progress")
    check(r.returncode == 0 and "left over" not in r.stdout, "verify exits 0 after it")
    shutil.copy2(os.path.join(kept_aside, removed[-2]), d)
    r = cli("verify", f"--dir={d}", "--no-progress")
    check(r.returncode == 1, f"a condemned segment back with a gap behind it is caught: {r.stdout.strip()[:160]}")
    os.unlink(os.path.join(d, removed[-2]))
    os.unlink(os.path.join(d, segs[0]))
    r = cli("verify", f"--dir={d}", "--no-progress")
    check(r.returncode == 1, "deleting the first kept segment as well is caught")

    # Proofs over a larger log come from cached roots of 256-leaf blocks, extended as
    # the log grows: the same proofs as RFC 9162 computed independently.
    d = os.path.join(h.tmp, "log-proofs")
    setup_keys(d)
    gen(d, 1400, 40, 500, 0, "1G")
    p = start_daemon(h, d)
    def proof_of(a, b):
        return [bytes(x) for x in data(call(h, TEST_ADMIN, "GetConsistencyProof", "tt", str(a), str(b)))[0]]
    pairs = [(1, 1401), (255, 1024), (256, 1024), (257, 1100), (700, 1401), (1023, 1025), (1024, 1401)]
    leaves = [bytes.fromhex(x["hash"]) for x in records(d)]
    bad = [(a, b) for a, b in pairs if proof_of(a, b) != consistency_proof(a, leaves[:b])]
    for i in range(300):
        append(h, "callhome-policy", f"P-{i}", direction="inbound", payload=b"p")
    leaves = [bytes.fromhex(x["hash"]) for x in records(d)]
    n = len(leaves)
    pairs2 = [(1400, n), (1, n), (513, n - 1), (1536, n)]
    bad += [(a, b) for a, b in pairs2 if proof_of(a, b) != consistency_proof(a, leaves[:b])]
    check(not bad and n > 1700, f"{len(pairs) + len(pairs2)} proofs over {n} records, before and after 300 more "
                                f"appends, equal RFC 9162 PROOF (wrong: {bad})")
    h.stop(p)

    # The outbox is bounded, and refuses before writing: an outbound record is never left out of it.
    d = os.path.join(h.tmp, "log-outbox")
    setup_keys(d)
    p = start_daemon(h, d, "--outbox-max=3")
    check(all(append(h, "callhome-policy", f"OB-{i}").returncode == 0 for i in range(3)), "3 outbound appends fit")
    head = data(call(h, TEST_ADMIN, "ListRecords", "tua{sv}", "0", "100", "0"))[0]
    r = append(h, "callhome-policy", "OB-3")
    check(r.returncode != 0 and "await delivery (the bound is 3)" in r.stderr, f"a 4th is refused with OutboxFull ({r.stderr.strip()})")
    check(data(call(h, TEST_ADMIN, "ListRecords", "tua{sv}", "0", "100", "0"))[0] == head, "... and nothing was written")
    check(append(h, "callhome-policy", "IB-1", direction="inbound").returncode == 0, "inbound records still go in")
    check(call(h, "callhome-policy", "MarkDelivered", "sa{ss}", "OB-0", "0").returncode == 0 and
          append(h, "callhome-policy", "OB-3").returncode == 0, "after a delivery there is room again")
    h.stop(p)
    p = start_daemon(h, d, "--outbox-max=1")
    pend = [x[5] for x in data(call(h, "callhome-policy", "ListPending"))[0]]
    check(pend == ["OB-1", "OB-2", "OB-3"], f"a bound lowered below what is pending still lists all of it ({pend})")
    check("the bound is 1" in append(h, "callhome-policy", "OB-4").stderr, "... and takes no more outbound records")
    h.stop(p)
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip().replace("-", "")
    check(all(x["boot_id"] == boot for x in records(d)), f"every record the daemon wrote names this boot ({boot})")

with Harness("audit-bus-open", open_bus=True) as h:
    # A bus that lets everyone call everything: the daemon's own check still holds.
    d = os.path.join(h.tmp, "log")
    setup_keys(d)
    p = start_daemon(h, d)
    check(denied(append(h, TEST_ADMIN, "Z-1")), "on an open bus an admin still cannot append (daemon's own check)")
    check(denied(append(h, TEST_OTHER, "Z-2")), "on an open bus a stranger cannot append")
    check(denied(call(h, TEST_OTHER, "ListPending")), "on an open bus a stranger cannot read")
    check(call(h, TEST_ADMIN, "ListPending").returncode == 0, "on an open bus an admin reads")
    for prop in ("Head", "PendingCount", "CheckpointKey", "Broken"):
        check(denied(h.busctl(TEST_OTHER, "get-property", *DEST, prop)), f"on an open bus a stranger cannot read {prop}")
        check(h.busctl(TEST_ADMIN, "get-property", *DEST, prop).returncode == 0, f"... an admin can")
    r = h.busctl(TEST_OTHER, "call", *DEST[:2], "org.freedesktop.DBus.Properties", "GetAll", "s", DEST[2])
    check(denied(r), "... nor all of them at once (GetAll)")
