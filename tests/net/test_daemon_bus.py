#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""callhome-net-worker on a private system-like bus, started as root, dropping
itself to callhome-net under its seccomp profile (kill mode), against the
reference Communication Server over mutual TLS.

Shows: the confinement in /proc/PID/status and no listening socket among its
fds; the interface equals ipc/org.callhome.NetWorker1.xml; every operation end
to end through the bus as callhome-policy (typed instructions, acks,
duplicates, faults with their typed details, GetSoftware, Download into a
passed fd and resumed); a second connection resumes the TLS session, seen in
LastExchange and in the server's log; the proxy credentials never appear in an
error; a hostile reply is a typed error and the next call is served; callers
other than callhome-policy and root are refused by the bus policy and, on an
open bus, by the daemon itself. It waits for replies, never for time."""

import hashlib
import os
import pwd
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nw_daemon as nd  # noqa: E402
from chtest import TEST_OTHER, Harness, check, proc_status, skip_unless_root  # noqa: E402
from nw_daemon import POLICY, nc, pc  # noqa: E402
from test_client_hostile import HostileServer  # noqa: E402

skip_unless_root("the net-worker bus test")

TIME = "2026-03-01T10:00:00Z"


def socket_inodes(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.append(target[8:-1])
    return out


def listening_inodes(pid):
    """Inodes of listening TCP sockets and of Unix sockets in the listening state (__SO_ACCEPTCON)."""
    found = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A":
                    found.add(cols[9])
    with open(f"/proc/{pid}/net/unix") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if int(cols[3], 16) & 0x10000:
                found.add(cols[6])
    return found


def check_confinement(d):
    st = proc_status(d.pid)
    uid = pwd.getpwnam(nd.NET_USER).pw_uid
    check(st["Seccomp"] == "2", "the net-worker runs under a seccomp filter (Seccomp: 2)")
    check(st["NoNewPrivs"] == "1", "no_new_privs is set")
    check(int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0 and int(st["CapBnd"], 16) == 0,
          "no capabilities, bounding set empty")
    check(st["Uid"].split() == [str(uid)] * 4, f"it runs as {nd.NET_USER}")
    socks = socket_inodes(d.pid)
    check(socks and not set(socks) & listening_inodes(d.pid), "none of its sockets listens")


def operations(h, server, pki, workdir, package):
    a = nd.error(nd.check_in(h), "InvalidRequest", "CheckIn before SetServer")
    check("No server" in a["message"], "CheckIn before SetServer: InvalidRequest saying so")
    nd.ok(nd.call(h, "SetServer", "s", server.url()), "SetServer")

    r = nd.ok(nd.check_in(h), "CheckIn")
    check(r == [[], {}], "CheckIn: no instructions, no witness")
    ex = nd.last_exchange(h)
    check((ex["handshakes"], ex["tls_resumed"], ex["http_status"]) == (1, False, 200),
          "LastExchange after the first CheckIn: one full handshake, HTTP 200")

    ids = [server.enqueue(pc.DEV1, {"type": "SendMeterReads"}),
           server.enqueue(pc.DEV1, {"type": "SetCheckInInterval", "seconds": 3600}),
           server.enqueue(pc.DEV1, {"type": "SoftwareAvailable", "package": "fw-main"}),
           server.enqueue(pc.DEV1, {"type": "DiagnosticsRequested", "reason": "why & <how>",
                                    "items": ["log/tail", "uptime"]})]
    ins, _ = nd.ok(nd.check_in(h), "CheckIn with instructions")
    check([i[0] for i in ins] == ids and [i[1] for i in ins] ==
          ["SendMeterReads", "SetCheckInInterval", "SoftwareAvailable", "DiagnosticsRequested"],
          "CheckIn: the instructions, typed, oldest first")
    check(ins[1][2] == {"seconds": 3600}, "SetCheckInInterval carries its seconds")
    check(ins[2][2] == {"package": "fw-main", "version": "2.0.1", "size": len(package),
                        "sha256": hashlib.sha256(package).hexdigest()}, "SoftwareAvailable carries the package")
    check(ins[3][2] == {"reason": "why & <how>", "items": ["log/tail", "uptime"]},
          "DiagnosticsRequested carries reason and items")

    meters = [["prtMarkerLifeCount.1", 123456, "impressions", False], ["impressions.color", 7, "", True]]
    for status in ("Accepted", "Duplicate"):
        r = nd.ok(nd.call(h, "SubmitMeterReads", "sssa(stsb)", pc.DEV1, "CH0000000001-1", TIME, meters),
                  "SubmitMeterReads")
        check(r == ["CH0000000001-1", status], f"SubmitMeterReads: {status}")
    r = nd.ok(nd.call(h, "SubmitSupplies", "sssa(ssiis)", pc.DEV1, "CH0000000001-2", TIME,
                      [["toner.black", "toner", -3, -2, "percent"]]), "SubmitSupplies")
    check(r == ["CH0000000001-2", "Accepted"], "SubmitSupplies: Accepted")
    r = nd.ok(nd.call(h, "SubmitDiagnostics", "sstsa(ss)", pc.DEV1, "CH0000000001-3", ids[3], TIME,
                      [["log/tail", "<x> & \"y\" \u00e9\n"]]), "SubmitDiagnostics")
    check(r == ["CH0000000001-3", "Accepted"], "SubmitDiagnostics: Accepted")
    r = nd.ok(nd.call(h, "ReportResult", "sstss", pc.DEV1, "CH0000000001-4", ids[1], "Done", "interval set"),
              "ReportResult")
    check(r == ["CH0000000001-4", "Accepted"], "ReportResult: Accepted")

    a = nd.error(nd.call(h, "ReportResult", "sstss", pc.DEV1, "CH0000000001-5", 999999, "Done", ""),
                 "SoapFault", "ReportResult for an unknown instruction")
    check(a["details"].get("fault") == "BadRequest" and a["details"].get("fault_code") in ("Client", "Server")
          and a["details"].get("http_status") == 500, "a SOAP fault: typed detail, code and HTTP status in the dictionary")
    before = len(server.messages())
    a = nd.error(nd.call(h, "SubmitMeterReads", "sssa(stsb)", pc.DEV1, "bad id", TIME, meters),
                 "InvalidRequest", "a bad transaction id")
    check("TransactionId" in a["message"] and len(server.messages()) == before,
          "arguments that break the contract: InvalidRequest naming the field, nothing sent")
    a = nd.error(nd.check_in(h, witness={"nonsense": ("s", "x")}), "InvalidRequest", "an unknown witness key")
    check("nonsense" in a["message"], "an unknown witness key is named")

    # GetSoftware: the manifest; Download into a passed fd, then resumed
    r = nd.ok(nd.call(h, "GetSoftware", "sstu", pc.DEV1, "fw-main", 0, 0), "GetSoftware")
    check(r[0] == "fw-main" and r[1] == len(package) and r[3] == "" and r[4] and r[5] and r[6],
          "GetSoftware at 0: total size and manifest, signature and signer, no data")
    path = os.path.join(workdir, "download")
    with open(path, "wb"):
        pass
    os.chown(path, pwd.getpwnam(POLICY).pw_uid, pwd.getpwnam(POLICY).pw_gid)
    r = nd.ok(nd.call(h, "Download", "ssttth", pc.DEV1, "fw-main", 0, 300000, len(package), fd=path), "Download")
    check(r == [300000, len(package)], "Download of the first 300,000 bytes into the caller's fd")
    r = nd.ok(nd.call(h, "Download", "ssttth", pc.DEV1, "fw-main", 2**64 - 1, 0, 0, fd=path), "Download resumed")
    with open(path, "rb") as f:
        whole = f.read()
    check(r == [len(package) - 300000, len(package)] and whole == package,
          "Download resumed after what the file holds: the whole package, byte for byte")

    # TLS resumption: SetServer again opens a new connection, which resumes the session
    start = len(server.messages())
    nd.ok(nd.call(h, "SetServer", "s", server.url()), "SetServer again")
    nd.ok(nd.check_in(h), "CheckIn on a new connection")
    ex = nd.last_exchange(h)
    check(ex["tls_resumed"] is True and ex["handshakes"] == 2, "LastExchange: the new connection resumed the session")
    hs = server.wait_messages(lambda m: m.get("event") == "handshake", count=1, start=start)
    check(hs[0]["resumed"] is True, "the server's log agrees: the handshake was resumed")


def proxy_credentials_hidden(h, server):
    # a proxy that is not there: Unreachable, and the credentials appear nowhere
    port = pc.free_port()
    nd.ok(nd.call(h, "SetProxy", "sss", "http://127.0.0.1:%d" % port, "proxyuser", "s3cr3t-pw"), "SetProxy")
    a = nd.error(nd.check_in(h), "Unreachable", "CheckIn through a proxy that is not there")
    check("s3cr3t-pw" not in str(a) and "proxyuser" not in str(a), "the error carries no credential")
    nd.ok(nd.call(h, "SetProxy", "sss", "", "", ""), "SetProxy none")
    nd.ok(nd.check_in(h), "CheckIn direct again")


def hostile(h, pki, d):
    hs = HostileServer(pki)
    try:
        for mode, kind in (("doctype-xxe", "MalformedReply"), ("deep", "TooLarge")):
            nd.ok(nd.call(h, "SetServer", "s", hs.url(mode)), "SetServer hostile")
            nd.error(nd.check_in(h), kind, f"hostile reply {mode}")
            nd.ok(nd.call(h, "SetServer", "s", hs.url("ok")), "SetServer ok")
            nd.ok(nd.check_in(h), f"the next call after {mode} is served")
        check(d.alive(), "the daemon lives on after hostile replies, each a typed error")
    finally:
        hs.stop()


def callers(h, server):
    a = nd.check_in(h, user=TEST_OTHER)
    check(not a["ok"] and a["error"] == "org.freedesktop.DBus.Error.AccessDenied",
          "another user is refused by the bus policy")
    a = nd.check_in(h, user="callhome-collector")
    check(not a["ok"] and a["error"] == "org.freedesktop.DBus.Error.AccessDenied", "callhome-collector is refused")
    a = nd.call(h, "get", "", "LastExchange", user=TEST_OTHER)
    check(not a["ok"] and a["error"] == "org.freedesktop.DBus.Error.AccessDenied", "LastExchange is refused to others")
    nd.ok(nd.call(h, "SetServer", "s", server.url(), user="root"), "root may call SetServer")
    nd.ok(nd.check_in(h, user="root"), "root may call CheckIn")


def main():
    pki = pc.pki()
    with Harness("net-daemon") as h:
        package = bytes(range(256)) * 2400 + b"tail"
        repo = os.path.join(h.tmp, "repo")
        pc.sign_package(pki, repo, "fw-main", package, version="2.0.1")
        server = pc.CommServer(pki, h.tmp, extra_args=["--software-dir", repo]).start()
        try:
            d = nd.start(h, nd.write_config(h.tmp, pki))
            check_confinement(d)
            h.check_interface_contract(nd.NAME)
            operations(h, server, pki, h.tmp, package)
            proxy_credentials_hidden(h, server)
            hostile(h, pki, d)
            callers(h, server)
            check(d.alive(), "the daemon is still serving")
            code = h.stop(d)
            check(code == 0, f"it stops cleanly on SIGTERM, nothing leaked in a sanitizer build (exit {code})")
        finally:
            server.stop()

    # On an open bus (anyone may send), the daemon's own check refuses the others.
    with Harness("net-daemon-open", open_bus=True) as h:
        server = pc.CommServer(pki, h.tmp).start()
        try:
            nd.start(h, nd.write_config(h.tmp, pki))
            nd.ok(nd.call(h, "SetServer", "s", server.url()), "SetServer on the open bus")
            for user in (TEST_OTHER, "callhome-collector"):
                a = nd.check_in(h, user=user)
                check(not a["ok"] and a["error"] == "org.freedesktop.DBus.Error.AccessDenied",
                      f"open bus: the daemon itself refuses {user}")
                a = nd.call(h, "SetServer", "s", "https://evil.example/", user=user)
                check(not a["ok"] and a["error"] == "org.freedesktop.DBus.Error.AccessDenied",
                      f"open bus: {user} cannot redirect the net-worker")
            nd.ok(nd.check_in(h), "open bus: callhome-policy is served")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
