#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""callhome-audit's set-up and reading commands, held to what was written.

  - setup-keys as root: seal.key (and checkpoint.key) 0600 and owned by
    callhome-audit; the verification key printed once, on stdout, and found
    in no file of the state directory as text (its raw bytes only in seal.key,
    which holds the device's epoch-0 key until the first seal); a second
    setup-keys on the same directory refuses and changes nothing.
  - show and stats on a log written by the daemon (varied types, directions,
    transaction ids, payload sizes) whose wall-clock times were then set here to
    span three days (chain hashes, MACs and CRCs recomputed independently, so
    `verify --key` still passes): --since, --type, --txn and -o json return
    exactly the expected records; the table has a header and one line per
    record; stats counts records and payload bytes by type, direction and day.
  - show --follow prints records as the daemon appends them.
"""
import hashlib
import hmac
import json
import os
import re
import struct
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import CLI, cli, crc32c, gen, setup_keys, start_daemon
from chtest import Harness, check, fail, skip_unless_root, uid_of

skip_unless_root("the audit CLI test (setup-keys hands the keys to callhome-audit)")
# Days and times in show/stats are local time: make them UTC for this test.
os.environ["TZ"] = "UTC"
DEST = ["org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1"]
HEX64 = re.compile(r"\b[0-9a-fA-F]{64}\b")

# --- an independent reader/re-sealer of a one-segment, epoch-0 log (format: auditlog/log-format.h)
DIRECTIONS = {0: "internal", 1: "outbound", 2: "inbound"}


def parse_records(buf):
    """Records of one segment file: dicts with offset and fields, as the format describes them."""
    if buf[:8] != b"CHAUDSEG":
        fail("not a segment file")
    off = struct.unpack_from("<I", buf, 12)[0]
    out = []
    while off < len(buf):
        if buf[off:off + 4] != b"CHR1":
            fail(f"no record magic at offset {off}")
        size, seq, rt = struct.unpack_from("<IQQ", buf, off + 4)
        epoch = struct.unpack_from("<Q", buf, off + 48)[0]
        kind, direction, tl, xl, ml, pl = struct.unpack_from("<BBHHHI", buf, off + 56)
        body = off + 72
        out.append(dict(off=off, size=size, seq=seq, realtime=rt, epoch=epoch, kind=kind,
                        direction=DIRECTIONS[direction], type=buf[body:body + tl].decode(),
                        txn=buf[body + tl:body + tl + xl].decode(),
                        payload=bytes(buf[body + tl + xl + ml:body + tl + xl + ml + pl])))
        off += size
    return out


def retime(path, k0, times):
    """Give record i the wall-clock time times[i] (µs) and recompute every chain hash,
    MAC (epoch 0, key k0) and CRC: what the daemon would have written at those times."""
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    recs = parse_records(buf)
    if len(recs) != len(times):
        fail(f"{len(recs)} records to retime, {len(times)} times given")
    mac_key = hmac.new(k0, b"callhome-audit mac", "sha256").digest()
    prev = bytes(32)
    for r, t in zip(recs, times):
        if r["epoch"] != 0 or r["kind"] in (3, 4):
            fail(f"retime handles epoch 0 without seals or checkpoints only (seq {r['seq']})")
        o, s = r["off"], r["size"]
        struct.pack_into("<Q", buf, o + 16, t)
        h = hashlib.sha256(prev + bytes(buf[o:o + s - 72])).digest()
        buf[o + s - 72:o + s - 40] = h
        buf[o + s - 40:o + s - 8] = hmac.new(mac_key, b"CHMAC1" + h, "sha256").digest()
        struct.pack_into("<I", buf, o + s - 4, crc32c(bytes(buf[o:o + s - 4])))
        prev = h
    with open(path, "wb") as f:
        f.write(buf)


def files_of(d):
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                yield p, f.read()


def append(h, txn, direction, typ, payload):
    return h.busctl("callhome-policy", "--json=short", "call", *DEST, "Append", "sssaya{ss}", typ, direction, txn,
                    str(len(payload)), *[str(b) for b in payload], "0")


def show(d, *args):
    r = cli("show", f"--dir={d}", *args)
    if r.returncode != 0:
        fail(f"callhome-audit show {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r.stdout


def show_json(d, *args):
    return [json.loads(l) for l in show(d, "-o", "json", *args).splitlines() if l.strip()]


def usec(s):
    return int(datetime.strptime(s, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()) * 1000000


def fmt(t):
    return datetime.fromtimestamp(t // 1000000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


with Harness("audit-cli") as h:
    # --- setup-keys -------------------------------------------------------------------------
    d = os.path.join(h.tmp, "keys")
    r = cli("setup-keys", f"--dir={d}", "--origin=test.callhome/cli", check=0)
    keys = HEX64.findall(r.stdout)
    check(len(keys) == 1 and r.stdout.count(keys[0]) == 1 and keys[0] not in r.stderr,
          "setup-keys prints the verification key exactly once, on stdout")
    key = keys[0]
    k0 = bytes.fromhex(key)
    audit_uid = uid_of("callhome-audit")
    for name in ("seal.key", "checkpoint.key"):
        st = os.lstat(os.path.join(d, name))
        check(st.st_mode & 0o7777 == 0o600 and (st.st_mode & 0o170000) == 0o100000,
              f"{name} is a regular file of mode 0600 (is {oct(st.st_mode & 0o7777)})")
        check(st.st_uid == audit_uid, f"{name} is owned by callhome-audit (uid {st.st_uid})")
    st = os.stat(d)
    check(st.st_uid == audit_uid and not st.st_mode & 0o007,
          f"the state directory is callhome-audit's and closed to others ({oct(st.st_mode & 0o777)})")

    def key_not_stored(where):
        for p, data in files_of(d):
            if key.lower().encode() in data or key.upper().encode() in data:
                fail(f"{where}: the verification key is stored as text in {p}")
            if k0 in data and os.path.basename(p) != "seal.key":
                fail(f"{where}: the verification key's bytes are stored in {p}")
    key_not_stored("after setup-keys")
    with open(os.path.join(d, "seal.key"), "rb") as f:
        kf = f.read()
    check(kf[:8] == b"CHSEALK1" and struct.unpack_from("<Q", kf, 8)[0] == 0 and
          crc32c(kf[:60]) == struct.unpack_from("<I", kf, 60)[0],
          "the verification key is in no file as text, and in no file but seal.key (the epoch-0 key) at all")

    before = {p: (data, os.stat(p).st_mtime_ns) for p, data in files_of(d)}
    r = cli("setup-keys", f"--dir={d}", "--origin=test.callhome/cli")
    check(r.returncode == 2 and "seal.key" in r.stderr,
          f"a second setup-keys on the same directory refuses (exit {r.returncode}): {r.stderr.strip()[:80]}")
    check(not HEX64.findall(r.stdout), "... prints no key")
    after = {p: (data, os.stat(p).st_mtime_ns) for p, data in files_of(d)}
    check(after == before, "... and leaves every file of the directory as it was (keys unchanged)")

    # The printed key is the one the log is sealed with.
    gen(d, 5, 50)
    check(cli("verify", f"--dir={d}", f"--key={key}", "--no-progress").returncode == 0,
          "verify --key with the printed key accepts a log written with the stored key")
    wrong = bytes([k0[0] ^ 1]) + k0[1:]
    check(cli("verify", f"--dir={d}", f"--key={wrong.hex()}", "--no-progress").returncode == 1,
          "... and a key differing in one bit is rejected (the MACs are checked)")
    key_not_stored("after records were written")

    # --- a log with varied records ------------------------------------------------------------
    d = os.path.join(h.tmp, "log")
    key = setup_keys(d)
    k0 = bytes.fromhex(key)
    written = [  # type, direction, txn, payload
        ("meter-reads", "outbound", "SN9-1", b"M" * 120),
        ("meter-reads", "inbound", "SN9-1", b"ack 1"),
        ("supplies", "outbound", "SN9-2", b"S" * 300),
        ("policy.decision", "internal", "", b"allowed: supplies"),
        ("check-in", "outbound", "SN9-3", b""),
        ("supplies", "inbound", "SN9-2", bytes(range(75))),  # binary
        ("meter-reads", "outbound", "SN9-4", b"x" * 1000),
        ("check-in", "inbound", "SN9-3", b"hello"),
        ("supplies", "outbound", "SN9-5", b"late"),
    ]
    p = start_daemon(h, d)
    for typ, direction, txn, payload in written:
        r = append(h, txn, direction, typ, payload)
        if r.returncode != 0:
            fail(f"Append {typ} {txn} failed: {r.stderr}")
    r = h.busctl("callhome-policy", "call", *DEST, "MarkDelivered", "sa{ss}", "SN9-1", "0")
    check(r.returncode == 0, "the daemon wrote 9 records of 4 types, 3 directions and 5 transactions, and a delivery")
    h.stop(p)

    segs = sorted(f for f in os.listdir(d) if f.endswith(".seg"))
    check(len(segs) == 1, "the log is one segment")
    seg = os.path.join(d, segs[0])
    # Times over three days, with records on either side of midnight and of the --since marks.
    times = [usec("2024-03-09 10:00:00"), usec("2024-03-09 10:00:05"), usec("2024-03-09 18:30:00"),
             usec("2024-03-10 07:00:00") - 1, usec("2024-03-10 07:00:00"), usec("2024-03-10 23:59:59") + 999999,
             usec("2024-03-11 00:00:00"), usec("2024-03-11 00:00:01"), usec("2024-03-11 12:00:00"),
             usec("2024-03-11 12:00:00") + 500000, usec("2024-03-11 13:00:00")]
    retime(seg, k0, times)
    with open(seg, "rb") as f:
        truth = parse_records(f.read())
    data = [t for t in truth if t["kind"] == 1]
    check([(t["type"], t["direction"], t["txn"], t["payload"]) for t in data] == written,
          "the independent parse of the segment holds exactly what was appended, in order")
    r = cli("verify", f"--dir={d}", f"--key={key}", "--no-progress")
    check(r.returncode == 0, f"the re-timed log verifies with the key (hashes, MACs, CRCs recomputed): {r.stdout.strip()[:60]}")

    def expect(pred):
        return [t["seq"] for t in truth if pred(t)]

    def seqs(objs):
        return [o["seq"] for o in objs]

    # -o json: every record, every field that show claims.
    allj = show_json(d)
    check(seqs(allj) == [t["seq"] for t in truth], f"show -o json lists all {len(truth)} records, in order")
    bad = [(o["seq"], k) for o, t in zip(allj, truth) for k, v in
           (("type", t["type"]), ("direction", t["direction"]), ("txn", t["txn"]), ("size", len(t["payload"])),
            ("realtime_usec", t["realtime"]), ("time", fmt(t["realtime"])), ("epoch", 0)) if o.get(k) != v]
    check(not bad, f"... each with its type, direction, transaction, size and time ({bad[:4]})")

    # --since, --type, --txn, alone and together.
    cases = [
        (["--since=@" + str(usec("2024-03-10 07:00:00") // 1000000)], lambda t: t["realtime"] >= usec("2024-03-10 07:00:00")),
        (["--since=2024-03-11"], lambda t: t["realtime"] >= usec("2024-03-11 00:00:00")),
        (["--since=2024-03-11 12:00"], lambda t: t["realtime"] >= usec("2024-03-11 12:00:00")),
        (["--since=2024-03-09 10:00:01"], lambda t: t["realtime"] >= usec("2024-03-09 10:00:01")),
        (["--since=2030-01-01"], lambda t: False),
        (["--type=supplies"], lambda t: t["type"] == "supplies"),
        (["--type=audit.delivery"], lambda t: t["type"] == "audit.delivery"),
        (["--type=suppl"], lambda t: False),
        (["--txn=SN9-1"], lambda t: t["txn"] == "SN9-1"),
        (["--txn=SN9-3"], lambda t: t["txn"] == "SN9-3"),
        (["--txn=SN9"], lambda t: False),
        (["--type=meter-reads", "--txn=SN9-1"], lambda t: t["type"] == "meter-reads" and t["txn"] == "SN9-1"),
        (["--type=supplies", "--since=2024-03-11"], lambda t: t["type"] == "supplies" and t["realtime"] >= usec("2024-03-11 00:00:00")),
    ]
    for args, pred in cases:
        got, want = seqs(show_json(d, *args)), expect(pred)
        check(got == want, f"show {' '.join(args)} -o json returns exactly seqs {want} (got {got})")
    check(len(expect(lambda t: t["txn"] == "SN9-1")) == 3, "(--txn=SN9-1 covers the request, the reply and the delivery)")

    # The table: a header, then one line per record with its columns.
    lines = show(d).splitlines()
    check(lines[0].split() == ["SEQ", "TIME", "DIR", "TYPE", "TRANSACTION", "SIZE", "SUMMARY"],
          f"the table starts with a header: {lines[0].strip()}")
    rows = lines[1:]
    check(len(rows) == len(truth), f"... then one line per record ({len(rows)} lines, {len(truth)} records)")
    bad = []
    for line, t in zip(rows, truth):
        c = line.split()
        if c[:7] != [str(t["seq"]), *fmt(t["realtime"]).split(), t["direction"], t["type"], t["txn"] or "-",
                     str(len(t["payload"]))]:
            bad.append(line)
    check(not bad, f"... each line: sequence, time, direction, type, transaction, size ({bad[:2]})")
    check(rows[4].split()[7:] == ["allowed:", "supplies"] and "binary" in rows[6] and
          rows[5].rstrip().endswith("-"), "... and a summary of the payload (text, binary, empty)")
    lines = show(d, "--type=supplies").splitlines()
    check(len(lines) == 1 + len(expect(lambda t: t["type"] == "supplies")) and lines[0].split()[0] == "SEQ" and
          all(l.split()[4] == "supplies" for l in lines[1:]), "a filtered table: the header and the matching lines only")

    # stats: counts and payload bytes by type, by direction and by day.
    def table(key):
        out = {}
        for t in truth:
            e = out.setdefault(key(t), {"records": 0, "bytes": 0})
            e["records"] += 1
            e["bytes"] += len(t["payload"])
        return out

    r = cli("stats", f"--dir={d}", "-o", "json", check=0)
    st = json.loads(r.stdout)
    check(st["records"] == len(truth) and st["bytes"] == sum(len(t["payload"]) for t in truth),
          f"stats: {st['records']} records, {st['bytes']} payload bytes in all, as written")
    check(st["by_type"] == table(lambda t: t["type"]), f"stats by type match what was written: {st['by_type']}")
    check(st["by_direction"] == table(lambda t: t["direction"]), "stats by direction match")
    by_day = table(lambda t: fmt(t["realtime"])[:10])
    check(st["by_day"] == by_day and sorted(by_day) == ["2024-03-09", "2024-03-10", "2024-03-11"],
          f"stats by day match, midnight on the right side: {st['by_day']}")
    text = cli("stats", f"--dir={d}", check=0).stdout
    rows = {tuple(l.split()) for l in text.splitlines()}
    want = [(k, str(v["records"]), str(v["bytes"])) for tb in (table(lambda t: t["type"]), by_day) for k, v in tb.items()]
    check(text.startswith(f"{len(truth)} records, {st['bytes']} payload bytes") and all(w in rows for w in want),
          "the stats table says the same, a line per type and per day")

    # Days and --since are local time: ten hours east of UTC (a POSIX TZ, no tzdata needed).
    os.environ["TZ"] = "<+10>-10"
    east = 10 * 3600 * 1000000
    st = json.loads(cli("stats", f"--dir={d}", "-o", "json", check=0).stdout)
    by_day = table(lambda t: fmt(t["realtime"] + east)[:10])
    check(st["by_day"] == by_day and by_day != table(lambda t: fmt(t["realtime"])[:10]),
          f"in UTC+10, stats count by the local day: {st['by_day']}")
    got, want = seqs(show_json(d, "--since=2024-03-11")), expect(lambda t: t["realtime"] >= usec("2024-03-11 00:00:00") - east)
    check(got == want, f"... and --since=2024-03-11 means local midnight: seqs {want} (got {got})")
    os.environ["TZ"] = "UTC"

    # --follow: records appear as the daemon appends them.
    p = start_daemon(h, d)
    fol = h.spawn([CLI, "show", f"--dir={d}", "-o", "json", "--follow"], name="follow")

    def followed():
        # Whole lines only: the last one may be caught half written.
        return [json.loads(l) for l in fol.output().split("\n")[:-1] if l.startswith("{")]

    h.wait_for(lambda: len(followed()) >= len(truth), "show --follow to print the existing records", timeout=10)
    for i in range(2):
        r = append(h, f"FOLLOW-{i}", "outbound", "meter-reads", b"follow me")
        check(r.returncode == 0, f"an append while show --follow runs ({r.stderr.strip()})")
        seq = json.loads(r.stdout)["data"][0]
        t0 = time.monotonic()
        h.wait_for(lambda: any(o["seq"] == seq for o in followed()) or not fol.alive(),
                   f"show --follow to print record {seq}", timeout=5)
        got = followed()
        check(fol.alive() and [o["seq"] for o in got] == list(range(1, seq + 1)) and got[-1]["txn"] == f"FOLLOW-{i}",
              f"show --follow printed the appended record {seq} within {time.monotonic() - t0:.1f}s, once, in order")
    check(h.stop(fol) is not None and not fol.alive(), "show --follow stopped by its PID")
    h.stop(p)
