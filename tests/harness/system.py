# SPDX-License-Identifier: Apache-2.0
"""The whole callhome system, brought up for one test.

    from chtest import Harness
    from system import System

    with Harness("flow") as h, System(h) as s:   # everything below is up
        s.set_policy(RemoteServices=True, MeterReads="automatic")
        s.call_policy("root", "SendMeterReadsNow")
        s.wait_server(lambda d: d["counts"].get("SubmitMeterReads") == 1, "one meter push")
        s.kill9("policyd"); s.start("policyd")
        s.audit_records()                        # callhome-audit show --json, as dicts
        s.verify()                               # callhome-audit verify with the sealing key

On the Harness's private system-like bus, each daemon started as root the way
its unit starts it, dropping itself to its own user (chtest.SERVICE_USERS):

  pki        tests/pki/mkpki in the test's directory: the TLS root, the server's
             certificate and a device certificate whose CN is the serial the
             collector reports (the server insists DeviceId = CN)
  server     the reference Communication Server (protocol_common.CommServer) on
             loopback, mutual TLS; its control interface (admin port) queues
             instructions and faults and reports state.json's counts
  auditd     callhome-auditd with keys from `callhome-audit setup-keys` (the
             sealing key is kept for verify()), short epochs and checkpoints
  collector  callhome-collector over the simulated printer (source "sim:SEED"),
             or, with plant={relpath: value}, over a copy of
             tests/collector/sysfs-example with those files written in it
  net        callhome-net-worker with a configuration from tests/net/nw_daemon.py
             (pinned test CA, the device certificate and key)
  policyd    callhome-policyd with its own state directory
  proxy      optional (proxy=True): a real tinyproxy on loopback (tests/net/proxies.py)

Each daemon is waited for until it owns its bus name and has said READY=1 (the
daemon skeleton's sd_notify). Nothing sleeps: every wait is on an event (a
name on the bus, a line in a log, the server's state) with a time limit.

Start order: server (needs the serial, so after the collector), auditd,
collector, net, policyd. With start=False nothing but the PKI paths is set up;
call start(name) for each part yourself (e.g. a policy file written before
policyd first starts: write_policy_file()).

Every process is started through the Harness, so it is stopped by PID when
the Harness ends (the server by its own stop(), by PID, in __exit__). A daemon
can be killed with SIGKILL by PID (kill9), stopped and continued (sigstop,
sigcont), stopped cleanly (stop) and started again (start) with the same state
directory, so restarts see what the previous run left.

Helpers:
  set_policy(**settings)      Policy1.Change as root (one audited change, a{sv})
  policy_property(name)       a Policy1 property read as root, as a Python value
  call_policy(user, method, signature, *args)   busctl call, CompletedProcess
  call_policy_typed(user, method, *args)        gdbus call: the D-Bus error name too
  device_state(), counts(), submissions(op)     the server's view of this device
  wait_server(pred, what)     waits until pred(device_state()) holds
  server_messages()           the server's messages.jsonl
  enqueue(instruction)        queues an instruction for this device
  fault(**kw)                 scripts the next server answers (RetryAfter, ...)
  audit_records(type=None)    `callhome-audit show -o json`, parsed
  audit_export(type, txn)     `callhome-audit export --json`: records with their payloads
  verify()                    `callhome-audit verify` with the sealing key: CompletedProcess
  wait_log(name, pattern, after=0)  a regex match in a daemon's output (after an offset)
  start_proxy(user, password), proxy_log()    a real tinyproxy and what it logged
  log_size(name)              how much a daemon has said so far (for `after`)
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
for _d in ("", "../audit", "../net", "../protocol"):
    _p = os.path.normpath(os.path.join(HERE, _d))
    if _p not in sys.path:
        sys.path.insert(0, _p)

import chtest  # noqa: E402
from chtest import fail  # noqa: E402
import auditlib  # noqa: E402
import nw_daemon  # noqa: E402
import protocol_common as pc  # noqa: E402

POLICY_NAME = "org.callhome.Policy1"
POLICY_PATH = "/org/callhome/Policy1"
AUDIT_NAME = "org.callhome.Audit1"
COLLECTOR_NAME = "org.callhome.Collector1"
COLLECTOR_PATH = "/org/callhome/Collector1"

EXES = {
    "auditd": "auditd/callhome-auditd",
    "collector": "collector/callhome-collector",
    "net": nw_daemon.EXE,
    "policyd": "policy/callhome-policyd",
}
BUS_NAMES = {
    "auditd": AUDIT_NAME,
    "collector": COLLECTOR_NAME,
    "net": nw_daemon.NAME,
    "policyd": POLICY_NAME,
}
ORDER = ("auditd", "collector", "server", "net", "policyd")


def _dbus_value(sig, value):
    """busctl arguments for one value of D-Bus type `sig` (b, u, t, s, as)."""
    if sig == "b":
        return [sig, "true" if value else "false"]
    if sig == "as":
        return [sig, str(len(value))] + [str(v) for v in value]
    return [sig, str(value)]


def _guess_sig(value):
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "u"
    if isinstance(value, (list, tuple)):
        return "as"
    return "s"


class System:
    def __init__(self, h, seed=7, plant=None, proxy=False, server_args=(), auditd_args=None,
                 policyd_args=(), policyd_env=None, net_extra=(), start=True):
        """h: a chtest.Harness with users and a bus. seed: the simulated printer's seed;
        plant: {path relative to sysfs-example: content} to use the sysfs source with
        extra files (fields the allowlist must keep home). policyd_env: extra
        environment for policyd (e.g. test-only time scaling, when it has one)."""
        if not chtest.is_root():
            fail("System needs root (users, daemons dropping to them)")
        self.h = h
        self.seed = seed
        self.plant = plant
        self.want_proxy = proxy
        self.server_args = list(server_args)
        self.auditd_args = ["--epoch-length=2s", "--checkpoint-interval=5s"] if auditd_args is None \
            else list(auditd_args)
        self.policyd_args = list(policyd_args)
        self.policyd_env = dict(policyd_env or {})
        self.net_extra = list(net_extra)
        self.dirs = {k: os.path.join(h.tmp, k) for k in ("pki", "audit", "collector", "server", "policy", "sysfs",
                                                         "proxy")}
        self.procs = {}
        self.server = None
        self.proxy = None
        self.audit_key = None
        self.serial = None
        self.net_config = None
        self.autostart = start

    # --- whole system ------------------------------------------------------------
    def __enter__(self):
        if self.autostart:
            self.start_all()
        return self

    def __exit__(self, *exc):
        # Daemons are the Harness's (stopped by PID on its exit, too); the server and proxy are ours.
        # Each stops cleanly on SIGTERM with status 0: anything else (a crash, or a leak the
        # sanitizer build reports at exit) fails the test, unless it is failing already.
        unclean = []
        for name in ("policyd", "net", "collector", "auditd"):
            p = self.procs.get(name)
            if p is not None and p.alive():
                rc = self.h.stop(p)
                if rc != 0:
                    unclean.append(f"{name} exited {rc} when stopped:\n{p.output()[-3000:]}")
        if self.server is not None and self.server.proc is not None:
            if exc[0] is not None:
                try:
                    with open(os.path.join(self.dirs["server"], "server.stderr")) as f:
                        print("--- server stderr ---\n" + f.read()[-3000:])
                except OSError:
                    pass
            self.server.stop()
        if self.proxy is not None:
            self.proxy.stop()
        if unclean and exc[0] is None:
            fail("\n".join(unclean))
        return False

    def start_all(self):
        for name in ORDER:
            self.start(name)
        if self.want_proxy:
            self.start_proxy()
        return self

    # --- the parts -----------------------------------------------------------------
    def start(self, name):
        """Starts (or starts again, same state) one part: auditd, collector, server, net, policyd."""
        getattr(self, "_start_" + name)()
        if name in BUS_NAMES:
            return self.procs[name]
        return self.server

    def _spawn_daemon(self, name, argv, env=None):
        n = auditlib.Notify(self.h.tmp)
        e = {"NOTIFY_SOCKET": n.path}
        e.update(env or {})
        p = self.h.spawn([self.h.exe(EXES[name])] + argv, env=e, name=name)
        self.procs[name] = p
        try:
            self.h.wait_for_name(BUS_NAMES[name], p)
            n.wait_ready(p)
        finally:
            n.close()
        return p

    def _start_auditd(self):
        if self.audit_key is None:
            self.audit_key = auditlib.setup_keys(self.dirs["audit"])
        self._spawn_daemon("auditd", [f"--state-dir={self.dirs['audit']}"] + self.auditd_args)

    def _start_collector(self):
        if self.plant is not None:
            tree = self.dirs["sysfs"]
            if not os.path.isdir(tree):
                shutil.copytree(self.h.src("tests/collector/sysfs-example"), tree)
                for rel, content in self.plant.items():
                    path = os.path.join(tree, rel)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "w") as f:
                        f.write(f"{content}\n")
                subprocess.run(["chmod", "-R", "a+rX", tree], check=True)
            source = f"sysfs:{tree}"
        else:
            source = f"sim:{self.seed}"
        self._spawn_daemon("collector", [f"--source={source}", f"--state-dir={self.dirs['collector']}"])
        if self.serial is None:
            snap = self.busctl_json("root", "call", COLLECTOR_NAME, COLLECTOR_PATH, COLLECTOR_NAME, "GetSnapshot")
            self.serial = snap[0][0]

    def _mint_pki(self):
        if self.serial is None:
            fail("the PKI needs the collector's serial: start the collector first")
        subprocess.run([pc.MKPKI, self.dirs["pki"], self.serial], check=True, timeout=120,
                       stdout=subprocess.DEVNULL)

    def _start_server(self):
        if not os.path.exists(os.path.join(self.dirs["pki"], f"device-{self.serial}.crt")):
            self._mint_pki()
        os.makedirs(self.dirs["server"], exist_ok=True)
        # Started again: on the same port, so the policy's ServerURL still names it.
        again = ["--port", str(self.server.port)] if self.server is not None else []
        self.server = pc.CommServer(self.dirs["pki"], self.dirs["server"], extra_args=self.server_args + again,
                                    state_dir=os.path.join(self.dirs["server"], "state"))
        self.server.start()

    def stop_server(self):
        """The server goes away (its state.json stays); start("server") brings it back on the
        same port (its control interface on a new one)."""
        self.server.stop()

    def _start_net(self):
        if self.net_config is None:
            self.net_config = nw_daemon.write_config(self.h.tmp, self.dirs["pki"], extra=self.net_extra)
            # The device's own certificate, not protocol_common's default device.
            with open(self.net_config) as f:
                text = f.read().replace(f"device-{pc.DEV1}.", f"device-{self.serial}.")
            with open(self.net_config, "w") as f:
                f.write(text)
        self._spawn_daemon("net", [f"--config={self.net_config}"])

    def _start_policyd(self):
        self._spawn_daemon("policyd", [f"--state-dir={self.dirs['policy']}", "--log-level=debug"]
                           + self.policyd_args, env=self.policyd_env)

    def start_proxy(self, user=None, password=None):
        import proxies
        self.proxy = proxies.Tinyproxy(self.dirs["proxy"], user=user, password=password,
                                       connect_ports=[self.server.port])
        return self.proxy

    def proxy_log(self):
        """What the proxy has logged so far (its CONNECT requests)."""
        with open(self.proxy.log.name, errors="replace") as f:
            return f.read()

    def pid(self, name):
        return self.procs[name].pid

    def kill9(self, name):
        """SIGKILL by PID and reaped: the daemon had no chance to tidy up."""
        p = self.procs[name]
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        return p

    def stop(self, name):
        """SIGTERM by PID (SIGKILL if it does not go): a clean stop."""
        return self.h.stop(self.procs[name])

    def sigstop(self, name):
        os.kill(self.procs[name].pid, signal.SIGSTOP)

    def sigcont(self, name):
        os.kill(self.procs[name].pid, signal.SIGCONT)

    def restart(self, name, kill=False):
        self.kill9(name) if kill else self.stop(name)
        return self.start(name)

    # --- logs -------------------------------------------------------------------
    def output(self, name):
        return self.procs[name].output()

    def log_size(self, name):
        return len(self.output(name))

    def wait_log(self, name, pattern, after=0, timeout=30, count=1):
        """Waits until `pattern` (a regex, multiline) has matched `count` times in
        the daemon's output from offset `after`; returns the matches."""
        p = self.procs[name]
        found = []

        def seen():
            found[:] = list(re.finditer(pattern, p.output()[after:], re.M))
            return len(found) >= count

        try:
            chtest.wait_for_change([p.log], lambda: seen() or not p.alive(), f"{name}'s log", timeout)
        except AssertionError:
            pass
        if seen():
            return found
        fail(f"{name} did not say {pattern!r} {count} time(s) (said {len(found)}):\n{p.output()[after:][-3000:]}")

    # --- D-Bus ------------------------------------------------------------------
    def busctl_json(self, user, *args):
        r = self.h.busctl(user, "--json=short", *args)
        if r.returncode != 0:
            fail(f"busctl {' '.join(args[:6])} as {user}: {r.stderr.strip()}")
        return json.loads(r.stdout)["data"] if r.stdout.strip() else None

    def call_policy(self, user, method, signature="", *args):
        """busctl call of a Policy1 method as `user`: the CompletedProcess (JSON on stdout)."""
        argv = ["--json=short", "call", POLICY_NAME, POLICY_PATH, POLICY_NAME, method]
        if signature:
            argv += [signature] + [str(a) for a in args]
        return self.h.busctl(user, *argv)

    def call_policy_typed(self, user, method, *args):
        """A Policy1 method called with gdbus as `user` (args in GVariant text, e.g. "'supplies'"),
        which names the error: {"ok", "error" (the D-Bus error name or None), "message", "reply"}."""
        r = self.h.run(["gdbus", "call", "--address", self.h.address, "--dest", POLICY_NAME, "--object-path",
                        POLICY_PATH, "--method", f"{POLICY_NAME}.{method}"] + list(args), user=user)
        if r.returncode == 0:
            return {"ok": True, "error": None, "message": "", "reply": r.stdout.strip()}
        m = re.search(r"GDBus\.Error:([\w.]+):\s*(.*)", r.stderr, re.S)
        return {"ok": False, "error": m.group(1) if m else None, "message": (m.group(2) if m else r.stderr).strip(),
                "reply": None}

    def policy_property(self, name, user="root"):
        return self.busctl_json(user, "get-property", POLICY_NAME, POLICY_PATH, POLICY_NAME, name)

    def set_policy(self, user="root", **settings):
        """One audited Change of several settings, e.g. set_policy(RemoteServices=True,
        MeterReads="automatic", MeterReadsInterval=60, ServerURL=s.server_url()).
        A value may be a (signature, value) pair where the type is not obvious."""
        args = [str(len(settings))]
        for k, v in settings.items():
            sig, val = v if isinstance(v, tuple) else (_guess_sig(v), v)
            args += [k] + _dbus_value(sig, val)
        r = self.h.busctl(user, "call", POLICY_NAME, POLICY_PATH, POLICY_NAME, "Change", "a{sv}", *args)
        if r.returncode != 0:
            fail(f"Change {settings} as {user}: {r.stderr.strip()}")
        return r

    def enable(self, **more):
        """Remote services on, talking to this system's server: the usual start of a push test."""
        settings = {"RemoteServices": True, "ServerURL": self.server_url()}
        settings.update(more)
        return self.set_policy(**settings)

    # --- the server -------------------------------------------------------------
    def server_url(self):
        return self.server.url()

    def device_state(self):
        return self.server.device_state(self.serial)

    def counts(self):
        return self.device_state().get("counts", {})

    def submissions(self, op=None):
        subs = self.device_state().get("submissions", [])
        return [x for x in subs if op is None or x.get("op", x.get("operation")) == op]

    def server_messages(self):
        try:
            return self.server.messages()
        except FileNotFoundError:
            return []

    def wait_server(self, predicate, what, timeout=30):
        """Waits until predicate(device_state()) holds; returns that state."""
        last = [None]

        def ok():
            last[0] = self.device_state()
            return predicate(last[0])

        try:
            self.h.wait_for(ok, what, timeout=timeout)
        except AssertionError:
            print(f"# server state: {json.dumps(last[0])[:2000]}")
            raise
        return last[0]

    def enqueue(self, instruction):
        return self.server.enqueue(self.serial, instruction)

    def fault(self, **kw):
        st, res = self.server.admin("POST", f"/v1/devices/{self.serial}/faults", kw)
        if st != 200:
            fail(f"scripting fault {kw}: {st} {res}")
        return res

    # --- the audit log ------------------------------------------------------------
    def audit_records(self, type=None):
        """Every record of the log (`callhome-audit show -o json`), optionally of one type."""
        recs = auditlib.records(self.dirs["audit"])
        return [r for r in recs if type is None or r.get("type") == type]

    def audit_export(self, type=None, txn=None):
        """Every record with its full payload (`callhome-audit export --json`), optionally
        only those of one type and/or transaction id."""
        r = auditlib.cli("export", f"--dir={self.dirs['audit']}", "--json", check=0)
        recs = [json.loads(line) for line in r.stdout.splitlines() if line.strip().startswith("{")]
        return [x for x in recs if (type is None or x.get("type") == type) and (txn is None or x.get("txn") == txn)]

    def verify(self):
        """`callhome-audit verify` with the sealing key shown at set-up: the CompletedProcess."""
        return auditlib.cli("verify", f"--dir={self.dirs['audit']}", f"--key={self.audit_key}")
