#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Hostile logs and hostile bytes: callhome-audit stays linear, prints nothing a
terminal would act on, writes only valid JSON, and reports odd segment files.

  - linear work: a torn tail full of record headers (one every 8 bytes, each
    claiming to reach the end of the file) and a log claiming epoch 2^26 are
    refused by verify and show (the scan the daemon recovers with) within a
    CPU-seconds limit the quadratic / spinning versions overrun by minutes
  - output: records whose type, transaction id, metadata and payload hold ESC
    sequences, C1 controls (raw 0x9b and U+009B), a bidi override, overlong
    forms, surrogates and code points beyond U+10FFFF, and a checkpoint note
    with an unsigned extra signature line, go through show, show -o json,
    export, export --journal-export, stats, stats -o json and checkpoint
  - segment-named symlinks, FIFOs and directories are violations, not skipped;
    --checkpoint-key takes key text that holds '/'
"""
import base64
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import CLI, CPU_LIMIT_SECONDS, DAEMON, TOOL, Notify, cli, crc32c, gen, run_cpu_limited, setup_keys
from chtest import Harness, check, fail


def tool(*args, stdin=b""):
    r = subprocess.run([TOOL] + list(args), input=stdin, capture_output=True, timeout=120)
    if r.returncode != 0:
        fail(f"audit-testtool {' '.join(args)} failed: {r.stderr.decode(errors='replace')}")
    return r


def raw(*args):
    """callhome-audit with its output as bytes."""
    return subprocess.run([CLI] + list(args), capture_output=True, timeout=120)


def fresh_log(h, name, records=5):
    d = os.path.join(h.tmp, name)
    os.mkdir(d)
    key = setup_keys(d)
    gen(d, records)
    return d, key


# --- item: linear time on any input ------------------------------------------------
def linear_work(h):
    d, key = fresh_log(h, "magic-tail", 20)
    tool("craft", d, "magic-tail", str(4 << 20))
    for extra in ([], ["--threads=1"], [f"--key={key}"]):
        r = run_cpu_limited([CLI, "verify", f"--dir={d}", "--no-progress"] + extra)
        check(r.returncode == 1 and "full of record headers" in r.stdout and "not a torn write" in r.stdout,
              f"a 4 MiB tail of record headers: verify {' '.join(extra)} fails in linear work ({r.stdout.strip()})")
    r = run_cpu_limited([CLI, "show", f"--dir={d}"])  # allows a torn tail, as the daemon's recovery does
    check(r.returncode == 1 and "not a torn write" in r.stderr and r.stdout.count("\n") == 1 + 21,
          f"... show (a torn tail allowed) refuses to take it for one, in linear work: {r.stderr.strip()}")
    # The daemon's start-up scan, under the same CPU limit: ready, appends refused, nothing cut.
    size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d) if x.endswith(".seg"))
    n = Notify(h.tmp)
    p = h.spawn(["prlimit", f"--cpu={CPU_LIMIT_SECONDS}:{CPU_LIMIT_SECONDS + 1}", "--", DAEMON, f"--state-dir={d}"],
                env={"NOTIFY_SOCKET": n.path}, name="auditd-magic-tail")
    try:
        n.wait_ready(p)
    finally:
        n.close()
    h.stop(p)
    check("Appends refused" in p.output() and "not a torn write" in p.output() and
          size == sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d) if x.endswith(".seg")),
          f"callhome-auditd starts in linear work, refuses appends and cuts nothing: {p.output().strip()[:300]}")

    d, key = fresh_log(h, "far-epoch")
    tool("craft", d, "far-epoch", str(1 << 26), "3")
    for extra in ([], ["--threads=1"]):
        r = run_cpu_limited([CLI, "verify", f"--dir={d}", "--no-progress", f"--key={key}"] + extra)
        check(r.returncode == 1 and "epoch 67108864, 67108864 epochs after the key given" in r.stdout,
              f"a log claiming epoch 2^26: verify --key {' '.join(extra)} refuses to derive that key ({r.stdout.strip()})")

    # A trimmed log's first epoch is at most the number of records before it.
    seg = os.path.join(d, os.listdir(d)[[n.endswith(".seg") for n in os.listdir(d)].index(True)])
    with open(seg, "r+b") as f:
        buf = bytearray(f.read())
        first = int.from_bytes(buf[16:24], "little")
        buf[24:32] = first.to_bytes(8, "little")
        end = 72 + 32 * int.from_bytes(buf[64:68], "little")
        buf[end:end + 4] = crc32c(bytes(buf[:end])).to_bytes(4, "little")
        f.seek(0)
        f.write(buf)
    r = run_cpu_limited([CLI, "verify", f"--dir={d}", "--no-progress"])
    check(r.returncode == 1 and "starts in an epoch beyond the records before it" in r.stdout,
          f"a first segment in epoch {first} after {first - 1} records is refused ({r.stdout.strip()})")

    # Within reach: the key is derived and every MAC checked (the log fails only for its missing retention record).
    d, key = fresh_log(h, "near-epoch")
    tool("craft", d, "far-epoch", "1000", "2000", "mac")
    r = run_cpu_limited([CLI, "verify", f"--dir={d}", "--no-progress", f"--key={key}", "--threads=1"])
    check(r.returncode == 1 and "no retention record accounts" in r.stdout,
          f"a trimmed log in epoch 1000 of 2000 records: the key reaches it, all MACs pass ({r.stdout.strip()})")


# --- item: hostile bytes reach neither the terminal nor the JSON ----------------------------
TYPE = b"meter\x1b[2J\x9b31m\xc2\x9b1m"
TXN = b"SN\xe2\x80\xae1\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80"
META = b"v\x1b]0;title\x07\xff"
PAYLOADS = [
    b"hello \x1b[31mred\x1b[0m \xc2\x9b2J text",          # valid UTF-8 with ESC and U+009B
    b"over\xc0\xaflong \xed\xa0\x80 \xf4\x90\x80\x80 \x9b",  # invalid UTF-8
    "caf\u00e9 \u20ac plain\ntext".encode(),             # harmless non-ASCII text
]
BAD_CPS = {0x7f, 0x202e} | set(range(0x80, 0xa0))


def terminal_safe(out, what):
    try:
        text = out.decode("utf-8")
    except UnicodeDecodeError as e:
        fail(f"{what}: not valid UTF-8 on the terminal: {e}")
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or ord(c) in BAD_CPS]
    check(not bad, f"{what}: no control characters, C1 or bidi overrides reach the terminal "
          f"({[hex(ord(c)) for c in bad][:5]})")
    return text


def strict_json_lines(out, what):
    objs = []
    for line in out.split(b"\n"):
        if not line:
            continue
        try:
            objs.append(json.loads(line.decode("utf-8")))  # strict: no surrogates, no overlongs
        except (UnicodeDecodeError, ValueError) as e:
            fail(f"{what}: not strict UTF-8 JSON: {e}: {line[:200]!r}")
    check(objs, f"{what}: {len(objs)} JSON object(s), all strict UTF-8 JSON")
    return objs


def journal_fields(out):
    """Journal Export Format: NAME=text lines, or NAME\\n le64 length, bytes, \\n."""
    fields, i = [], 0
    while i < len(out):
        eol = out.index(b"\n", i)
        line = out[i:eol]
        if not line:
            i = eol + 1
            continue
        if b"=" in line:
            name, _, value = line.partition(b"=")
            fields.append((name, value, True))
            i = eol + 1
        else:
            n = int.from_bytes(out[eol + 1:eol + 9], "little")
            fields.append((line, out[eol + 9:eol + 9 + n], False))
            i = eol + 9 + n + 1
    return fields


def hostile_output(h):
    d, key = fresh_log(h, "hostile", 3)
    for p in PAYLOADS:
        tool("append", d, "data", TYPE.hex(), TXN.hex(), "attempt", META.hex(), stdin=p)
    note_extra = "\u2014 evil\x1b]0;pwned\x07 AAAA\n".encode() + b"\xe2\x80\x94 other \x9b1m QUFBQQ==\n"
    tool("append", d, "checkpoint", b"audit.checkpoint".hex(), "", stdin=note_extra)
    check(cli("verify", f"--dir={d}", f"--key={key}").returncode == 0, "the hostile records verify (valid chain and MACs)")

    for args in (["show"], ["stats"], ["checkpoint"]):
        r = raw(*args, f"--dir={d}")
        check(r.returncode == 0, f"{args[0]} exits 0: {r.stderr!r}")
        text = terminal_safe(r.stdout, args[0])
        if args[0] == "show":
            check("\\x1b[2J\\x9b31m\\xc2\\x9b1m" in text and "\\xe2\\x80\\xae" in text,
                  "show writes the type's and transaction's unprintable bytes as \\xHH")
            check("café € plain text" in text, "show keeps printable non-ASCII text as it is")
        if args[0] == "checkpoint":
            sigs = text.split("\n\n", 1)[1].strip().split("\n")
            check(len(sigs) == 1 and sigs[0].startswith("\u2014 test.callhome/audit "),
                  f"checkpoint prints only the signature line of the log's key, not the unsigned ones ({sigs})")
            check(cli("verify", f"--dir={d}", f"--checkpoint={write(h, 'cp', r.stdout)}").returncode == 0,
                  "the note checkpoint prints is one verify takes as a witness")

    shown = strict_json_lines(raw("show", f"--dir={d}", "-o", "json").stdout, "show -o json")
    exported = strict_json_lines(raw("export", f"--dir={d}").stdout, "export")
    strict_json_lines(raw("stats", f"--dir={d}", "-o", "json").stdout, "stats -o json")
    for objs, what in ((shown, "show -o json"), (exported, "export")):
        hostile = [o for o in objs if o.get("type_base64")]
        check(len(hostile) == len(PAYLOADS) and all(base64.b64decode(o["type_base64"]) == TYPE and
                                                    base64.b64decode(o["txn_base64"]) == TXN for o in hostile),
              f"{what}: a type or transaction id that is not valid UTF-8 has its exact bytes in *_base64")
        for o in hostile:
            terminal_safe((o["type"] + o["txn"] + o.get("summary", "") + json.dumps(o["metadata"])).encode(),
                          f"{what}: the escaped type, txn, summary, metadata")
    data = [o for o in exported if o.get("type_base64")]
    for o, p in zip(data, PAYLOADS):
        check(base64.b64decode(o["payload_base64"]) == p, "export: payload_base64 holds the exact payload")
        try:
            valid = p.decode("utf-8") is not None
        except UnicodeDecodeError:
            valid = False
        check(("payload" in o) == valid and (not valid or o["payload"] == p.decode()),
              f"export: 'payload' is there exactly when the payload is valid UTF-8 ({p[:12]!r})")

    fields = journal_fields(raw("export", f"--dir={d}", "--journal-export").stdout)
    texts = [v for _, v, is_text in fields if is_text]
    terminal_safe(b"\n".join(texts), "export --journal-export text fields")
    check(sum(1 for n, v, t in fields if not t and v == TYPE) == len(PAYLOADS),
          "export --journal-export: a type that is not printable text goes in the binary form, exact")


def write(h, name, data):
    p = os.path.join(h.tmp, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


# --- item: odd segment files; key text with '/' ----------------------------------------------
def odd_files(h):
    d, key = fresh_log(h, "odd")
    name = "00000000000000ff.seg"
    target = os.path.join(d, name)
    for what, make in (("a symbolic link", lambda: os.symlink("0000000000000001.seg", target)),
                       ("a FIFO", lambda: os.mkfifo(target)),
                       ("a directory", lambda: os.mkdir(target))):
        make()
        for extra in ([], ["--threads=1"]):
            r = cli("verify", f"--dir={d}", "--no-progress", *extra)
            check(r.returncode == 1 and f"file {name}" in r.stdout and f"is {what}, not a regular file" in r.stdout,
                  f"a segment name that is {what}: verify {' '.join(extra)} reports it ({r.stdout.strip()})")
        r = cli("show", f"--dir={d}")
        check(r.returncode == 1 and "not a regular file" in r.stderr, f"... and show warns of it ({r.stderr.strip()})")
        if what == "a directory":
            os.rmdir(target)
        else:
            os.unlink(target)
    check(cli("verify", f"--dir={d}").returncode == 0, "once it is gone the log verifies")

    with open(os.path.join(d, "checkpoint.pub")) as f:
        vkey = f.read().strip()
    check("/" in vkey, f"the verifier key text holds '/' ({vkey})")
    elsewhere = os.path.join(h.tmp, "elsewhere")
    shutil.copytree(d, elsewhere)
    os.unlink(os.path.join(elsewhere, "checkpoint.pub"))
    r = cli("verify", f"--dir={elsewhere}", f"--checkpoint-key={vkey}")
    check(r.returncode == 0, f"--checkpoint-key=TEXT with '/' is taken as key text ({r.stdout.strip()} {r.stderr.strip()})")
    r = cli("verify", f"--dir={elsewhere}", f"--checkpoint-key={write(h, 'vkey.txt', vkey.encode())}")
    check(r.returncode == 0, "--checkpoint-key=FILE still reads the key from the file")
    r = cli("verify", f"--dir={elsewhere}", "--checkpoint-key=no-such-key")
    check(r.returncode == 2 and "Not a checkpoint verifier key, nor a file" in r.stderr,
          f"--checkpoint-key that is neither: a clear usage error ({r.stderr.strip()})")


with Harness("audit-hostile") as h:
    linear_work(h)
    hostile_output(h)
    odd_files(h)
print("audit-hostile: all checks passed")
