#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""callhome end to end on this machine: scripts/demo [--stay].

On a private system-like bus, each started as root and dropping itself to its
own user: callhome-auditd (the sealed log), callhome-collector (a printer: a
sysfs-style counter tree), callhome-net-worker (mutual TLS + SOAP) and
callhome-policyd (the customer's policy). The reference Communication Server
behind mutual TLS on loopback. Then, printing every busctl command it runs:
the policy read and enabled, a meter push previewed, a check-in with the log's
checkpoint (the server cosigns it), meter-read and supplies pushes, an
instruction from the server answered; and the customer's view:
callhome-audit verify, show and stats, and what the server counted.

What policyd does not do by itself yet (its schedule and flows), the demo does
for it as policyd's user, callhome-policy, with busctl: Audit1.Append, the
net-worker's operations, Audit1.MarkDelivered, in the order of the durable flow
(the outbound record synced before anything is sent). The bus policy and the
daemons' own checks apply exactly as they will. Those lines say "(policyd's part)".

Every step prints a progress line and the demo exits 0 only if every step
succeeded. --stay leaves the system running, prints the line that points busctl
and callhome-audit at it (`export DBUS_SYSTEM_BUS_ADDRESS=… PATH=…`), and stops
everything it started, by PID, on Ctrl-C (SIGINT) or SIGTERM.

Tests import this module (tests/e2e/) and watch the run through Hooks.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "harness"))
from chtest import SERVICE_USERS, Harness, is_root  # noqa: E402

POLICY = SERVICE_USERS["org.callhome.Policy1"]
NW = ("org.callhome.NetWorker1", "/org/callhome/NetWorker1", "org.callhome.NetWorker1")
AUDIT = ("org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1")
POL = ("org.callhome.Policy1", "/org/callhome/Policy1", "org.callhome.Policy1")
COL = ("org.callhome.Collector1", "/org/callhome/Collector1", "org.callhome.Collector1")
AGENT_VERSION = "0.1.0"
NS = "{urn:callhome:soap:v1}"


class StepFailed(Exception):
    pass


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
        self.procs = {}
        self.step_no = 0
        self.txn_seq = 0
        self.last_instruction = 0

    # --- what the reader sees ---------------------------------------------------
    def step(self, title):
        self.step_no += 1
        print("\n" + bold(f"[{self.step_no:2}] {title}"), flush=True)

    def show_cmd(self, argv, user=None):
        line = " ".join("<the note above>" if "\n" in a else "<the key above>" if "+" in a and len(a) > 72
                        else shlex.quote(a if len(a) <= 72 else a[:40] + "…") for a in argv)
        who = f"  (policyd's part, as {user})" if user == POLICY else ""
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
    def make_printer(self):
        """The counter tree a kernel driver would expose, copied from the project's
        example, with things a printer knows about its customer beside it (never read)."""
        d = os.path.join(self.h.tmp, "printer")
        shutil.copytree(self.h.src("tests/collector/sysfs-example"), d)
        for rel, text in self.printer_extra.items():
            os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
            with open(os.path.join(d, rel), "w") as f:
                f.write(text + "\n")
        for root, dirs, files in os.walk(d):
            os.chmod(root, 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        with open(os.path.join(d, "identity", "serial")) as f:
            self.serial = f.read().strip()
        self.printer = d

    def print_pages(self, n):
        """The engine prints n pages: its billing counters move as a driver's would."""
        billing = os.path.join(self.printer, "billing")
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

    def spawn_daemon(self, key, argv, bus_name):
        p = self.h.spawn(argv, name=key)
        self.h.wait_for_name(bus_name, p)
        self.procs[key] = p
        st = {k: v.strip() for k, v in (ln.split(":", 1) for ln in open(f"/proc/{p.pid}/status") if ":" in ln)}
        print(f"  {os.path.basename(argv[0]):22} pid {p.pid:<7} user {SERVICE_USERS[bus_name]:19} "
              f"CapEff {st['CapEff']}  NoNewPrivs {st['NoNewPrivs']}  Seccomp {st['Seccomp']}")
        return p

    def wait_line(self, proc, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, proc.output(), re.M)
            if m:
                return m
            if not proc.alive():
                break
            time.sleep(0.05)
        raise StepFailed(f"{proc.argv[0]} did not say {pattern!r}:\n{proc.output()[-2000:]}")

    def start(self):
        h = self.h
        tmp = h.tmp
        self.audit_dir = os.path.join(tmp, "audit")
        self.pki = os.path.join(tmp, "pki")
        self.server_dir = os.path.join(tmp, "server")

        self.step("The printer's counters, and the audit log's first key (shown once)")
        self.make_printer()
        print(f"  a sysfs-style counter tree at {self.printer}: serial {self.serial}")
        subprocess.run(["install", "-d", "-m", "0750", "-o", "callhome-audit", "-g", "callhome-audit", self.audit_dir],
                       check=True)
        self.show_cmd(["callhome-audit", "setup-keys", f"--dir={self.audit_dir}"])
        r = h.run([h.exe("auditd/callhome-audit"), "setup-keys", f"--dir={self.audit_dir}"])
        if r.returncode != 0:
            raise StepFailed(f"setup-keys: {r.stderr}")
        print("    " + r.stdout.strip().replace("\n", "\n    "))
        m = re.search(r"\b([0-9a-f]{64})\b", r.stdout)
        self.key = m.group(1) if m else None

        self.step(f"The test PKI (device certificate CN={self.serial}) and the Communication Server")
        subprocess.run([h.src("tests/pki/mkpki"), self.pki, self.serial], check=True, stdout=subprocess.DEVNULL)
        server = h.spawn([h.src("server/callhome-commserver"), "--cert", f"{self.pki}/server.crt",
                          "--key", f"{self.pki}/server.key", "--client-ca", f"{self.pki}/ca.crt",
                          "--state-dir", self.server_dir, "--port", "0", "--admin-port", "0", "--witness-tofu"],
                         name="commserver")
        self.procs["server"] = server
        self.port = int(self.wait_line(server, r"^LISTENING (\d+)").group(1))
        self.admin_port = int(self.wait_line(server, r"^ADMIN (\d+)").group(1))
        self.witness_vkey = self.wait_line(server, r"^WITNESS (\S+)").group(1)
        self.message_log = os.path.join(self.server_dir, "messages.jsonl")
        print(f"  https://localhost:{self.port}/callhome (mutual TLS); its control port 127.0.0.1:{self.admin_port}")

        self.step("The four daemons, each started as root, each dropping to its own user and locking itself down")
        nw_conf = os.path.join(tmp, "net-worker.conf")
        with open(nw_conf, "w") as f:
            f.write(f"CACertificates={self.pki}/ca.crt\nClientCertificate={self.pki}/device-{self.serial}.crt\n"
                    f"ClientKey={self.pki}/device-{self.serial}.key\n")
        os.chmod(nw_conf, 0o600)  # read by root before the drop
        # Short epochs and checkpoints so a short run shows seals and signed checkpoints (defaults 15 min, 1 h).
        self.spawn_daemon("auditd", [h.exe("auditd/callhome-auditd"), f"--state-dir={self.audit_dir}",
                                     "--epoch-length=1s", "--checkpoint-interval=1s",
                                     f"--witness-key={self.witness_vkey}"], "org.callhome.Audit1")
        self.spawn_daemon("collector", [h.exe("collector/callhome-collector"), f"--source=sysfs:{self.printer}",
                                        f"--state-dir={tmp}/collector"], "org.callhome.Collector1")
        self.spawn_daemon("net-worker", [h.exe("net-worker/callhome-net-worker"), f"--config={nw_conf}"],
                          "org.callhome.NetWorker1")
        self.spawn_daemon("policyd", [h.exe("policy/callhome-policyd"), f"--state-dir={tmp}/policy"],
                          "org.callhome.Policy1")

    def daemon_pids(self):
        return {k: p.pid for k, p in self.procs.items() if k != "server"}

    # --- the walkthrough ------------------------------------------------------------
    def now(self):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def next_txn(self):
        self.txn_seq += 1
        return f"{self.serial}-{self.txn_seq}"

    def append(self, rtype, direction, txn, payload: bytes, meta):
        args = ["call", *AUDIT, "Append", "sssaya{ss}", rtype, direction, txn, str(len(payload))]
        args += [str(b) for b in payload] + [str(len(meta))] + [x for kv in meta.items() for x in kv]
        self.show_cmd(["busctl", "call", *AUDIT, "Append", "sssaya{ss}", rtype, direction, txn,
                       f"{len(payload)}", "<the bytes>", "…"], POLICY)
        seq = self.busctl_json(*args, user=POLICY, show=False)[0]
        print(f"    record #{seq}, synced to disk")
        return seq

    def delivered(self, txn, status):
        seq = self.busctl_json("call", *AUDIT, "MarkDelivered", "sa{ss}", txn, "1", "status", status,
                               user=POLICY)[0]
        print(f"    delivery record #{seq}")

    def preview(self, service):
        payload, dropped = self.busctl_json("call", *POL, "Preview", "s", service, show=False)
        self.show_cmd(["busctl", "--json=pretty", "call", *POL, "Preview", "s", service])
        xml = bytes(payload).decode()
        return xml, dropped

    def push(self, service):
        """policyd's durable flow for one service, played as policyd's user: the
        allowlisted payload policyd previews, recorded before it is sent."""
        import xml.etree.ElementTree as ET
        xml, _dropped = self.preview(service)
        root = ET.fromstring(xml)
        txn = self.next_txn()
        when = self.now()
        op = "SubmitMeterReads" if service == "meter-reads" else "SubmitSupplies"
        sent = xml.replace("<TransactionId>preview</TransactionId>", f"<TransactionId>{txn}</TransactionId>")
        self.append(service, "outbound", txn, sent.encode(), {"operation": op})
        if service == "meter-reads":
            items = [(m.findtext(f"{NS}Name"), m.findtext(f"{NS}Value"), m.findtext(f"{NS}Unit") or "",
                      "true" if m.find(f"{NS}Anomaly") is not None else "false") for m in root.iter(f"{NS}Meter")]
            sig, flat = "sssa(stsb)", [x for it in items for x in it]
        else:
            items = [(s.findtext(f"{NS}Name"), s.findtext(f"{NS}Type") or "", s.findtext(f"{NS}Level"),
                      s.findtext(f"{NS}MaxCapacity"), s.findtext(f"{NS}Unit") or "") for s in root.iter(f"{NS}Supply")]
            sig, flat = "sssa(ssiis)", [x for it in items for x in it]
        if not items:
            raise StepFailed(f"the {service} preview holds nothing to send:\n{xml}")
        for it in items:
            print(f"      {it[0]:28} {' '.join(str(x) for x in it[1:])}")
        acked, status = self.busctl_json("call", *NW, op, sig, self.serial, txn, when, str(len(items)), *flat,
                                         user=POLICY)
        print(f"    server: {status} ({acked})")
        if acked != txn or status not in ("Accepted", "Duplicate"):
            raise StepFailed(f"{op}: the server answered {status} for {acked}, not {txn}")
        self.append("reply", "inbound", txn, f"{acked} {status}".encode(), {"operation": op + "Response"})
        self.delivered(txn, status)
        return txn

    def check_in(self, with_checkpoint=False):
        witness = []
        if with_checkpoint:
            vkey = self.busctl_json("get-property", *AUDIT, "CheckpointKey")
            print(f"    {vkey}")
            note = self.busctl_json("call", *AUDIT, "GetCheckpoint")[0]
            print("    " + note.strip().replace("\n", "\n    "))
            witness = ["2", "checkpoint", "s", note, "log_key", "s", vkey]
            self.note = note
        else:
            witness = ["0"]
        instructions, reply = self.busctl_json("call", *NW, "CheckIn", "ssta{sv}", self.serial, AGENT_VERSION,
                                               str(self.last_instruction), *witness, user=POLICY)
        for iid, kind, args in instructions:
            print(f"    instruction {iid}: {kind} {json.dumps(args) if args else ''}")
        reply = {k: v["data"] for k, v in (reply or {}).items()}
        for k, v in reply.items():
            print(f"    witness reply {k}: {v}")
        return instructions, reply

    def admin(self, method, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def walkthrough(self):
        self.step("The customer's policy: remote services are off until the customer enables them")
        self.busctl("get-property", *POL, "RemoteServices", "MeterReads", "Supplies")

        self.step("Enable remote services, meter reads and supplies (each change audited before it takes effect)")
        url = f"https://localhost:{self.port}/callhome"
        self.busctl("set-property", *POL, "ServerURL", "s", url)
        self.busctl("set-property", *POL, "RemoteServices", "b", "true")
        self.busctl("set-property", *POL, "MeterReads", "s", "automatic")
        self.busctl("set-property", *POL, "Supplies", "s", "automatic")
        self.busctl("call", *NW, "SetServer", "s", url, user=POLICY)

        self.step("Preview the meter push: exactly the allowlisted bytes policyd would hand to the net-worker")
        self.print_pages(250)
        xml, dropped = self.preview("meter-reads")
        print("    " + xml.replace("><Meter>", ">\n      <Meter>")[:2000])
        for field, why in dropped:
            print(f"    dropped {field}: {why}")

        self.step("Check in with the log's latest signed checkpoint; the server cosigns it")
        time.sleep(1.1)  # let a checkpoint cover the policy changes (checkpoint interval 1 s)
        _instr, reply = self.check_in(with_checkpoint=True)
        if "cosignature" not in reply:
            raise StepFailed(f"no cosignature in the witness reply {reply}")
        self.cosignature = reply["cosignature"]
        cosigned = self.note.rstrip("\n") + "\n" + self.cosignature + "\n"
        seq = self.busctl_json("call", *AUDIT, "AddCosignedCheckpoint", "s", cosigned, user=POLICY)[0]
        print(f"    witness record #{seq}: the log up to size {reply['acked_size']} is vouched for by the server")

        self.step("Meter-read push: recorded and synced, sent, acknowledged by transaction id, delivered")
        self.push("meter-reads")

        self.step("Supplies push")
        self.push("supplies")

        self.step("The server asks for meter reads now; the next check-in brings the instruction; it is answered")
        iid = self.admin("POST", f"/v1/devices/{self.serial}/instructions", {"type": "SendMeterReads"})["id"]
        print(f"  (the vendor queued instruction {iid} on the server)")
        instructions, _ = self.check_in()
        if not any(i[0] == iid and i[1] == "SendMeterReads" for i in instructions):
            raise StepFailed(f"instruction {iid} did not come with the check-in: {instructions}")
        self.last_instruction = iid
        self.print_pages(100)
        txn = self.push("meter-reads")
        acked, status = self.busctl_json("call", *NW, "ReportResult", "sstss", self.serial, self.next_txn(),
                                         str(iid), "Done", f"sent as {txn}", user=POLICY)
        print(f"    result reported: {status}")

        self.step("What the Communication Server counted (idempotent by transaction id)")
        dev = self.admin("GET", f"/v1/devices/{self.serial}")
        print(f"    counted:    {json.dumps(dev['counts'])}\n    duplicates: {json.dumps(dev['duplicates'])}")
        print(f"    transactions: {', '.join(str(x.get('payload', {}).get('TransactionId')) for x in dev['submissions'])}")

        self.step("The customer's view of the log: verify (with the key shown once), show, stats")
        self.busctl("get-property", *AUDIT, "Head", "PendingCount")
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

    t0 = time.monotonic()
    with Harness("demo") as h:
        demo = Demo(h, printer_extra=getattr(hooks, "printer_extra", None))
        try:
            demo.start()
            hooks.started(demo)
            demo.walkthrough()
            hooks.finished(demo)
        except StepFailed as e:
            raise SystemExit(f"\ndemo: step {demo.step_no} failed: {e}")
        print(f"\ndemo: {demo.step_no} steps, all succeeded, in {time.monotonic() - t0:.1f} s")
        if args.stay:
            stay(demo)
    print("demo: every process it started has been stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
