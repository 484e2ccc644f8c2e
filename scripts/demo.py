#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""callhome end to end on this machine, with every part that exists today.

On a private system-like bus, as their own users: callhome-auditd (the sealed
log) and callhome-collector (a simulated printer). The reference
Communication Server behind mutual TLS on loopback. Then the durable meter
push of DESIGN.md, three times over:

  snapshot from the collector → machine fields only → outbound record
  appended and synced → sent over mutual TLS → reply and delivery recorded

policyd and the net-worker are not written yet. Until they are, the demo plays
policyd's part with busctl running as policyd's user (callhome-policy), so
the bus policy and the daemons' own checks apply exactly as they will, and the
net-worker's part with curl using the device certificate. At the end the
customer's view: callhome-audit verify/show/stats, and what the server counted.
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "harness"))
from chtest import Harness, is_root  # noqa: E402

POLICY = "callhome-policy"
ADMIN = "callhome-test-admin"
NS = "urn:callhome:soap:v1"
# The outbound allowlist (S7): machine counters only, nothing that names a person.
ALLOWED_COUNTERS = ("TotalImpressions", "MonochromeImpressions", "FullColorImpressions",
                    "TotalTwoSidedImpressions", "TotalSheets", "BlankImpressions")


def say(msg):
    print(f"\n\033[1m==> {msg}\033[0m" if sys.stdout.isatty() else f"\n==> {msg}", flush=True)


def wait_line(proc, pattern, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, proc.output(), re.M)
        if m:
            return m
        if not proc.alive():
            break
        time.sleep(0.05)
    raise SystemExit(f"demo: {proc.argv[0]} did not say {pattern!r}:\n{proc.output()}")


def busctl_json(h, user, *args):
    r = h.busctl(user, "--json=short", *args)
    if r.returncode != 0:
        raise SystemExit(f"demo: busctl {' '.join(args[:4])} as {user} failed: {r.stderr.strip()}")
    return json.loads(r.stdout)["data"] if r.stdout.strip() else []


def audit_append(h, rtype, direction, txn, payload: bytes, meta):
    args = ["call", "org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1", "Append",
            "sssaya{ss}", rtype, direction, txn, str(len(payload))] + [str(b) for b in payload]
    args += [str(len(meta))] + [x for kv in meta.items() for x in kv]
    seq, _hash = busctl_json(h, POLICY, *args)
    return seq


def main():
    if not is_root():
        if os.environ.get("CALLHOME_TEST_RUN"):
            print("SKIP: the demo needs root")
            sys.exit(77)
        raise SystemExit("demo: run as root (the daemons drop to their own users, as under an init system)")
    build = os.environ["CALLHOME_BUILD_ROOT"]
    src = os.environ["CALLHOME_SOURCE_ROOT"]

    with Harness("demo") as h:
        pki = os.path.join(h.tmp, "pki")
        audit_dir = os.path.join(h.tmp, "audit")
        collector_dir = os.path.join(h.tmp, "collector")
        server_dir = os.path.join(h.tmp, "server")

        say("Starting the collector (simulated printer, seed 2026) and the audit daemon on a private bus")
        subprocess.run(["install", "-d", "-m", "0700", "-o", "callhome-audit", "-g", "callhome-audit", audit_dir],
                       check=True)
        r = h.run([h.exe("auditd/callhome-audit"), "setup-keys", f"--dir={audit_dir}"], check_rc=0)
        print(r.stdout.strip())
        key = re.search(r"\b([0-9a-f]{64})\b", r.stdout)
        # Short epochs and checkpoints so the demo shows seals and signed checkpoints (defaults: 15min, 1h).
        auditd = h.spawn([h.exe("auditd/callhome-auditd"), f"--state-dir={audit_dir}", "--epoch-length=1s",
                          "--checkpoint-interval=2s"], name="auditd")
        h.wait_for_name("org.callhome.Audit1", auditd)
        collector = h.spawn([h.exe("collector/callhome-collector"), "--source=sim:2026",
                             f"--state-dir={collector_dir}"], name="collector")
        h.wait_for_name("org.callhome.Collector1", collector)
        for name, proc in (("auditd", auditd), ("collector", collector)):
            st = {k: v for k, v in (l.split(":", 1) for l in open(f"/proc/{proc.pid}/status") if ":" in l)}
            print(f"  {name}: pid {proc.pid}, uid {st['Uid'].split()[0]}, CapEff {st['CapEff'].strip()}, "
                  f"NoNewPrivs {st['NoNewPrivs'].strip()}, Seccomp {st['Seccomp'].strip()}")

        snap = busctl_json(h, POLICY, "call", "org.callhome.Collector1", "/org/callhome/Collector1",
                           "org.callhome.Collector1", "GetSnapshot")[0]
        serial = snap[0]

        say(f"Minting the test PKI (device certificate CN={serial}) and starting the Communication Server")
        subprocess.run([os.path.join(src, "tests/pki/mkpki"), pki, serial], check=True, stdout=subprocess.DEVNULL)
        server = h.spawn([os.path.join(src, "server/callhome-commserver"), "--cert", f"{pki}/server.crt",
                          "--key", f"{pki}/server.key", "--client-ca", f"{pki}/ca.crt", "--state-dir", server_dir,
                          "--port", "0", "--admin-port", "0", "--witness-tofu"], name="commserver")
        port = int(wait_line(server, r"^LISTENING (\d+)").group(1))
        admin_port = int(wait_line(server, r"^ADMIN (\d+)").group(1))
        print(f"  https://localhost:{port}/callhome (mutual TLS; control interface on 127.0.0.1:{admin_port})")

        for round_no in range(1, 4):
            say(f"Meter push {round_no}: the printer prints 250 pages, then calls home")
            busctl_json(h, "root", "call", "org.callhome.Collector1", "/org/callhome/Collector1",
                        "org.callhome.Collector1", "SimulatorStep", "u", "250")
            snap = busctl_json(h, POLICY, "call", "org.callhome.Collector1", "/org/callhome/Collector1",
                               "org.callhome.Collector1", "GetSnapshot")[0]
            serial, model, generation, sequence, counters = snap[0], snap[1], snap[3], snap[4], snap[5]
            meters = [(c[0], c[2], c[1]) for c in counters if c[0] in ALLOWED_COUNTERS and c[4] == "ok"]
            txn = f"{serial}-{generation}.{sequence}"
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            body = "".join(f"<Meter><Name>{n}</Name><Value>{v}</Value><Unit>{u}</Unit></Meter>" for n, v, u in meters)
            payload = (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
                       f'<SubmitMeterReads xmlns="{NS}"><DeviceId>{serial}</DeviceId><TransactionId>{txn}'
                       f'</TransactionId><Time>{now}</Time>{body}</SubmitMeterReads></s:Body></s:Envelope>').encode()
            seq = audit_append(h, "meter-reads", "outbound", txn, payload, {"operation": "SubmitMeterReads"})
            print(f"  {len(meters)} allowed counters of {len(counters)}; outbound record #{seq} synced before sending")
            for n, v, u in meters:
                print(f"    {n:28} {v:>10} {u}")

            r = subprocess.run(["curl", "-sS", "--fail-with-body", "--tlsv1.2", "--cacert", f"{pki}/ca.crt",
                                "--cert", f"{pki}/device-{serial}.crt", "--key", f"{pki}/device-{serial}.key",
                                "-H", "Content-Type: text/xml; charset=utf-8", "-H", 'SOAPAction: ""',
                                "--data-binary", "@-", f"https://localhost:{port}/callhome"],
                               input=payload, capture_output=True, timeout=30)
            if r.returncode != 0:
                raise SystemExit(f"demo: send failed: {r.stderr.decode()} {r.stdout.decode()}")
            reply = r.stdout
            status = re.search(rb"<Status>(\w+)</Status>", reply)
            seq_in = audit_append(h, "reply", "inbound", txn, reply, {"operation": "SubmitMeterReadsResponse"})
            seq_d = busctl_json(h, POLICY, "call", "org.callhome.Audit1", "/org/callhome/Audit1",
                                "org.callhome.Audit1", "MarkDelivered", "sa{ss}", txn, "0")[0]
            print(f"  server: {status.group(1).decode() if status else reply[:80]!r}; reply #{seq_in}, delivery #{seq_d}")

            time.sleep(1.2)  # an epoch passes: auditd seals it and evolves its key

        note = busctl_json(h, ADMIN, "call", "org.callhome.Audit1", "/org/callhome/Audit1",
                           "org.callhome.Audit1", "GetCheckpoint")[0]
        say("The latest signed checkpoint (C2SP signed note), as the server will witness it")
        print("  " + note.strip().replace("\n", "\n  "))

        pending = busctl_json(h, ADMIN, "call", "org.callhome.Audit1", "/org/callhome/Audit1",
                              "org.callhome.Audit1", "ListPending")[0]
        say(f"Outbox: {len(pending)} pending transaction(s) (read as a member of callhome-admin)")

        h.stop(auditd)  # the customer verifies the files offline
        say("The customer verifies the log with the key shown once at set-up")
        cli = h.exe("auditd/callhome-audit")
        verify = [cli, "verify", f"--dir={audit_dir}"] + ([f"--key={key.group(1)}"] if key else [])
        r = h.run(verify)
        print((r.stdout + r.stderr).strip())
        if r.returncode != 0:
            raise SystemExit("demo: verify failed")
        say("callhome-audit show")
        print(h.run([cli, "show", f"--dir={audit_dir}"]).stdout.rstrip())
        say("callhome-audit stats")
        print(h.run([cli, "stats", f"--dir={audit_dir}"]).stdout.rstrip())

        say("What the Communication Server counted (idempotent by transaction id)")
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/v1/devices/{serial}", timeout=10) as resp:
            print(json.dumps(json.loads(resp.read()), indent=2)[:1500])
    print("\ndemo: done; every process it started has been stopped.")


if __name__ == "__main__":
    main()
