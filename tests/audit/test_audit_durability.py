#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Durability ordering of callhome-auditd, seen in its system calls (strace).

  (a) every Append is answered only after an fdatasync of the segment it was
      written to, issued after that write: the record's pwrite64 (found by
      the chain hash it carries), then fdatasync of that file, then the
      sendmsg of the method return (found by the same hash in its body);
  (b) group commit: with 8 clients appending at once, there are clearly
      fewer fdatasync calls on the segments than appends;
  (c) a new segment is written under a temporary name, its header synced,
      renamed, and the directory (an fd opened O_DIRECTORY on the state
      directory) is fsynced before the first append into it is answered.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import DAEMON, Notify, setup_keys
from chtest import Harness, check, fail, skip_unless_root, wait_exit

skip_unless_root("the audit durability test")
if not os.path.exists("/usr/bin/strace"):
    print("SKIP: strace is not installed")
    sys.exit(77)
with open(DAEMON, "rb") as f:
    SANITIZED = b"__asan_init" in f.read()

TRACED = "pwrite64,pwritev,pwritev2,write,writev,fdatasync,fsync,sync_file_range,sendmsg,sendto,rename,renameat,renameat2,openat"

CLIENT = r"""
import dbus, sys
bus = dbus.bus.BusConnection(sys.argv[1])
audit = dbus.Interface(bus.get_object("org.callhome.Audit1", "/org/callhome/Audit1"), "org.callhome.Audit1")
me, n, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    txn = f"{me}-{i}"
    seq, h = audit.Append("meter-reads", "outbound", txn, dbus.ByteArray(txn.encode() * (size // len(txn) + 1)),
                          {"client": me}, timeout=60)
    print("ACK", int(seq), txn, bytes(h).hex(), flush=True)
"""


class TracedDaemon:
    """The daemon started by strace (its child, not ours): stopped by its PID,
    also when the test fails, through the harness like any other process."""

    def __init__(self, pid):
        self.pid = pid
        self.popen = self
        self.argv = ["callhome-auditd (under strace)"]
        self.returncode = None
        with open(f"/proc/{pid}/stat") as f:
            self.start = f.read().rsplit(")", 1)[1].split()[19]

    def poll(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            if st[19] == self.start and st[0] != "Z":
                return None
        except OSError:
            pass
        self.returncode = 0
        return 0

    def wait(self, timeout=10):
        """Its exit, woken by its pidfd (it is strace's child, not ours)."""
        if self.poll() is None and wait_exit([self.pid], timeout):
            raise subprocess.TimeoutExpired(self.argv, timeout)
        return self.poll()

    def alive(self):
        return self.poll() is None

    def output(self):
        return ""


def start_traced(h, d, trace, *extra):
    n = Notify(h.tmp)
    env = {"NOTIFY_SOCKET": n.path}
    if SANITIZED:  # LeakSanitizer cannot stop the world under ptrace; leaks are checked by the other tests
        env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    st = h.spawn(["strace", "-f", "-tt", "-y", "-xx", "-s", "65536", "-e", f"trace={TRACED}", "-o", trace,
                  DAEMON, f"--state-dir={d}"] + list(extra), env=env, name="strace-auditd")
    try:
        n.wait_ready(st)
    finally:
        n.close()
    with open(f"/proc/{st.pid}/task/{st.pid}/children") as f:
        kids = f.read().split()
    if len(kids) != 1:
        fail(f"strace has children {kids}, expected the daemon alone")
    dm = TracedDaemon(int(kids[0]))
    h.procs.append(dm)
    return st, dm


def stop_traced(h, st, dm):
    """SIGTERM to the daemon by its PID; strace then ends with the daemon's exit status."""
    h.stop(dm)
    try:
        st.wait(timeout=30)
    except subprocess.TimeoutExpired:
        h.stop(st)
    check(st.popen.returncode == 0, f"the traced daemon stopped cleanly on SIGTERM (status {st.popen.returncode})")


# --- the trace ---------------------------------------------------------------------------------
LINE = re.compile(r"^(\d+)\s+\d\d:\d\d:\d\d\.\d+\s+(.*)$")
CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(.*)$")
HEXSTR = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')
FDPATH = re.compile(r"^(\d+)<((?:\\x[0-9a-f]{2})*)>")


def unhex(s):
    return bytes.fromhex(s.replace("\\x", ""))


class Event:
    def __init__(self, start, end, pid, name, args, ret, rest):
        self.start, self.end, self.pid, self.name, self.args, self.ret = start, end, pid, name, args, ret
        m = FDPATH.match(args)
        self.fd = int(m.group(1)) if m else None
        self.path = unhex(m.group(2)).decode(errors="replace") if m else None
        self.strings = [unhex(s) for s in HEXSTR.findall(args)]
        self.data = b"".join(self.strings)
        self.ret_path = unhex(re.match(r"^\s*<((?:\\x[0-9a-f]{2})*)>", rest).group(1)).decode() \
            if ret.isdigit() and re.match(r"^\s*<", rest) else None

    def __repr__(self):
        return f"#{self.start} {self.name}({self.fd}<{self.path}>) = {self.ret}"


def parse_trace(path):
    events, pending = [], {}
    with open(path) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        m = LINE.match(line)
        if not m:
            continue
        pid, text = int(m.group(1)), m.group(2)
        if text.endswith("<unfinished ...>"):
            pending[pid] = (i, text[:-len("<unfinished ...>")].rstrip())
            continue
        start = i
        rm = re.match(r"^<\.\.\. (\w+) resumed>(.*)$", text)
        if rm:
            if pid not in pending:
                continue
            start, head = pending.pop(pid)
            text = head + rm.group(2)
        cm = CALL.match(text)
        if cm:
            events.append(Event(start, i, pid, cm.group(1), cm.group(2), cm.group(3), cm.group(4)))
    return events


def is_seg(path):
    return path is not None and path.endswith(".seg")


def method_return_with(e, blob):
    """A sendmsg carrying a D-Bus method return (message type 2) whose bytes hold `blob`."""
    return (e.name in ("sendmsg", "sendto") or e.name.startswith("write") and (e.path or "").startswith("socket:")) and \
        len(e.data) > 1 and e.data[1] == 2 and blob in e.data


def check_synced_before_reply(ev, acked, what):
    """(a): write of the record -> fdatasync of its file -> the reply. Returns {hash: (write, reply)}."""
    out, bad = {}, []
    for seq, txn, hh in acked:
        hb = bytes.fromhex(hh)
        w = next((e for e in ev if e.name.startswith("pwrite") and is_seg(e.path) and hb in e.data and txn.encode() in e.data), None)
        rep = next((e for e in ev if method_return_with(e, hb)), None)
        if w is None or rep is None:
            bad.append(f"seq {seq}: write {w}, reply {rep}")
            continue
        sync = next((e for e in ev if e.name == "fdatasync" and e.path == w.path and w.end < e.start and e.end < rep.start
                     and e.ret == "0"), None)
        if sync is None:
            bad.append(f"seq {seq}: written at #{w.start} to {os.path.basename(w.path)}, answered at #{rep.start}, "
                       f"no fdatasync of that file in between")
        out[hh] = (w, rep)
    check(not bad, f"{what}: each of {len(acked)} appends was answered only after an fdatasync of its segment that "
                   f"followed its write ({bad[:3]})")
    return out


def run_clients(h, n, per, size):
    cs = [h.spawn(["/usr/bin/python3", "-c", CLIENT, h.address, f"c{i}", str(per), str(size)], user="callhome-policy",
                  name=f"client{i}") for i in range(n)]
    for c in cs:
        try:
            c.wait(timeout=120)
        except subprocess.TimeoutExpired:
            fail("a client did not finish its appends in time")
    acked = []
    for c in cs:
        if c.popen.returncode != 0:
            fail(f"a client failed:\n{c.output()}")
        for line in c.output().splitlines():
            if line.startswith("ACK "):
                _, seq, txn, hh = line.split()
                acked.append((int(seq), txn, hh))
    if len(acked) != n * per:
        fail(f"{len(acked)} appends acknowledged, {n * per} sent")
    return acked


with Harness("audit-durability") as h:
    if SANITIZED:
        print("# sanitizer build: the traced daemon runs with detect_leaks=0 (LeakSanitizer cannot work under ptrace)")

    # --- (a) and (c): one client, small segments -------------------------------------------------
    d = os.path.realpath(os.path.join(h.tmp, "log"))
    setup_keys(d)
    trace = os.path.join(h.tmp, "trace-segments")
    st, dm = start_traced(h, d, trace, "--segment-size=4K", "--checkpoint-interval=1h", "--epoch-length=1h")
    acked = run_clients(h, 1, 30, 700)
    stop_traced(h, st, dm)
    ev = parse_trace(trace)
    check(any(e.name == "fdatasync" for e in ev) and any(e.name == "sendmsg" for e in ev),
          f"the trace holds the daemon's syncs and bus messages ({len(ev)} calls)")
    wr = check_synced_before_reply(ev, acked, "one client")

    renames = [e for e in ev if e.name.startswith("rename") and len(e.strings) == 2 and e.strings[1].endswith(b".seg")]
    first_write = {}
    for hh, (w, rep) in wr.items():
        name = os.path.basename(w.path)
        if name not in first_write or w.start < first_write[name][0].start:
            first_write[name] = (w, rep)
    created = [r for r in renames if r.strings[1].decode() in first_write and
               first_write[r.strings[1].decode()][0].start > r.end]
    check(len(created) >= 4, f"{len(created)} segments were created while clients appended (4K segments)")
    bad = []
    for r in created:
        tmp, name = r.strings[0].decode(), r.strings[1].decode()
        w, rep = first_write[name]
        hdr = next((e for e in ev if e.name.startswith("pwrite") and e.path and e.path.endswith("/" + tmp) and e.end < r.start), None)
        hsync = next((e for e in ev if e.name in ("fdatasync", "fsync") and e.path and e.path.endswith("/" + tmp)
                      and hdr is not None and hdr.end < e.start and e.end < r.start), None)
        dsync = next((e for e in ev if e.name == "fsync" and e.path == d and r.end < e.start and e.end < rep.start
                      and e.ret == "0"), None)
        opened = None
        if dsync is not None:
            opened = next((o for o in reversed(ev) if o.end < dsync.start and o.name == "openat" and o.ret == str(dsync.fd)),
                          None)
        if hdr is None or hsync is None:
            bad.append(f"{name}: header not written and synced under {tmp} before the rename")
        elif dsync is None:
            bad.append(f"{name}: renamed at #{r.start}, first append answered at #{rep.start}, no fsync of {d} between")
        elif opened is None or "O_DIRECTORY" not in opened.args or opened.ret_path != d:
            bad.append(f"{name}: the fsync'ed fd {dsync.fd} was not opened O_DIRECTORY on the state directory ({opened})")
    check(not bad, f"each new segment: header written and synced under a temporary name, renamed, then the directory "
                   f"fsynced (fd opened O_DIRECTORY) before the first append into it was answered ({bad[:3]})")

    # --- (a) and (b): 8 clients at once ----------------------------------------------------------
    d = os.path.realpath(os.path.join(h.tmp, "log8"))
    setup_keys(d)
    trace = os.path.join(h.tmp, "trace-burst")
    st, dm = start_traced(h, d, trace, "--checkpoint-interval=1h", "--epoch-length=1h")
    acked = run_clients(h, 8, 40, 200)
    stop_traced(h, st, dm)
    ev = parse_trace(trace)
    check_synced_before_reply(ev, acked, "8 clients")
    writes = [e for e in ev if e.name.startswith("pwrite") and is_seg(e.path) and any(
        t.encode() in e.data for t in ("c0-", "c1-", "c2-", "c3-", "c4-", "c5-", "c6-", "c7-"))]
    syncs = [e for e in ev if e.name == "fdatasync" and is_seg(e.path)]
    check(len(writes) == len(acked), f"{len(writes)} record writes for {len(acked)} appends")
    check(len(syncs) * 2 <= len(acked),
          f"group commit: {len(syncs)} fdatasync calls for {len(acked)} appends from 8 concurrent clients "
          f"({len(acked) / max(len(syncs), 1):.1f} appends per sync)")
