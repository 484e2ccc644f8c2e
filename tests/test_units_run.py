#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Each daemon works inside its unit's sandbox: started the way the unit starts it.

No systemd runs as PID 1 here, so `systemd-run` cannot start a unit (it is
tried, and the test says what it answered). In its place, tests/unit-sandbox
(a small C helper on libseccomp) gives the daemon what the unit's [Service]
section gives it, read from the unit file itself: its User= (never root, so
the daemon only checks that nothing is held), an empty capability bounding
set, NoNewPrivileges=, UMask=, LimitNOFILE=, Environment=, the
SystemCallFilter= lines expanded with `systemd-analyze syscall-filter` and
applied as a seccomp filter with SystemCallErrorNumber=, native architecture
only, RestrictAddressFamilies=, MemoryDenyWriteExecute=, RestrictNamespaces=,
RestrictRealtime=, LockPersonality=, RestrictSUIDSGID=; and its state
directory made as StateDirectory=/StateDirectoryMode= make it. ExecStart=
runs with the unit's own arguments (the state directory moved into the test's
directory). What is not reproduced: the mount namespace (ProtectSystem=,
PrivateTmp=, ...), PrivateUsers=, PrivateNetwork=, cgroup limits (MemoryMax=,
TasksMax=, IPAddressDeny=) — see SECURITY.md.

Each daemon must then stack its own confinement on the unit's (Landlock and
its seccomp allowlist: common/confine.c), reach READY=1 on a NOTIFY_SOCKET,
ping the watchdog (WATCHDOG_USEC set as WatchdogSec= sets it), and answer one
call on a private bus."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "harness"))
import chtest  # noqa: E402
from chtest import TEST_ADMIN, Harness, check, fail, skip_unless_root  # noqa: E402
from units import expand, setting, settings, syscall_filter  # noqa: E402

skip_unless_root("starting each daemon as its unit's User=")
chtest.skip_if_sanitized("the sanitizer runtime makes system calls (readlink, sigaltstack, the leak checker's ptrace) " \
                  "that the unit's SystemCallFilter= denies; the plain build runs this test")

# The unit, its bus name, what to set up before it starts, and one call it must answer.
DAEMONS = [
    ("callhome-collector.service", "collector/callhome-collector", "org.callhome.Collector1",
     # The EnvironmentFile= a site would write: the deterministic simulator.
     {"CALLHOME_COLLECTOR_SOURCE": "sim:7"},
     ("root", "get-property", "org.callhome.Collector1", "/org/callhome/Collector1",
      "org.callhome.Collector1", "Source")),
    ("callhome-auditd.service", "auditd/callhome-auditd", "org.callhome.Audit1", {},
     (TEST_ADMIN, "get-property", "org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1", "Head")),
    ("callhome-net-worker.service", "net-worker/callhome-net-worker", "org.callhome.NetWorker1", {},
     ("root", "get-property", "org.callhome.NetWorker1", "/org/callhome/NetWorker1", "org.callhome.NetWorker1",
      "LastExchange"),
     # The configuration a site installs (CACertificates= is required): a throw-away CA.
     lambda h: net_worker_config(h)),
    ("callhome-policyd.service", "policy/callhome-policyd", "org.callhome.Policy1", {},
     (TEST_ADMIN, "get-property", "org.callhome.Policy1", "/org/callhome/Policy1", "org.callhome.Policy1",
      "RemoteServices")),
]


def net_worker_config(h):
    ca, conf = os.path.join(h.tmp, "net-ca.crt"), os.path.join(h.tmp, "net-worker.conf")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", "/dev/null", "-subj", "/CN=units-run-test", "-days", "1", "-out", ca],
                   check=True, capture_output=True)
    with open(conf, "w") as f:
        f.write(f"CACertificates={ca}\n")
    for path in (ca, conf):
        os.chmod(path, 0o644)
    return [f"--config={conf}"]

WATCHDOG_USEC = 400000  # the daemon pings every 200 ms

# Run in the sandbox instead of the daemon: the errno of an IPv6 socket and of setuid(0).
PROBE = """
import errno, os, socket
for f in (lambda: socket.socket(socket.AF_INET6), lambda: os.setuid(0)):
    try:
        f()
        print("allowed")
    except OSError as e:
        print(errno.errorcode[e.errno])
"""


def try_systemd_run():
    """What systemd-run says here: no service manager to start a unit with."""
    if not shutil.which("systemd-run"):
        print("# systemd-run: not installed")
        return
    r = subprocess.run(["systemd-run", "--wait", "--quiet", "-p", "User=nobody", "/bin/true"],
                       capture_output=True, text=True, timeout=30)
    print(f"# systemd-run answered {r.returncode}: {(r.stderr or r.stdout).strip()}")
    print("# (PID 1 here is " + open("/proc/1/comm").read().strip() + ", not systemd): standing in with unit-sandbox")


def family_numbers(names):
    out = []
    for n in names:
        if not hasattr(socket, n):
            fail(f"RestrictAddressFamilies={n}: not a family Python knows")
        out.append(str(int(getattr(socket, n))))
    return ",".join(out)


def errno_number(name):
    import errno
    return str(getattr(errno, name)) if name and not name.isdigit() else (name or "1")


def unit_environment(text):
    env = {}
    for value in settings(text, "Environment"):
        for m in re.finditer(r'(\w+)=("[^"]*"|\S+)', value):
            env[m.group(1)] = m.group(2).strip('"')
    return env


def sandbox_argv(h, name, text, exe, state_dirs, env):
    allow, names = syscall_filter(text)
    argv = [h.exe("tests/unit-sandbox"), f"--user={setting(text, 'User')}"]
    if setting(text, "UMask"):
        argv.append(f"--umask={setting(text, 'UMask')}")
    if setting(text, "LimitNOFILE"):
        argv.append(f"--nofile={setting(text, 'LimitNOFILE')}")
    argv.append(f"--errno={errno_number(setting(text, 'SystemCallErrorNumber'))}")
    if allow is not None:
        listing = os.path.join(h.tmp, f"{name}.syscalls")
        with open(listing, "w") as f:
            f.write("\n".join(sorted(names)) + "\n")
        argv.append(("--allow=" if allow else "--deny=") + listing)
    if setting(text, "RestrictAddressFamilies"):
        argv.append("--families=" + family_numbers(setting(text, "RestrictAddressFamilies").split()))
    for key, flag in [("MemoryDenyWriteExecute", "--memory-deny-write-execute"),
                      ("RestrictNamespaces", "--restrict-namespaces"),
                      ("RestrictRealtime", "--restrict-realtime"),
                      ("LockPersonality", "--lock-personality"),
                      ("RestrictSUIDSGID", "--restrict-suid-sgid")]:
        if setting(text, key) == "yes":
            argv.append(flag)
    check(setting(text, "NoNewPrivileges") == "yes" and setting(text, "CapabilityBoundingSet") == "",
          f"{name}: NoNewPrivileges=yes and an empty CapabilityBoundingSet= (unit-sandbox always applies both)")

    # ExecStart= with its own arguments, ${VAR} from the environment, state directories moved.
    exec_start = setting(text, "ExecStart").split()
    args = [exe]
    for a in exec_start[1:]:
        a = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), a)
        for unit_path, path in state_dirs.items():
            a = a.replace(unit_path, path)
        args.append(a)
    return argv + ["--"] + args


def make_state_dirs(h, text, name):
    """StateDirectory= and StateDirectoryMode=, beneath the test's directory instead of /var/lib."""
    user = setting(text, "User")
    mode = int(setting(text, "StateDirectoryMode", "0755"), 8)
    out = {}
    for rel in " ".join(settings(text, "StateDirectory")).split():
        path = os.path.join(h.tmp, name, rel.replace("/", "-"))
        os.makedirs(path)
        os.chown(path, chtest.uid_of(user), chtest.gid_of(user))
        os.chmod(path, mode)
        os.chmod(os.path.dirname(path), 0o755)
        out["/var/lib/" + rel] = path
    return out


class Notify:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.seen = []

    def wait_for(self, what, proc, timeout=30):
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.1)
        while time.monotonic() < deadline:
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                if not proc.alive():
                    fail(f"{proc.argv[-1]} exited ({proc.popen.returncode}) before {what}:\n{proc.output()}")
                continue
            self.seen += msg.split("\n")
            if what in self.seen:
                return
        fail(f"no {what} in {timeout}s; got {self.seen}:\n{proc.output()}")


def run_one(h, unit, rel_exe, bus_name, extra_env, call, extra_args=None):
    name = unit.removesuffix(".service")
    with open(h.src(f"systemd/{unit}")) as f:
        text = f.read()
    exe = h.exe(rel_exe)
    if not os.path.exists(exe):
        print(f"# {unit}: {rel_exe} not built, skipped")
        return
    exe = h.reachable_copy(exe)  # unit-sandbox drops to the unit's User= before it executes it
    state_dirs = make_state_dirs(h, text, name)
    if "callhome-auditd" in name:
        # ConditionPathExists=: the keys are set up once, by root, before the first start.
        d = state_dirs["/var/lib/callhome/audit"]
        r = subprocess.run([h.exe("auditd/callhome-audit"), "setup-keys", f"--dir={d}", "--origin=test.callhome/audit"],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"{name}: callhome-audit setup-keys ({r.stderr.strip()})")
    notify = Notify(os.path.join(h.tmp, f"notify-{name}"))
    env = {"NOTIFY_SOCKET": os.path.join(h.tmp, f"notify-{name}"), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    env.update(unit_environment(text))
    env.update(extra_env)  # as the site's EnvironmentFile= would
    argv = sandbox_argv(h, name, text, exe, state_dirs, env) + (extra_args(h) if extra_args else [])
    # The sandbox is no empty gesture: what the unit forbids fails in it (the net-worker's unit allows AF_INET6).
    inet6 = "allowed" if "AF_INET6" in setting(text, "RestrictAddressFamilies", "").split() else "EAFNOSUPPORT"
    r = h.run(argv[:argv.index("--") + 1] + [sys.executable, "-c", PROBE])
    check(r.returncode == 0 and r.stdout.split() == [inet6, "EPERM"],
          f"{name}: in the sandbox, socket(AF_INET6) is {inet6} and setuid(0) EPERM "
          f"({r.stdout.strip()} {r.stderr.strip()[-200:]})")
    proc = h.spawn(argv, env=env, name=name)
    notify.wait_for("READY=1", proc)
    check(True, f"{name}: READY=1 in its unit's sandbox (as {setting(text, 'User')}, its SystemCallFilter=, "
          f"RestrictAddressFamilies={setting(text, 'RestrictAddressFamilies')})")
    notify.wait_for("WATCHDOG=1", proc)
    check(True, f"{name}: WATCHDOG=1 from its event loop")
    status = chtest.proc_status(proc.pid)
    check(status["Uid"].split()[0] == str(chtest.uid_of(setting(text, "User"))) and status["CapEff"] == "0" * 16
          and status["CapBnd"] == "0" * 16 and status["NoNewPrivs"] == "1",
          f"{name}: runs as {setting(text, 'User')}, no capabilities, empty bounding set, no_new_privs")
    # The unit's filter, and the daemon's own stacked on it (common/confine.c).
    check(status["Seccomp"] == "2" and int(status.get("Seccomp_filters", "0")) >= 3,
          f"{name}: the unit's seccomp filters and the daemon's own are all loaded "
          f"(Seccomp_filters: {status.get('Seccomp_filters')})")
    check("WARNING" not in proc.output(), f"{name}: no warning (Landlock not blocked by the unit): {proc.output().strip()[-300:]}")
    r = h.busctl(*call)
    check(r.returncode == 0, f"{name}: answers {call[1]} {call[-1]} on a private bus ({r.stdout.strip() or r.stderr.strip()})")
    code = h.stop(proc)
    check(code == 0, f"{name}: stops cleanly on SIGTERM (exit {code})")


def main():
    try_systemd_run()
    with Harness("units-run") as h:
        only = sys.argv[1:]
        for d in DAEMONS:
            if not only or d[0] in only:
                run_one(h, *d)


if __name__ == "__main__":
    main()
