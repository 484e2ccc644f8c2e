#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What `callhome-audit verify` proves, row by row of the table in callhome-audit(1):
each attack, made by someone holding every key on the device (audit-testtool rewrite,
cut-start, new-log, or cut files), against each verification mode (the customer's key,
the witness's cosigned checkpoint and key, both), caught (exit 1) or not caught (exit 0)
exactly as the table says. Then the faked retention boundary in detail: a log whose start
moved is accepted only on evidence a key the device does not hold can check."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import TOOL, Cosigner, cli, gen, parse_note, records, setup_keys  # noqa: E402
from chtest import SOURCE_ROOT, Harness, check, fail  # noqa: E402

MAN = os.path.join(SOURCE_ROOT, "man", "callhome-audit.1")


def table():
    """The rows of the "What verify proves" table: attack -> (key, witness, both), True = caught."""
    text = open(MAN, encoding="utf-8").read()
    body = text[text.index("What verify proves"):]
    body = body[body.index(".TS"):body.index(".TE")].splitlines()[3:]
    rows = {}
    for line in body:
        cells = line.split("\t")
        if len(cells) != 4 or any(c not in ("caught", "not caught") for c in cells[1:]):
            fail(f"malformed row in the man page's table: {line!r}")
        rows[cells[0]] = tuple(c == "caught" for c in cells[1:])
    return rows


def tool(*args):
    r = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        fail(f"audit-testtool {' '.join(map(str, args))} failed: {r.stderr}")
    return r.stdout


def cut_from(d, seq):
    """Truncates the log so that record `seq` and everything after it are gone (at a record boundary)."""
    rec = next(x for x in records(d) if x["seq"] == seq)
    for f in sorted(os.listdir(d)):
        if f.endswith(".seg") and f > rec["segment"]:
            os.unlink(os.path.join(d, f))
    os.truncate(os.path.join(d, rec["segment"]), rec["offset"])


with Harness("audit-evidence", bus=False) as h:
    rows = table()
    check(len(rows) >= 15, f"the man page's table has {len(rows)} rows")

    # The log: sealed every 10 records; a key file saved early (to roll back to); a checkpoint
    # the server cosigned; sealed epochs after it; an unsealed tail.
    base = os.path.join(h.tmp, "base")
    key = setup_keys(base)
    gen(base, 100, 150, 10, 0, "16K")
    old_key = os.path.join(h.tmp, "seal.key.saved")
    shutil.copy2(os.path.join(base, "seal.key"), old_key)
    gen(base, 100, 150, 10, 100, "16K")
    witness = Cosigner()
    note = cli("checkpoint", f"--dir={base}", check=0).stdout
    _, seen, _, _, _ = parse_note(note)
    ck = os.path.join(h.tmp, "witnessed.note")
    with open(ck, "w") as f:
        f.write(witness.cosign(note))
    wkey = os.path.join(h.tmp, "witness.pub")
    with open(wkey, "w") as f:
        f.write(witness.vkey + "\n")
    gen(base, 60, 150, 10, 0, "16K")
    gen(base, 5, 150, 0, 0, "16K")
    recs = records(base)
    last = recs[-1]["seq"]
    seals = [x["seq"] for x in recs if x["kind"] == "seal"]
    data = [x["seq"] for x in recs if x["kind"] == "data"]
    last_seal = seals[-1]
    check(0 < seen < last_seal < last, f"{last} records: {seen} seen by the witness, sealed up to {last_seal}")
    saved_epoch_start = next(x["seq"] for x in recs if x["kind"] == "seal" and x["seq"] > 110)  # after the saved key

    modes = {
        "key": [f"--key={key}"],
        "witness": [f"--witness-checkpoint={ck}", f"--witness-key={wkey}"],
        "both": [f"--key={key}", f"--witness-checkpoint={ck}", f"--witness-key={wkey}"],
    }
    for m, args in modes.items():
        r = cli("verify", f"--dir={base}", "--no-progress", *args)
        check(r.returncode == 0, f"the untouched log verifies with {m} ({r.stdout.strip()[:200]})")
    r = cli("verify", f"--dir={base}", "--no-progress", *modes["both"])
    check(f"Sealed: records up to seq {last_seal}" in r.stdout, "verify says where the sealed part ends")
    check(f"records {last - 4}..{last}" not in r.stdout and "Witnessed: nothing" in r.stdout and
          "WARNING" in r.stdout, f"... that no witness record is in the log, with a plain warning ({r.stdout.strip()})")

    def mid(a, b, kinds=("data",)):
        """A record of one of these kinds between a and b (exclusive), not the first after a seal."""
        return next(x["seq"] for x in recs if a < x["seq"] < b and x["kind"] in kinds and x["seq"] - 1 not in seals)

    attacks = {
        "edit a sealed record seen": lambda d: tool("rewrite", d, mid(120, seen), "edit"),
        "edit a sealed record after what was seen": lambda d: tool("rewrite", d, mid(seen, last_seal), "edit"),
        "edit an unsealed record": lambda d: tool("rewrite", d, last, "edit"),
        "drop a record seen": lambda d: tool("rewrite", d, mid(120, seen), "drop"),
        "reorder two records seen": lambda d: tool("rewrite", d, mid(120, seen), "swap"),
        "truncate the tail after what was seen": lambda d: cut_from(d, last - 2),
        "truncate the tail into what was seen": lambda d: cut_from(d, mid(seen - 30, seen)),
        "cut back to an epoch boundary before what was seen": lambda d: cut_from(d, max(s for s in seals if s < seen - 5) + 1),
        "replace the log from seq 1": lambda d: tool("rewrite", d, 1, "none"),
        "remove the oldest segments without evidence": lambda d: tool("cut-start", d, 2, "none"),
        "remove the oldest segments with a made-up acknowledgement": lambda d: tool("cut-start", d, 2, "ack"),
        "remove the oldest segments with a made-up cosignature": lambda d: tool("cut-start", d, 2, "witness"),
        "replace the log by one that starts later": lambda d: tool("new-log", d, last + 100, "ack"),
        "roll the key file back and rewrite what was seen":
            lambda d: tool("rewrite", d, mid(saved_epoch_start, seen), "edit", old_key),
        "roll the key file back and rewrite after what was seen":
            lambda d: tool("rewrite", d, mid(seen, last_seal), "edit", old_key),
    }
    check(set(attacks) == set(rows), f"every row of the table has its attack and no other ({set(attacks) ^ set(rows)})")

    work = os.path.join(h.tmp, "work")
    for name, expect in rows.items():
        for (m, args), caught in zip(modes.items(), expect):
            if os.path.exists(work):
                shutil.rmtree(work)
            shutil.copytree(base, work)
            attacks[name](work)
            r = cli("verify", f"--dir={work}", "--no-progress", *args)
            if r.returncode not in (0, 1):
                fail(f"{name}, {m}: verify exited {r.returncode}: {r.stdout}{r.stderr}")
            got = r.returncode == 1
            check(got == caught, f"{name}: {'caught' if got else 'not caught'} with {m}, as the table says"
                  + (f" ({r.stdout.strip().splitlines()[0][:160]})" if got else ""))

    # --- The faked retention boundary in detail. ---
    # verify --key names the made-up evidence it rejects; without evidence the start is never accepted.
    for mode, what in (("none", "no witness record covers"), ("ack", "not made with the verification key"),
                       ("witness", "give --witness-key")):
        shutil.rmtree(work)
        shutil.copytree(base, work)
        tool("cut-start", work, 2, mode)
        r = cli("verify", f"--dir={work}", "--no-progress", f"--key={key}")
        check(r.returncode == 1 and what in r.stdout, f"oldest segments removed, evidence '{mode}': verify --key fails "
              f"({r.stdout.strip().splitlines()[0][:200]})")
    # A checkpoint the server cosigned that is older than the new start is never "not comparable".
    for mode in ("none", "ack", "witness"):
        shutil.rmtree(work)
        shutil.copytree(base, work)
        tool("new-log", work, last + 100, mode)
        r = cli("verify", f"--dir={work}", "--no-progress", f"--witness-checkpoint={ck}")
        check(r.returncode == 1 and "not comparable" not in r.stdout,
              f"a new log from seq {last + 100}, evidence '{mode}', against the older cosigned checkpoint alone: exit 1 "
              f"({r.stdout.strip().splitlines()[0][:200]})")
        r = cli("verify", f"--dir={work}", "--no-progress", *modes["both"])
        check(r.returncode == 1, f"... and with the key and the witness key ({r.stdout.strip().splitlines()[0][:160]})")

    # A log retention really cut, on the customer's acknowledgements (made with the first key):
    # it verifies with the key; a cosignature check alone cannot vouch for it.
    ret = os.path.join(h.tmp, "retained")
    rkey = setup_keys(ret)
    gen(ret, 600, 150, 10, 50, "16K", "64K")
    segs = sorted(f for f in os.listdir(ret) if f.endswith(".seg"))
    check(segs[0] != "0000000000000001.seg", f"retention removed the oldest segments (first kept {segs[0]})")
    r = cli("verify", f"--dir={ret}", "--no-progress", f"--key={rkey}")
    check(r.returncode == 0 and "acknowledgement" in r.stdout and "checked" in r.stdout,
          f"a log retention cut on the customer's acknowledgement verifies with the key ({r.stdout.strip()})")
    m = re.search(r"Witnessed: records 1\.\.(\d+)", r.stdout)
    check(m and int(m.group(1)) <= records(ret)[-1]["seq"], "verify names the last witnessed size")
    r = cli("verify", f"--dir={ret}", "--no-progress", f"--key={key}")
    check(r.returncode == 1, "... but not with another log's key")
    r = cli("verify", f"--dir={ret}", "--no-progress", f"--witness-key={wkey}")
    check(r.returncode == 1 and "give --key" in r.stdout,
          f"with only a witness key, an acknowledgement cannot be checked: exit 1 ({r.stdout.strip()[:200]})")
