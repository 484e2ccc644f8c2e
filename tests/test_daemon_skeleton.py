#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The daemon skeleton (common/daemon.c) as callhome-collector and callhome-auditd
run it, started as root on a private bus:

  - READY=1 first on NOTIFY_SOCKET, WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1
    at the end, all from a socket opened before the lock-down (the socket here is
    root's alone, mode 0600, so a message sent after the drop went through it);
  - the live daemon is the service user with no groups, NoNewPrivs 1, Seccomp 2,
    and serves calls under the filter that has no socket() and no connect();
  - SIGTERM: exit 0 and the name released; the bus killed, or the bus dropping the
    daemon: exit 1, so Restart=on-failure brings it back;
  - the files of a root-started daemon belong to its user; a state directory with
    a hard link, a symlink or group/other write is refused, naming it, and the file
    the trap leads to is untouched;
  - a start-up failure names the step and the path.
"""
import os
import signal
import socket
import stat
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "harness"))
sys.path.insert(0, os.path.join(HERE, "audit"))
import chtest  # noqa: E402
from chtest import TEST_ADMIN, Harness, check, fail, proc_status, skip_unless_root, uid_of  # noqa: E402
from auditlib import DAEMON as AUDITD, setup_keys  # noqa: E402

COLLECTOR = os.path.join(chtest.BUILD_ROOT, "collector", "callhome-collector")
AUDIT_NAME, AUDIT_PATH = "org.callhome.Audit1", "/org/callhome/Audit1"
COLLECTOR_NAME, COLLECTOR_PATH = "org.callhome.Collector1", "/org/callhome/Collector1"


class NotifySocket:
    """A service manager's notify socket: every datagram, in order."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, f"notify-{time.monotonic_ns()}")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o600)  # root's alone: the service user could not connect to it
        self.sock.settimeout(0.1)
        self.messages = []

    def wait_for(self, proc, line, timeout=20):
        """Receives until a message holding `line`; returns the messages received so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.sock.recv(4096).decode()
                self.messages.append(msg)
                if line in msg.split("\n"):
                    return self.messages
            except socket.timeout:
                if proc is not None and not proc.alive():
                    fail(f"{proc.argv[0]} exited ({proc.popen.returncode}) before sending {line}:\n{proc.output()}")
        fail(f"no {line} in {timeout}s; got {self.messages}")

    def close(self):
        self.sock.close()
        os.unlink(self.path)


def collector(h, state, env=None, name="collector"):
    return h.spawn([COLLECTOR, "--source=sim:1", f"--state-dir={state}"], env=env, name=name)


def auditd(h, d, env=None, name="auditd", extra=()):
    return h.spawn([AUDITD, f"--state-dir={d}", "--epoch-length=1h", "--checkpoint-interval=1h", *extra], env=env,
                   name=name)


def append(h, txn, payload=b"x"):
    return h.busctl("callhome-policy", "call", AUDIT_NAME, AUDIT_PATH, AUDIT_NAME, "Append", "sssaya{ss}",
                    "meter-reads", "outbound", txn, str(len(payload)), *[str(b) for b in payload], "0")


def wait_exit(proc, what, timeout=20):
    try:
        return proc.wait(timeout=timeout)
    except Exception:
        fail(f"{what}: {proc.argv[0]} still runs after {timeout}s")


def check_status(proc, user):
    st = proc_status(proc.pid)
    uid = str(uid_of(user))
    check(st["Uid"].split() == [uid] * 4 and st["Groups"] == "",
          f"{user}: the live daemon is {user} with no supplementary groups")
    check(st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", f"{user}: NoNewPrivs 1, Seccomp 2 (filter mode)")


def run_life(h, kind):
    """Ready, watchdog, served under the filter, SIGTERM: exit 0 and the name released."""
    n = NotifySocket(h.tmp)
    env = {"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": "400000"}
    if kind == "collector":
        name, user = COLLECTOR_NAME, "callhome-collector"
        p = collector(h, os.path.join(h.tmp, "collector-state"), env=env)
    else:
        name, user = AUDIT_NAME, "callhome-audit"
        d = os.path.join(h.tmp, "audit-life")
        setup_keys(d)
        p = auditd(h, d, env=env)
    msgs = n.wait_for(p, "READY=1")
    check(msgs[0].split("\n")[0] == "READY=1", f"{kind}: READY=1 is its first message")
    check(h.name_has_owner(name), f"{kind}: {name} is owned when READY=1 arrives")
    before = len(n.messages)
    for _ in range(3):
        n.wait_for(p, "WATCHDOG=1", timeout=10)
    pings = sum(1 for m in n.messages[before:] if m == "WATCHDOG=1")
    check(pings >= 3, f"{kind}: WATCHDOG=1 keeps arriving with WATCHDOG_USEC set ({pings} pings)")
    check_status(p, user)

    # Calls that make sd-bus ask for the caller's credentials, under the filter.
    if kind == "collector":
        r = h.busctl("callhome-policy", "call", name, COLLECTOR_PATH, name, "GetSnapshot")
        check(r.returncode == 0, f"collector: GetSnapshot answered under the filter ({r.stderr.strip()})")
    else:
        r = append(h, "T-life")
        check(r.returncode == 0, f"auditd: Append answered under the filter ({r.stderr.strip()})")
        r = h.busctl(TEST_ADMIN, "call", name, AUDIT_PATH, name, "ListPending")
        check(r.returncode == 0, f"auditd: ListPending by a member of callhome-admin answered ({r.stderr.strip()})")
    check(p.alive(), f"{kind}: still alive after being served (nothing made a socket)")

    os.kill(p.pid, signal.SIGTERM)
    n.wait_for(p, "STOPPING=1")
    rc = wait_exit(p, f"{kind} after SIGTERM")
    check(rc == 0, f"{kind}: SIGTERM ends it with exit status 0 (got {rc})")
    check(not h.name_has_owner(name), f"{kind}: {name} released")
    n.close()
    h.procs.remove(p)


def run_bus_killed(kind):
    with Harness(f"skeleton-buskill-{kind}") as h:
        if kind == "collector":
            name = COLLECTOR_NAME
            p = collector(h, os.path.join(h.tmp, "state"))
        else:
            name = AUDIT_NAME
            d = os.path.join(h.tmp, "log")
            setup_keys(d)
            p = auditd(h, d)
        h.wait_for_name(name, p)
        h.stop(h.bus, signal.SIGKILL)
        rc = wait_exit(p, f"{kind} with its bus killed")
        check(rc == 1, f"{kind}: the bus killed (dbus-daemon SIGKILLed by PID), it exits 1 (got {rc})")
        check("Lost the connection to the bus" in p.output(), f"{kind}: it says it lost the bus")


def run_bus_drops_auditd():
    """dbus-daemon disconnects a client that sends a message over max_message_size:
    a ListPending reply bigger than that, and auditd is dropped by the bus."""
    conf = chtest.BUS_CONF
    chtest.BUS_CONF = conf.replace('<limit name="max_message_size">33554432</limit>',
                                   '<limit name="max_message_size">16384</limit>')
    try:
        with Harness("skeleton-busdrop") as h:
            d = os.path.join(h.tmp, "log")
            setup_keys(d)
            p = auditd(h, d)
            h.wait_for_name(AUDIT_NAME, p)
            for i in range(3):
                r = append(h, f"T-big-{i}", payload=bytes(6000))
                if r.returncode != 0:
                    fail(f"Append of 6000 bytes failed: {r.stderr}")
            r = h.busctl("root", "call", AUDIT_NAME, AUDIT_PATH, AUDIT_NAME, "ListPending")
            check(r.returncode != 0, "a ListPending reply over the bus' max_message_size never arrives")
            rc = wait_exit(p, "auditd dropped by the bus")
            check(rc == 1, f"auditd: dropped by dbus-daemon, it exits 1 (got {rc})")
            check(h.bus.alive() and not h.name_has_owner(AUDIT_NAME),
                  "dbus-daemon still runs and nobody holds org.callhome.Audit1")
    finally:
        chtest.BUS_CONF = conf


def run_ownership(h):
    uid = uid_of("callhome-audit")
    d = os.path.join(h.tmp, "audit-owned")
    setup_keys(d)
    p = auditd(h, d, name="auditd-owned", extra=["--segment-size=4K"])
    h.wait_for_name(AUDIT_NAME, p)
    for i in range(8):
        r = append(h, f"T-owned-{i}", payload=bytes(1000))
        if r.returncode != 0:
            fail(f"Append failed: {r.stderr}")
    segs = [f for f in os.listdir(d) if f.endswith(".seg")]
    check(len(segs) >= 2, f"the log rotated ({len(segs)} segments)")
    r = h.busctl(TEST_ADMIN, "call", AUDIT_NAME, AUDIT_PATH, AUDIT_NAME, "GetRecord", "t", "1")
    check(r.returncode == 0, f"after the rotation, a member of callhome-admin reads record 1 ({r.stderr.strip()})")
    h.stop(p)
    h.procs.remove(p)
    files = sorted(os.listdir(d))
    wrong = [(f, os.lstat(os.path.join(d, f)).st_uid) for f in files if os.lstat(os.path.join(d, f)).st_uid != uid]
    check(any(f.endswith(".seg") for f in files) and not wrong,
          f"auditd started as root: every file, the first segment and the index too, is callhome-audit's "
          f"({len(files)} files; not: {wrong})")

    cuid = uid_of("callhome-collector")
    s = os.path.join(h.tmp, "collector-owned")
    p = collector(h, s, name="collector-owned")
    h.wait_for_name(COLLECTOR_NAME, p)
    h.stop(p)
    h.procs.remove(p)
    st = os.lstat(s)
    wrong = [f for f in os.listdir(s) if os.lstat(os.path.join(s, f)).st_uid != cuid]
    check(st.st_uid == cuid and stat.S_IMODE(st.st_mode) == 0o700 and os.listdir(s) and not wrong,
          "collector started as root: its state directory (0700) and files are callhome-collector's")


def expect_refused(h, kind, d, words, name):
    p = auditd(h, d, name=name) if kind == "auditd" else collector(h, d, name=name)
    rc = wait_exit(p, f"{kind} with an unsafe state directory")
    out = p.output()
    h.procs.remove(p)
    ok = rc == 1 and d in out and all(w in out for w in words)
    check(ok, f"{kind}: refused, naming {d} and why ({' '.join(words)}): {out.strip()[-300:]}")


def run_traps(h):
    target = os.path.join(h.tmp, "target")
    with open(target, "w") as f:
        f.write("root's own\n")
    os.chmod(target, 0o600)

    def untouched(what):
        st = os.lstat(target)
        with open(target) as f:
            same = f.read() == "root's own\n"
        check(st.st_uid == 0 and st.st_gid == 0 and stat.S_IMODE(st.st_mode) == 0o600 and same,
              f"{what}: the file the trap leads to is untouched (root:root 0600, same content)")

    for kind in ("auditd", "collector"):
        user = "callhome-audit" if kind == "auditd" else "callhome-collector"
        d = os.path.join(h.tmp, f"trap-{kind}")
        if kind == "auditd":
            setup_keys(d)  # handed to callhome-audit, as after a first start
        else:
            os.mkdir(d, 0o700)
            os.chown(d, uid_of(user), chtest.gid_of(user))
        trap = os.path.join(d, "index" if kind == "auditd" else "highwater")
        os.link(target, trap)
        expect_refused(h, kind, d, [os.path.basename(trap), "hard link"], f"{kind}-hardlink")
        untouched(f"{kind}: a hard link in its directory")
        os.unlink(trap)
        os.symlink(target, trap)
        expect_refused(h, kind, d, [os.path.basename(trap), "symbolic link"], f"{kind}-symlink")
        untouched(f"{kind}: a symlink in its directory")
        os.unlink(trap)
        os.chmod(d, 0o777)
        expect_refused(h, kind, d, ["writable by group or others"], f"{kind}-mode")
        os.chmod(d, 0o700)

    # A root-owned directory is handed over only when nothing in it leads elsewhere.
    d = os.path.join(h.tmp, "trap-root-owned")
    setup_keys(d)
    os.chown(d, 0, 0)
    os.link(target, os.path.join(d, "index"))
    expect_refused(h, "auditd", d, ["index", "hard link"], "auditd-root-owned")
    untouched("auditd: a hard link in a root-owned directory it would hand over")


def run_named_failures(h):
    d = os.path.join(h.tmp, "no-such-parent", "state")
    p = collector(h, d, name="collector-noparent")
    rc = wait_exit(p, "collector without a parent directory")
    h.procs.remove(p)
    check(rc == 1 and f"State directory {d}: cannot create it: No such file or directory" in p.output(),
          f"a state directory that cannot be made is named with the step: {p.output().strip()}")
    s = os.path.join(h.tmp, "collector-nobus")
    p = collector(h, s, env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={h.tmp}/no-bus"}, name="collector-nobus")
    rc = wait_exit(p, "collector without a bus")
    h.procs.remove(p)
    check(rc == 1 and f"Bus: cannot connect to unix:path={h.tmp}/no-bus" in p.output(),
          f"no bus: the step and the address are named: {p.output().strip()}")


skip_unless_root("the daemon skeleton test")
with Harness("skeleton") as h:
    run_life(h, "collector")
    run_life(h, "auditd")
    run_ownership(h)
    run_traps(h)
    run_named_failures(h)
run_bus_killed("collector")
run_bus_killed("auditd")
run_bus_drops_auditd()
