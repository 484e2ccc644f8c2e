# SPDX-License-Identifier: Apache-2.0
"""Test harness for callhome: real users, a private system-like bus, real daemons.

    from chtest import Harness, skip_unless_root

    with Harness("bus-policy") as h:          # tmp dir, users (as root), private bus
        d = h.spawn([h.exe("auditd/callhome-auditd"), ...])   # started as root; drops itself
        h.wait_for_name("org.callhome.Audit1")
        r = h.busctl("callhome-policy", "call", "org.callhome.Audit1", ...)
    # on exit, even after a failed assertion, every process it started is
    # stopped by PID (SIGTERM, then SIGKILL) and the bus is torn down.

Every process inherits CALLHOME_TEST_RUN from meson's test environment;
tests/check-no-leftovers.py fails the run if any such process outlives its test.

Waits (Harness.wait_for, wait_for_name, wait_for_change, Process.wait,
wait_exit) are woken by events, never by a timer: inotify over the run's
directory, the bus's signals (heard into that directory), pidfds. A wait's
timeout only bounds a test that would otherwise hang. CALLHOME_WAIT_TRACE=1
prints, for each wait, how often it evaluated its predicate and how long it took.
"""

import ctypes
import errno
import grp
import json
import os
import pwd
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

SOURCE_ROOT = os.environ.get("CALLHOME_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_ROOT = os.environ.get("CALLHOME_BUILD_ROOT") or os.path.join(SOURCE_ROOT, "build")

SERVICE_USERS = {
    "org.callhome.Collector1": "callhome-collector",
    "org.callhome.NetWorker1": "callhome-net",
    "org.callhome.Audit1": "callhome-audit",
    "org.callhome.Policy1": "callhome-policy",
}
ADMIN_GROUP = "callhome-admin"
# Test-only accounts: one in the admin group, one that is nobody in particular.
TEST_ADMIN = "callhome-test-admin"
TEST_OTHER = "callhome-test-other"

SKIP = 77  # meson's exit status for a skipped test


IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x2, 0x8, 0x80, 0x100
IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x4000, 0x8000, 0x40000000
_EVENT = struct.Struct("iIII")  # struct inotify_event before its name


def _pidfds(pids):
    """{pidfd: pid} for those of `pids` still there: a pidfd becomes readable when its
    process exits, whoever's child it is."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass
    return fds


def wait_exit(pids, timeout):
    """Waits until each of `pids` has exited (woken by the kernel through its pidfd,
    never by a timer), for at most `timeout` seconds; returns the set still running."""
    fds = _pidfds(pids)
    deadline = time.monotonic() + timeout
    try:
        while fds:
            left = deadline - time.monotonic()
            ready = select.select(list(fds), [], [], left)[0] if left > 0 else []
            if not ready:
                break
            for fd in ready:
                del fds[fd]
                os.close(fd)
        return set(fds.values())
    finally:
        for fd in fds:
            os.close(fd)


def popen_wait(popen, timeout, cmd=None):
    """Popen.wait(timeout) woken by the kernel through the child's pidfd, not by
    Popen.wait's own sleep-and-poll loop: the child's exit status once it has
    exited (then reaped); subprocess.TimeoutExpired (naming `cmd`, else its argv)
    after `timeout` seconds while it runs, leaving it unreaped for the caller to
    kill and wait for."""
    if popen.poll() is None and wait_exit([popen.pid], timeout):
        raise subprocess.TimeoutExpired(popen.args if cmd is None else cmd, timeout)
    return popen.wait()


class Watcher:
    """One inotify instance over files and directory trees. wait() evaluates a
    predicate again only when something happens: a watched file is written,
    created or renamed into, or a process exits; woken by the kernel, never by
    a timer."""

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            fail(f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        self.watches = {}  # wd -> [directory, recursive, names watched in it (None: all)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False

    def add(self, path, recursive=False):
        """A directory: anything in it (recursive: beneath it too, directories made
        later included). A file: its directory is watched for it, so that it may
        also be created or replaced (renamed over)."""
        if os.path.isdir(path):
            self._watch(path, recursive, None)
        else:
            self._watch(os.path.dirname(path), False, os.path.basename(path))

    def _watch(self, d, recursive, name):
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(d),
                                         IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE)
        if wd < 0:
            err = ctypes.get_errno()
            if recursive and err in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                return  # beneath a watched tree: gone again meanwhile, or not ours to read
            fail(f"inotify_add_watch {d}: {os.strerror(err)}")
        w = self.watches.setdefault(wd, [d, False, set()])
        w[1] = w[1] or recursive
        if name is None:
            w[2] = None
        elif w[2] is not None:
            w[2].add(name)
        if recursive:
            try:
                subdirs = [e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
            except OSError:
                return
            for sub in subdirs:
                self._watch(sub, True, None)

    def changes(self):
        """The paths written, created or renamed into since the last call (None among
        them: the kernel's queue overflowed, anything may have changed)."""
        changed = set()
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return changed
            off = 0
            while off < len(buf):
                wd, mask, _, n = _EVENT.unpack_from(buf, off)
                name = os.fsdecode(buf[off + _EVENT.size:off + _EVENT.size + n].rstrip(b"\0"))
                off += _EVENT.size + n
                if mask & IN_Q_OVERFLOW:
                    for d, recursive, _ in list(self.watches.values()):
                        if recursive:
                            self._watch(d, True, None)  # directories made meanwhile
                    changed.add(None)
                    continue
                w = self.watches.get(wd)
                if w is None:
                    continue
                if mask & IN_IGNORED:  # the directory went
                    del self.watches[wd]
                    continue
                d, recursive, names = w
                if names is not None and name not in names:
                    continue
                path = os.path.join(d, name) if name else d
                if recursive and mask & IN_ISDIR:
                    self._watch(path, True, None)
                changed.add(path)

    def wait(self, predicate, what, timeout=30, pids=(), must=True):
        """Waits until predicate() is true, evaluating it again each time a watched
        file changes or one of `pids` exits. `timeout` only bounds a test that would
        otherwise hang: then it fails, naming `what` (must=False: returns
        predicate()'s false value). Returns predicate()'s value."""
        exits = _pidfds(pids)
        deadline = time.monotonic() + timeout
        evaluations = 0
        try:
            while True:
                value = predicate()  # after the watches are set: no change is missed
                evaluations += 1
                if value or not self._next(deadline, exits):
                    break
        finally:
            for fd in exits:
                os.close(fd)
        if os.environ.get("CALLHOME_WAIT_TRACE"):
            print(f"# waited for {what}: predicate evaluated {evaluations} time(s) in "
                  f"{time.monotonic() - deadline + timeout:.3f} s", file=sys.stderr, flush=True)
        if value or not must:
            return value
        fail(f"timed out waiting for {what}")

    def _next(self, deadline, exits):
        """Blocks until something happens; False once the deadline has passed."""
        while True:
            left = deadline - time.monotonic()
            ready = select.select([self.fd] + list(exits), [], [], left)[0] if left > 0 else []
            if not ready:
                return False
            woke = False
            for fd in ready:
                if fd in exits:  # an exit is told once
                    del exits[fd]
                    os.close(fd)
                    woke = True
            if self.fd in ready and self.changes():
                woke = True
            if woke:
                return True


def wait_for_change(paths, predicate, what, timeout=30, pids=(), must=True):
    """Waits until predicate() is true, checking it again each time one of
    `paths` (files or directories) is written, created or renamed into, or one
    of `pids` exits: woken by the kernel (inotify, pidfd), never by a timer.
    `timeout` only bounds a test that would otherwise hang: then it fails
    (must=False: returns the false value). Returns predicate()'s value."""
    with Watcher() as w:
        for path in paths:
            w.add(path)
        return w.wait(predicate, what, timeout, pids=pids, must=must)


def is_root():
    return os.geteuid() == 0


def skip_unless_root(what="this test"):
    if not is_root():
        print(f"SKIP: {what} needs root (to create users and drop to them)")
        sys.exit(SKIP)


def skip_if_sanitized(why):
    """Skips a test in the ASan+UBSan build (meson -Dsanitizers=true) for the reason given."""
    if os.environ.get("CALLHOME_SANITIZERS") == "1":
        print(f"SKIP: not under ASan+UBSan: {why}")
        sys.exit(SKIP)


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        fail(msg)
    print(f"ok - {msg}", flush=True)


def ensure_users():
    """Create the service users and admin group from the project's own
    sysusers.d file, plus the two test-only accounts. Root only; idempotent."""
    conf = os.path.join(SOURCE_ROOT, "systemd", "callhome.sysusers.conf")
    missing = [u for u in SERVICE_USERS.values() if not _user_exists(u)]
    if missing or not _group_exists(ADMIN_GROUP):
        if shutil.which("systemd-sysusers"):
            subprocess.run(["systemd-sysusers", conf], check=True, stdout=subprocess.DEVNULL)
        else:  # a BusyBox-like system: same names, by hand
            if not _group_exists(ADMIN_GROUP):
                _quiet(["groupadd", "--system", ADMIN_GROUP])
            for u in SERVICE_USERS.values():
                if not _user_exists(u):
                    _quiet(["useradd", "--system", "--user-group", "--no-create-home",
                            "--home-dir", "/", "--shell", "/usr/sbin/nologin", u])
    if not _user_exists(TEST_ADMIN):
        _quiet(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/",
                "--shell", "/usr/sbin/nologin", "--groups", ADMIN_GROUP, TEST_ADMIN])
    if not _user_exists(TEST_OTHER):
        _quiet(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/",
                "--shell", "/usr/sbin/nologin", TEST_OTHER])


def _quiet(argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Parallel tests may race to create the same account; "already exists" is fine.
    if r.returncode not in (0, 9):
        raise RuntimeError(f"{argv}: {r.stdout}")


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def reachable(path):
    """True when a process of any user may reach path: every directory from / down
    to it lets others search it (o+x). A clone under /root (0700) is not."""
    path = os.path.realpath(path)
    while True:
        try:
            if not os.stat(path).st_mode & 0o001 and os.path.isdir(path):
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


# Where a run's state lives (bus socket, state directories, logs): a directory
# made for the run, 0755, beneath the first of these that every user can reach;
# never beneath the source or build tree, which may sit in a 0700 home.
RUN_BASES = ("/tmp", "/var/tmp", "/run")


def make_run_dir(name):
    """A fresh directory for one run, mode 0755, that the service users can reach;
    the caller removes it. $CALLHOME_TEST_TMPDIR, if set, is tried first."""
    bases = [os.environ["CALLHOME_TEST_TMPDIR"]] if os.environ.get("CALLHOME_TEST_TMPDIR") else []
    for base in bases + list(RUN_BASES):
        if os.path.isdir(base) and reachable(base) and os.access(base, os.W_OK | os.X_OK):
            d = tempfile.mkdtemp(prefix=f"callhome-{name}-", dir=base)
            os.chmod(d, 0o755)
            return d
    raise RuntimeError(f"no directory every user can reach to hold the run's state (tried {bases + list(RUN_BASES)})")


def uid_of(user):
    return pwd.getpwnam(user).pw_uid


def gid_of(group):
    return grp.getgrnam(group).gr_gid


def proc_status(pid):
    """/proc/PID/status as a dict of its fields."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def interface_of(xml_text, name):
    """Methods, signals and properties of interface `name` in introspection XML, with their signatures."""
    import xml.etree.ElementTree as ET
    root = ET.fromstring(xml_text.split("?>", 1)[-1] if xml_text.startswith("<?xml") else xml_text)
    iface = next((i for i in root.iter("interface") if i.get("name") == name), None)
    if iface is None:
        fail(f"no interface {name} in the XML")
    out = {}
    for el in iface:
        if el.tag in ("method", "signal"):
            out[(el.tag, el.get("name"))] = [(a.get("name"), a.get("type"),
                                              a.get("direction", "in" if el.tag == "method" else None))
                                             for a in el.findall("arg")]
        elif el.tag == "property":
            # EmitsChangedSignal=true is the D-Bus default: written or not, it means the same.
            notes = sorted((a.get("name"), a.get("value")) for a in el.findall("annotation")
                           if (a.get("name"), a.get("value")) !=
                           ("org.freedesktop.DBus.Property.EmitsChangedSignal", "true"))
            out[("property", el.get("name"))] = (el.get("type"), el.get("access"), notes)
    return out


BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <!-- The defaults of Debian's /usr/share/dbus-1/system.conf: deny by default. -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    {extra_default}
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <!-- The project's own policy files, exactly as installed to system.d. -->
  <includedir>{policy_dir}</includedir>
  <limit name="max_incoming_bytes">133169152</limit>
  <limit name="max_message_size">33554432</limit>
  <limit name="reply_timeout">60000</limit>
</busconfig>
"""

# A deliberately permissive bus, used to show that a service's own caller
# check holds even when the bus policy lets everything through.
OPEN_POLICY = '<allow own="*"/><allow send_type="method_call"/>'


def _open_dirs(top, bottom):
    """chmod 0755 every directory from top down to bottom (the copies' own tree)."""
    d = bottom
    while True:
        os.chmod(d, 0o755)
        if d == top or len(d) <= len(top):
            return
        d = os.path.dirname(d)


class Process:
    def __init__(self, popen, argv, log):
        self.popen = popen
        self.pid = popen.pid
        self.argv = argv
        self.log = log

    def alive(self):
        return self.popen.poll() is None

    def wait(self, timeout=10):
        """Its exit status once it has exited (woken through its pidfd, not by polling);
        subprocess.TimeoutExpired after `timeout` seconds."""
        return popen_wait(self.popen, timeout, self.argv)

    def output(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""


# A subscriber to every signal from one object path, run as some user by
# Harness.listen_signals(). Any peer on a bus may emit a signal with any path,
# interface and member, so a signal counts as the service's only if its sender
# is the unique name that owns the service's bus name: resolved with
# GetNameOwner and re-resolved on every NameOwnerChanged for that name. Prints
# READY once subscribed, then one line per signal: "SIGNAL member [args as
# JSON]" from the owner, "IGNORED member sender" from anyone else; with a time
# limit, at its end "GOT" and the members accepted.
_LISTEN = r"""
import dbus, dbus.mainloop.glib, json, sys
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
address, path, name, seconds = sys.argv[1:5]
bus = dbus.bus.BusConnection(address)
owner = [None]
def owner_changed(_name, _old, new):
    owner[0] = str(new) or None
bus.add_signal_receiver(owner_changed, signal_name="NameOwnerChanged", dbus_interface="org.freedesktop.DBus",
                        bus_name="org.freedesktop.DBus", path="/org/freedesktop/DBus", arg0=name)
try:
    owner[0] = str(bus.get_name_owner(name))
except dbus.exceptions.DBusException:
    owner[0] = None
def plain(v):
    if isinstance(v, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(v)
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (int, float)):
        return int(v) if not isinstance(v, float) else float(v)
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    return [plain(x) for x in v]
got = []
def on_signal(*args, member=None, sender=None):
    if sender is not None and sender == owner[0]:
        got.append(str(member))
        print("SIGNAL", member, json.dumps([plain(a) for a in args]), flush=True)
    else:
        print("IGNORED", member, sender, flush=True)
bus.add_signal_receiver(on_signal, path=path, member_keyword="member", sender_keyword="sender")
print("READY", flush=True)
loop = GLib.MainLoop()
if seconds != "-":
    GLib.timeout_add(int(float(seconds) * 1000), loop.quit)  # the window's end: a source of the loop
loop.run()
print("GOT", " ".join(got), flush=True)
"""


# The harness's ear on the bus (Harness._hear_bus), run as root: a plain
# connection with a match rule for every signal, printing one line for each
# that is news ("sender interface member"): not the bus's own about connections
# coming and going (a busctl's), nor NameAcquired/NameLost. A well-known name's
# owner changing is news. Prints READY once its match rule is in place; ends
# with the bus.
_SIGNALS = r"""
import dbus, dbus.lowlevel, dbus.mainloop.glib, sys
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
loop = GLib.MainLoop()
bus = dbus.bus.BusConnection(sys.argv[1])
def news(_conn, msg):
    if msg.get_type() == dbus.lowlevel.MESSAGE_TYPE_SIGNAL:
        sender, iface, member = msg.get_sender(), msg.get_interface(), msg.get_member()
        if iface == "org.freedesktop.DBus.Local":
            loop.quit()
        elif sender != "org.freedesktop.DBus" or member not in ("NameAcquired", "NameLost", "NameOwnerChanged") \
                or member == "NameOwnerChanged" and not str(msg.get_args_list()[0]).startswith(":"):
            print(sender, iface, member, flush=True)
    return dbus.lowlevel.HANDLER_RESULT_NOT_YET_HANDLED
bus.add_message_filter(news)
bus.add_match_string("type='signal'")
print("READY", flush=True)
loop.run()
"""


class Harness:
    def __init__(self, name, bus=True, users=None, open_bus=False):
        self.name = name
        self.want_bus = bus
        self.open_bus = open_bus
        self.want_users = is_root() if users is None else users
        self.procs = []
        self.bus = None
        self.address = None
        self.tmp = None
        self.bus_signals = None  # what hears the bus's signals (_hear_bus)

    # --- set-up and tear-down -------------------------------------------------
    def __enter__(self):
        # Daemons running as their users reach the bus socket and their state here.
        self.tmp = make_run_dir(self.name)
        if self.want_users:
            ensure_users()
        if self.want_bus:
            self._start_bus()
        return self

    def __exit__(self, *exc):
        self.stop_all()
        # sys.exit() inside the block with success or SKIP is no failure.
        failed = exc[0] is not None and not (issubclass(exc[0], SystemExit) and exc[1].code in (None, 0, SKIP))
        if not failed and not os.environ.get("CALLHOME_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif failed:
            self.dump_logs()
            print(f"(the run's files are kept in {self.tmp})")
        return False

    def dump_logs(self):
        for p in self.procs:
            out = p.output()
            if out:
                print(f"--- output of {' '.join(p.argv)[:120]} (pid {p.pid}) ---")
                print(out[-4000:])

    def _start_bus(self):
        sock = os.path.join(self.tmp, "system_bus_socket")
        conf = os.path.join(self.tmp, "bus.conf")
        with open(conf, "w") as f:
            f.write(BUS_CONF.format(socket=sock,
                                    policy_dir=os.path.join(SOURCE_ROOT, "ipc", "busconfig"),
                                    extra_default=OPEN_POLICY if self.open_bus else ""))
        r, w = os.pipe()
        log = os.path.join(self.tmp, "dbus-daemon.log")
        with open(log, "w") as logf:
            p = subprocess.Popen(["dbus-daemon", "--config-file", conf, "--nofork", "--nopidfile",
                                  f"--print-address={w}"], pass_fds=(w,), stdout=logf,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        os.close(w)
        self.bus = Process(p, ["dbus-daemon"], log)
        self.procs.append(self.bus)
        with os.fdopen(r) as rf:
            self.address = rf.readline().strip()
        if not self.address:
            fail(f"dbus-daemon did not start: {self.bus.output()}")
        os.chmod(sock, 0o666)
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        self._hear_bus()

    def _hear_bus(self):
        """The bus's signals, one line each, into the run's directory from the bus's
        start (_SIGNALS): a file change that wakes wait_for(). Not a monitor
        (BecomeMonitor): with one attached, dbus-daemon 1.14 aborts when a signal of
        its own meets a full queue (tests/audit/test_audit_memory.py); and method
        calls, which may carry megabytes, are no news, least of all a predicate's own
        busctl call. Stopped by PID with the harness."""
        if self.bus_signals is not None:  # the bus was started again
            self.stop(self.bus_signals)
        log = os.path.join(self.tmp, "bus-signals.log")
        with open(log, "w") as logf:
            p = subprocess.Popen(["/usr/bin/python3", "-c", _SIGNALS, self.address], stdout=logf,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.bus_signals = Process(p, ["bus signals"], log)
        wait_for_change([log], lambda: "READY" in self.bus_signals.output() or not self.bus_signals.alive(),
                        "the bus's signals to be heard", timeout=30, pids=[p.pid])
        if not self.bus_signals.alive():
            fail(f"cannot hear the bus's signals: {self.bus_signals.output()}")

    def stop(self, proc, sig=signal.SIGTERM, timeout=10):
        """Stop one process by its PID; SIGKILL if it does not go in time."""
        if proc.popen.poll() is None:
            try:
                os.kill(proc.pid, sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        return proc.popen.returncode

    def stop_all(self):
        # Newest first, the bus last: daemons may still want to say goodbye on it.
        for p in reversed(self.procs):
            self.stop(p)
        if self.bus_signals is not None:
            self.stop(self.bus_signals)

    # --- running things -------------------------------------------------------
    def exe(self, rel):
        return os.path.join(BUILD_ROOT, rel)

    def src(self, rel):
        return os.path.join(SOURCE_ROOT, rel)

    def as_user(self, user, argv):
        """argv run as `user` with its primary and supplementary groups (setpriv)."""
        if user is None or user == "root":
            return list(argv)
        if not is_root():
            fail("running as another user needs root")
        argv = [self.reachable_copy(a) for a in argv]
        return ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}",
                "--init-groups", "--inh-caps=-all", "--"] + list(argv)

    def reachable_copy(self, arg):
        """arg, or, when it names a file of the source or build tree that other users
        cannot reach (a clone under /root), a copy of it in the run's directory."""
        if not isinstance(arg, str) or not arg.startswith("/") or not os.path.isfile(arg):
            return arg
        for root, tag in ((BUILD_ROOT, "build"), (SOURCE_ROOT, "source")):
            real_root = os.path.realpath(root)
            real = os.path.realpath(arg)
            if real.startswith(real_root + os.sep) and not reachable(real):
                copy = os.path.join(self.tmp, "reach", tag, os.path.relpath(real, real_root))
                if not os.path.exists(copy):
                    os.makedirs(os.path.dirname(copy), exist_ok=True)
                    shutil.copy2(real, copy)
                    os.chmod(copy, 0o755)
                    _open_dirs(self.tmp, os.path.dirname(copy))
                return copy
        return arg

    def env(self, extra=None):
        e = dict(os.environ)
        if self.address:
            e["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        if extra:
            e.update(extra)
        return e

    def spawn(self, argv, user=None, env=None, name=None):
        """Start a long-running process (tracked, stopped by PID at the end)."""
        log = os.path.join(self.tmp, f"{name or os.path.basename(argv[0])}-{len(self.procs)}.log")
        with open(log, "w") as logf:
            p = subprocess.Popen(self.as_user(user, argv), env=self.env(env), stdout=logf,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        proc = Process(p, list(argv), log)
        self.procs.append(proc)
        return proc

    def run(self, argv, user=None, env=None, timeout=60, input=None, check_rc=None):
        """Run a command to completion; returns CompletedProcess (text)."""
        r = subprocess.run(self.as_user(user, argv), env=self.env(env), capture_output=True,
                           text=True, timeout=timeout, input=input)
        if check_rc is not None and r.returncode != check_rc:
            fail(f"{argv} exited {r.returncode}, expected {check_rc}:\n{r.stdout}\n{r.stderr}")
        return r

    def busctl(self, user, *args, timeout=30):
        return self.run(["busctl", f"--address={self.address}", "--timeout=20"] + list(args),
                        user=user, timeout=timeout)

    def name_has_owner(self, name):
        r = self.busctl(None, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                        "org.freedesktop.DBus", "NameHasOwner", "s", name)
        return r.returncode == 0 and r.stdout.strip() == "b true"

    def wait_for_name(self, name, proc=None, timeout=20):
        """Waits until `name` is owned on the bus, woken by the bus (its
        NameOwnerChanged, heard by _SIGNALS) or by the exit of `proc`, which fails."""
        owned = [False]

        def settled():
            owned[0] = self.name_has_owner(name)
            return owned[0] or (proc is not None and not proc.alive())

        self.wait_for(settled, f"{name} to appear on the bus (in {timeout}s)", timeout=timeout)
        if not owned[0]:
            fail(f"{proc.argv[0]} exited ({proc.popen.returncode}) before owning {name}:\n{proc.output()}")

    def check_interface_contract(self, name):
        """The running service's interface equals ipc/<name>.xml, member by member (root introspects)."""
        path = "/org/callhome/" + name.split(".")[-1]
        r = self.busctl("root", "--xml-interface", "introspect", name, path)
        check(r.returncode == 0, f"introspection of {name} works for root")
        with open(self.src(f"ipc/{name}.xml")) as f:
            documented = interface_of(f.read(), name)
        served = interface_of(r.stdout, name)
        for k in sorted(set(documented) | set(served)):
            if documented.get(k) != served.get(k):
                print(f"#   {k}: documented {documented.get(k)}, served {served.get(k)}")
        check(documented == served, f"ipc/{name}.xml matches the running interface member by member")

    def listen_signals(self, users, path, seconds=None, name=None):
        """Subscribes to every signal from `path`, as each user, counting a
        signal as the service's only if it comes from the unique name owning
        `name` (default: the bus name of `path`, /org/callhome/Audit1 ->
        org.callhome.Audit1), re-resolved whenever that owner changes. What the
        bus policy withholds from a user is simply never heard. With `seconds`
        the listeners end after that long (then signals_heard()); without, they
        run until stopped, and signals_so_far() tells what each has received."""
        name = name or path.strip("/").replace("/", ".")
        limit = "-" if seconds is None else str(seconds)
        ears = {u: self.spawn(["/usr/bin/python3", "-c", _LISTEN, self.address, path, name, limit], user=u,
                              name=f"listen-{u}") for u in users}
        self.wait_for(lambda: all("READY" in e.output() for e in ears.values()), "the listeners to subscribe")
        return ears

    @staticmethod
    def signals_heard(ears, timeout=30):
        heard = {}
        for u, e in ears.items():
            e.wait(timeout=timeout)
            out = e.output().split("GOT", 1)
            heard[u] = out[1].split() if len(out) == 2 else None
        return heard

    @staticmethod
    def signals_so_far(ear):
        """What a listener has received so far: ([(member, args)] from the service's
        owner, [(member, sender)] from any other peer), complete lines only."""
        accepted, ignored = [], []
        text = ear.output()
        for line in text[:text.rfind("\n") + 1].splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "SIGNAL":
                member, _, args = rest.partition(" ")
                accepted.append((member, json.loads(args)))
            elif kind == "IGNORED":
                member, _, sender = rest.partition(" ")
                ignored.append((member, sender))
        return accepted, ignored

    def wait_for(self, predicate, what, timeout=20, interval=None):
        """Waits until predicate() is true, evaluating it again only when something
        happens: a file under the run's directory (daemons' output, state and audit
        logs, listeners' output) is written, created or renamed into, a signal crosses
        the bus (_SIGNALS: not those of a predicate's own busctl), or a process the
        harness started exits. `timeout` only bounds a test that would otherwise hang: then it
        fails naming `what`. `interval` is ignored (it was the period of a poll).
        Returns predicate()'s value."""
        with Watcher() as w:
            w.add(self.tmp, recursive=True)
            return w.wait(predicate, what, timeout, pids=[p.pid for p in self.procs if p.alive()])
