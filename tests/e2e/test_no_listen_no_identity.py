#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The demo's whole run, watched: no callhome process listens on any network
socket at any time (S6), and nothing that identifies the customer reaches the
server (S7).

Listening: while the demo runs, every daemon's file descriptors are sampled
over and over; each socket's inode is looked up in the daemon's own
/proc/PID/net/{tcp,tcp6,udp,udp6,raw,raw6}. A TCP socket in LISTEN, or a UDP or
raw socket with no remote end (it would take datagrams from anyone), is a
listening socket. The net-worker's connections must be seen (the sampling sees
sockets at all) and none may listen.

Identity: the run happens in a UTS namespace of its own whose host name is a
canary; the printer's counter tree holds a planted job name and job user beside
its counters (as a driver might expose them); the machine's own user names
(uid >= 1000, and the test accounts), its non-loopback IP addresses and the
credentials of the customer's proxy are canaries too. The reference server logs every byte it receives, as plaintext
(the TLS is its own); none of its inbound messages may contain any canary."""
import base64
import importlib.util
import json
import os
import pwd
import socket
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from chtest import SOURCE_ROOT, TEST_ADMIN, TEST_OTHER, check, ensure_users, skip_unless_root  # noqa: E402

CANARY_HOST = "printer-of-acme-canary-host-7c41"
CANARY_JOB = "Acme quarterly payroll canary-job-7c41.pdf"
CANARY_JOB_USER = "jdoe-canary-user-7c41"

skip_unless_root("the demo")
if os.environ.get("CALLHOME_E2E_UTS") != "1":
    # A host name of our own, in a namespace of our own: the machine's stays as it is.
    os.environ["CALLHOME_E2E_UTS"] = "1"
    os.execvp("unshare", ["unshare", "--uts", "--", sys.executable] + sys.argv)
socket.sethostname(CANARY_HOST)
check(subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip() == CANARY_HOST,
      f"the run's host name is the canary {CANARY_HOST}")

spec = importlib.util.spec_from_file_location("demo", os.path.join(SOURCE_ROOT, "scripts", "demo.py"))
demo_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo_mod)

ensure_users()
canaries = {CANARY_HOST, CANARY_JOB, CANARY_JOB_USER, TEST_ADMIN, TEST_OTHER,
            demo_mod.PROXY_USER, demo_mod.PROXY_PASSWORD}  # the proxy's credentials are the proxy's alone
canaries |= {p.pw_name for p in pwd.getpwall() if p.pw_uid >= 1000 and p.pw_uid != 65534 and len(p.pw_name) >= 4}
addrs = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout)
canaries |= {a["local"] for i in addrs for a in i.get("addr_info", [])
             if not a["local"].startswith("127.") and a["local"] != "::1"}
print(f"# canaries: {sorted(canaries)}")

NET_FILES = ("tcp", "tcp6", "udp", "udp6", "raw", "raw6")


def inet_sockets(pid):
    """{inode: (proto, state, local, remote)} of the inet sockets pid holds."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
    except OSError:
        return {}
    out = {}
    for proto in NET_FILES:
        try:
            with open(f"/proc/{pid}/net/{proto}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            col = line.split()
            if len(col) > 9 and col[9] in inodes:
                out[col[9]] = (proto, col[3], col[1], col[2])
    return out


def listening(sock):
    proto, state, _local, remote = sock
    if proto.startswith("tcp"):
        return state == "0A"
    return set(remote.split(":")[0]) <= {"0"}  # udp, raw: no remote end


class Watch(demo_mod.Hooks):
    printer_extra = {"jobs/last/name": CANARY_JOB, "jobs/last/user": CANARY_JOB_USER}

    def __init__(self):
        self.stop = threading.Event()
        self.samples = 0
        self.seen = {}
        self.listeners = []

    def started(self, demo):
        self.demo = demo
        self.pids = demo.daemon_pids()
        check(len(self.pids) == 4, f"watching the four daemons {self.pids}")
        self.thread = threading.Thread(target=self.run, daemon=True)  # never outlives a failed demo
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            for name, pid in self.pids.items():
                for inode, sock in inet_sockets(pid).items():
                    self.seen.setdefault(name, set()).add(inode)
                    if listening(sock):
                        self.listeners.append((name, pid, sock))
            self.samples += 1
            self.stop.wait(0.01)

    def finished(self, demo):
        self.stop.set()
        self.thread.join()
        for name, pid in self.pids.items():
            check(os.path.exists(f"/proc/{pid}"), f"{name} (pid {pid}) ran the whole walkthrough")
        with open(demo.message_log, "rb") as f:
            self.log = f.read()
        self.printer = demo.printer


w = Watch()
rc = demo_mod.main([], hooks=w)
check(rc == 0, "the demo's walkthrough succeeded")

print(f"# {w.samples} samples; inet sockets seen: { {k: len(v) for k, v in w.seen.items()} }")
check(w.samples >= 20, f"the daemons' sockets were sampled throughout the run ({w.samples} times)")
check(len(w.seen.get("net", ())) >= 1, "the sampling saw the net-worker's connections to the server")
check(set(w.seen) <= {"net"}, f"no daemon but the net-worker ever held a network socket ({sorted(w.seen)})")
check(not w.listeners, f"no callhome process listened on a network socket at any sample {w.listeners[:3]}")

received = []
for line in w.log.splitlines():
    rec = json.loads(line)
    if rec.get("dir") != "in":
        continue
    body = rec.get("body", "").encode()
    if "body_b64" in rec:
        body = base64.b64decode(rec["body_b64"])
    received.append(body)
check(all(any(op in b for b in received) for op in (b"<CheckIn", b"<SubmitMeterReads", b"<SubmitSupplies")),
      f"the server logged the {len(received)} messages it received (a check-in, meter reads, supplies)")
for c in sorted(canaries):
    hits = [b[:200] for b in received if c.encode() in b or c.lower().encode() in b.lower()]
    check(not hits, f"the canary {c!r} is in no byte the server received {hits[:1]}")
