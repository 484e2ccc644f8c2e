#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""callhome end to end on this machine: scripts/demo [--stay].

The whole system of tests/harness/system.py on a private system-like bus, each
daemon started as root and dropping itself to its own user: callhome-collector
over a printer's sysfs-style counter tree, the reference Communication Server
behind mutual TLS on loopback, the customer's proxy (tinyproxy with Basic
authentication), callhome-auditd (the sealed log, given the server's witness
key), callhome-net-worker and callhome-policyd. Then, printing
every busctl command it runs, as the customer (root) would: the policy read and
enabled, a meter push previewed, a check-in (the log's checkpoint goes along,
the server cosigns it, auditd records that), meter-read and supplies pushes
(recorded and synced before sending, delivered once), an instruction from the
server answered, a signed software offer held for consent, approved, verified
and installed, what the server counted; and the customer's view:
callhome-audit verify, show and stats.

Every step prints a numbered progress line and the demo exits 0 only if every
step succeeded. --stay leaves the system running, prints the line that points
busctl and callhome-audit at it (`export DBUS_SYSTEM_BUS_ADDRESS=… PATH=…`), and
stops everything it started, by PID, on Ctrl-C (SIGINT) or SIGTERM.

Tests import this module (tests/e2e/) and watch the run through Hooks.
"""
import argparse
import json
import os
import pwd
import re
import shlex
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "harness"))
from chtest import Harness, is_root  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "policy"))
from test_instruction_common import MODEL, pc, software_system  # noqa: E402

PROXY_USER, PROXY_PASSWORD = "printer-7", "demo-proxy-secret"  # never shown back, masked in the log
AUDIT = ("org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1")
POL = ("org.callhome.Policy1", "/org/callhome/Policy1", "org.callhome.Policy1")


class StepFailed(Exception):
    pass


class Interrupted(Exception):
    """SIGINT or SIGTERM before the walkthrough ended."""


class Hooks:
    """What a test may watch: started(demo) once every process runs, finished(demo)
    after the walkthrough, both while everything still runs."""

    def started(self, demo):
        pass

    def finished(self, demo):
        pass


def bold(msg):
    return f"\033[1m{msg}\033[0m" if sys.stdout.isatty() else msg


class Demo:
    def __init__(self, h, printer_extra=None):
        self.h = h
        self.printer_extra = printer_extra or {}
        self.step_no = 0
        self.s = None

    # --- what the reader sees ---------------------------------------------------
    def step(self, title):
        self.step_no += 1
        print("\n" + bold(f"[{self.step_no:2}] {title}"), flush=True)

    def show_cmd(self, argv, user=None):
        line = " ".join(shlex.quote(a if len(a) <= 72 else a[:40] + "…") for a in argv)
        who = f"  (as {user})" if user not in (None, "root") else ""
        print(f"  $ {line}{who}", flush=True)

    def busctl(self, *args, user=None, show=True, quiet=False):
        """busctl as root (the customer) or as policyd's user; printed, run, checked."""
        if show:
            self.show_cmd(["busctl"] + list(args), user)
        args = list(args)
        if any(re.fullmatch(r"-\d+", a) for a in args):  # a negative number is no option
            first = next(i for i, a in enumerate(args) if not a.startswith("-"))
            args.insert(first, "--")
        r = self.h.busctl(user or "root", *args)
        if r.returncode != 0:
            raise StepFailed(f"busctl {' '.join(args[:6])} failed: {r.stderr.strip()}")
        if show and not quiet and r.stdout.strip():
            print("    " + r.stdout.strip().replace("\n", "\n    ")[:3000])
        return r.stdout

    def busctl_json(self, *args, user=None, show=True):
        out = self.busctl("--json=short", *args, user=user, show=show, quiet=True)
        return json.loads(out)["data"] if out.strip() else None

    def cli(self, *args):
        argv = ["callhome-audit"] + list(args)
        self.show_cmd(argv)
        r = self.h.run([self.h.exe("auditd/callhome-audit")] + list(args) + [f"--dir={self.audit_dir}"])
        out = (r.stdout + r.stderr).rstrip()
        print("    " + out.replace("\n", "\n    ")[-4000:])
        if r.returncode != 0:
            raise StepFailed(f"callhome-audit {args[0]} exited {r.returncode}")
        return r.stdout

    # --- bringing the system up ---------------------------------------------------
    def print_pages(self, n):
        """The engine prints n pages: its billing counters move as a driver's would."""
        billing = os.path.join(self.s.dirs["sysfs"], "billing")
        for name, share in (("TotalImpressions", 1), ("MonochromeImpressions", 0.6), ("FullColorImpressions", 0.4),
                            ("TotalSheets", 0.8), ("TotalTwoSidedImpressions", 0.2)):
            path = os.path.join(billing, name)
            if os.path.exists(path):
                with open(path) as f:
                    v = int(f.read().strip())
                with open(path + ".new", "w") as f:
                    f.write(f"{v + int(n * share)}\n")
                os.chmod(path + ".new", 0o644)
                os.rename(path + ".new", path)

    def started(self, key):
        p = self.s.procs[key]
        st = {k: v.strip() for k, v in (ln.split(":", 1) for ln in open(f"/proc/{p.pid}/status") if ":" in ln)}
        uid = int(st["Uid"].split()[0])
        print(f"  {os.path.basename(p.argv[0]):22} pid {p.pid:<7} user {pwd.getpwuid(uid).pw_name:19} "
              f"CapEff {st['CapEff']}  NoNewPrivs {st['NoNewPrivs']}  Seccomp {st['Seccomp']}", flush=True)

    def start(self):
        h = self.h
        # The printer: the project's example counter tree (a kernel driver's sysfs
        # directory), with whatever a test plants beside the counters.
        # policyd stages software in its own directory and installs into a drop
        # directory (the platform's installer takes it from there), with the test
        # PKI's code-signing root pinned; the server offers what is in its repository.
        self.repo = os.path.join(h.tmp, "repo")
        self.s = s = software_system(h, repo=self.repo)
        s.plant = dict(self.printer_extra)
        s.auditd_args = ["--epoch-length=1s", "--checkpoint-interval=1s"]
        s.__enter__()
        self.step("The printer (a sysfs-style counter tree) and its collector")
        s.start("collector")
        self.serial = s.serial
        self.printer = s.dirs["sysfs"]
        self.started("collector")
        print(f"  counters at {self.printer}: serial {self.serial}")

        self.step(f"The test PKI (device certificate CN={self.serial}), the Communication Server, the customer's proxy")
        s.start("server")
        self.witness_vkey = s.server.witness_vkey
        self.admin_port = s.server.admin_port
        self.message_log = os.path.join(s.server.state_dir, "messages.jsonl")
        print(f"  {s.server_url()} (mutual TLS); its witness key {self.witness_vkey}")
        s.start_proxy(user=PROXY_USER, password=PROXY_PASSWORD)
        print(f"  the customer's proxy: tinyproxy at {s.proxy.url()}, Basic authentication, CONNECT to the server only")

        self.step("The audit log (its first key shown once) and the other daemons, each dropping to its own user")
        wkey = os.path.join(h.tmp, "witness.vkey")
        with open(wkey, "w") as f:
            f.write(self.witness_vkey + "\n")
        os.chmod(wkey, 0o644)
        s.auditd_args.append(f"--witness-key={wkey}")
        s.start("auditd")
        self.key = s.audit_key
        self.audit_dir = s.dirs["audit"]
        print(f"  $ callhome-audit setup-keys --dir={self.audit_dir}\n    verification key {self.key}")
        self.started("auditd")
        for key in ("net", "policyd"):
            s.start(key)
            self.started(key)

    def daemon_pids(self):
        return {k: p.pid for k, p in self.s.procs.items()}

    # --- the walkthrough ------------------------------------------------------------
    def preview(self, service):
        payload, dropped = self.busctl_json("call", *POL, "Preview", "s", service, show=False)
        self.show_cmd(["busctl", "--json=short", "call", *POL, "Preview", "s", service])
        return bytes(payload).decode(), dropped

    def audit_payloads(self, rtype):
        """The JSON payloads of the log's records of rtype (callhome-audit export --json)."""
        r = self.h.run([self.h.exe("auditd/callhome-audit"), "export", f"--dir={self.audit_dir}", "--json"])
        recs = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip().startswith("{")]
        return [json.loads(x["payload"]) for x in recs if x.get("type") == rtype]

    def push(self, method, op):
        before = self.s.counts().get(op, 0)
        txn = self.busctl_json("call", *POL, method)[0]
        print(f"    {txn}: the outbound record is synced; policyd hands it to the net-worker")
        state = self.s.wait_server(lambda d: d.get("counts", {}).get(op, 0) > before, f"the server to count {op}")
        sub = [x for x in state.get("submissions", []) if x.get("payload", {}).get("TransactionId") == txn]
        if not sub:
            raise StepFailed(f"the server has no {op} with transaction id {txn}")
        self.h.wait_for(lambda: self.busctl_json("get-property", *POL, "PendingPushes", show=False) == 0,
                        "the delivery to be recorded")
        self.busctl("get-property", *POL, "PendingPushes", "LastPushError")
        return txn

    def wait_report(self, iid, outcome):
        """The server's copy of what policyd reported (ReportResult) for instruction iid."""
        found = []

        def seen(d):
            found[:] = [x["payload"] for x in d.get("submissions", []) if x.get("op") == "ReportResult"
                        and str(x["payload"].get("InstructionId")) == str(iid)
                        and x["payload"].get("Outcome") == outcome]
            return bool(found)
        self.s.wait_server(seen, f"the report {outcome} of instruction {iid}")
        return found[0]

    def walkthrough(self):
        self.step("The customer's policy: remote services are off until the customer enables them")
        self.busctl("get-property", *POL, "RemoteServices", "MeterReads", "Supplies")

        self.step("Enable remote services, meter reads and supplies (each change audited before it takes effect)")
        self.busctl("set-property", *POL, "ServerURL", "s", self.s.server_url())
        self.busctl("call", *POL, "Change", "a{sv}", "3", "ProxyURL", "s", self.s.proxy.url(),
                    "ProxyUser", "s", PROXY_USER, "ProxyPassword", "s", PROXY_PASSWORD)
        self.busctl("set-property", *POL, "RemoteServices", "b", "true")
        self.busctl("set-property", *POL, "MeterReads", "s", "automatic")
        self.busctl("set-property", *POL, "Supplies", "s", "automatic")

        self.step("Preview the meter push: exactly the allowlisted bytes policyd would hand to the net-worker")
        self.print_pages(250)
        xml, dropped = self.preview("meter-reads")
        print("    " + xml.replace("><Meter>", ">\n      <Meter>")[:2000])
        for field, why in dropped:
            print(f"    dropped {field}: {why}")

        self.step("Check in: the log's signed checkpoint goes along, the server cosigns it, auditd records that")
        self.busctl("call", *POL, "CheckInNow")
        self.h.wait_for(lambda: self.busctl_json("get-property", *POL, "LastWitnessedCheckpoint", show=False)[0] > 0,
                        "the cosigned checkpoint")
        self.busctl("get-property", *POL, "LastCheckIn", "LastWitnessedCheckpoint")
        cosigned = self.audit_payloads("witness.cosigned")
        if not cosigned:
            raise StepFailed("no witness.cosigned record in the log")
        print(f"    the server's cosignature of size {cosigned[-1]['size']}: {cosigned[-1]['cosignature']}")

        self.step("Meter-read push: recorded and synced, sent, acknowledged by transaction id, delivered")
        self.push("SendMeterReadsNow", "SubmitMeterReads")

        self.step("Supplies push")
        self.push("SendSuppliesNow", "SubmitSupplies")

        self.step("The server asks for meter reads now: the next check-in brings the instruction, policyd answers it")
        iid = self.s.enqueue({"type": "SendMeterReads"})
        before = self.s.counts().get("SubmitMeterReads", 0)
        print(f"    (the vendor queued instruction {iid} for this printer on the server)")
        self.busctl("call", *POL, "CheckInNow")
        rep = self.wait_report(iid, "Done")
        print(f"    policyd judged it by the policy (meter reads automatic), pushed, and reported: "
              f"{rep.get('Outcome')}: {rep.get('Detail')}")
        self.s.wait_server(lambda d: d.get("counts", {}).get("SubmitMeterReads", 0) > before,
                           "the meter reads the instruction asked for")

        self.step("A signed software offer: held for the customer's consent, approved, verified, installed")
        print(f"  (the vendor signs package fw 2.0.0 for model {MODEL} with its code-signing key)")
        pc.sign_package(self.s.dirs["pki"], self.repo, "fw", b"firmware image " * 1000, version="2.0.0", model=MODEL)
        self.busctl("set-property", *POL, "SoftwareUpdates", "s", "ask")
        sid = self.s.enqueue({"type": "SoftwareAvailable", "package": "fw"})
        self.busctl("call", *POL, "CheckInNow")
        self.wait_report(sid, "AwaitingConsent")
        self.busctl("call", *POL, "ListConsentRequests")
        self.busctl("call", *POL, "ApproveConsent", "t", str(sid))
        rep = self.wait_report(sid, "Done")
        print(f"    reported: {rep.get('Outcome')}: {rep.get('Detail')}")
        print(f"    handed to the installer: {sorted(os.listdir(self.s.drop))}")

        self.step("What the Communication Server counted (idempotent by transaction id), all through the proxy")
        connects = len(re.findall(r"CONNECT", self.s.proxy_log()))
        print(f"    the proxy logged {connects} CONNECT line(s)")
        if connects == 0:
            raise StepFailed("nothing went through the customer's proxy")
        dev = self.s.device_state()
        print(f"    counted:    {json.dumps(dev['counts'])}\n    duplicates: {json.dumps(dev['duplicates'])}")
        print("    transactions: " + ", ".join(str(x.get("payload", {}).get("TransactionId"))
                                              for x in dev["submissions"]))

        self.step("The customer's view of the log: verify (with the key shown once and the witness key), show, stats")
        self.busctl("get-property", *AUDIT, "PendingCount")
        self.cli("verify", f"--key={self.key}", f"--witness-key={self.witness_vkey}")
        self.cli("show", "--type=meter-reads")
        self.cli("stats")


def stay(demo):
    """Keeps everything running until SIGINT or SIGTERM; returns then (the Harness stops all by PID)."""
    bindir = os.path.join(demo.h.tmp, "bin")
    os.makedirs(bindir, exist_ok=True)
    wrapper = os.path.join(bindir, "callhome-audit")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n# callhome-audit on the demo's log (the last --dir= given wins)\n"
                f"exec {shlex.quote(demo.h.exe('auditd/callhome-audit'))} \"$@\" --dir={shlex.quote(demo.audit_dir)}\n")
    os.chmod(wrapper, 0o755)
    got = []
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda signo, _f: got.append(signo))
    print("\n" + bold("The system stays up. In another shell, as root, this line points busctl and callhome-audit at it:"))
    print(f"export DBUS_SYSTEM_BUS_ADDRESS={demo.h.address} PATH={bindir}:$PATH", flush=True)
    print(f"(the audit key: {demo.key}; Ctrl-C stops everything the demo started)", flush=True)
    while not got:
        signal.pause()
    print(f"\ndemo: {signal.Signals(got[0]).name}: stopping every process it started", flush=True)


def main(argv=None, hooks=None):
    ap = argparse.ArgumentParser(prog="scripts/demo", description="callhome end to end on this machine")
    ap.add_argument("--stay", action="store_true", help="leave the system running until Ctrl-C")
    args = ap.parse_args(argv)
    hooks = hooks or Hooks()
    if not is_root():
        if os.environ.get("CALLHOME_TEST_RUN"):
            print("SKIP: the demo needs root")
            sys.exit(77)
        raise SystemExit("demo: run as root (the daemons drop to their own users, as under an init system)")

    def stopped(signo, _frame):
        raise Interrupted(signal.Signals(signo).name)
    # Ctrl-C or SIGTERM at any point: the Harness and the System stop what they started, by PID.
    signal.signal(signal.SIGTERM, stopped)
    signal.signal(signal.SIGINT, stopped)
    t0 = time.monotonic()
    interrupted = False
    with Harness("demo") as h:
        demo = Demo(h, printer_extra=getattr(hooks, "printer_extra", None))
        try:
            try:
                demo.start()
                hooks.started(demo)
                demo.walkthrough()
                hooks.finished(demo)
                print(f"\ndemo: {demo.step_no} steps, all succeeded, in {time.monotonic() - t0:.1f} s")
                if args.stay:
                    stay(demo)
            except Interrupted as e:  # not a failure: everything is stopped, the run's files removed
                interrupted = True
                print(f"\ndemo: {e}: stopping every process it started", flush=True)
            finally:
                for signo in (signal.SIGINT, signal.SIGTERM):  # stopping is not to be interrupted
                    signal.signal(signo, signal.SIG_IGN)
        except (StepFailed, AssertionError) as e:
            raise SystemExit(f"\ndemo: step {demo.step_no} failed: {e}")
        finally:  # whatever ended the run: the server and the proxy are the System's to stop, by PID
            if demo.s:
                demo.s.__exit__(*sys.exc_info())
    print("demo: every process it started has been stopped.")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
