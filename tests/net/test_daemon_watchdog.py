#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The net-worker's watchdog keeps coming while an exchange is under way
(the event loop runs during it; libcurl's progress callback feeds the
watchdog as well) and while the DNS stub waits for a name server (the loop
does not run then: the resolver's progress callback feeds it). A server
that trickles its reply holds the exchange until TotalTimeout= (5 s here).
Between the server's receiving the request and its sending the third byte
of the reply, WATCHDOG=1 must reach the notify socket; the call then ends
as a typed Timeout, and the next call is served. The same while the DNS
stub waits for a name server that never answers, between the queries to
the first and to the second (then Unreachable). It waits for events (the
request at the server or a name server, the server's announcements, notify
messages), never for time."""

import json
import os
import select
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nw_daemon as nd  # noqa: E402
from chtest import Harness, check, fail, skip_unless_root  # noqa: E402
from nw_daemon import pc  # noqa: E402
from test_client_hostile import HostileServer  # noqa: E402

skip_unless_root("the net-worker watchdog test")

WATCHDOG_USEC = 400000  # the loop pings every 200 ms, an exchange every 100 ms


def drain(sock):
    got = []
    sock.setblocking(False)
    while True:
        try:
            got += sock.recv(4096).decode().split("\n")
        except BlockingIOError:
            return got


def pings_while_held(h, sock, started, end_fd, ended, what):
    """A CheckIn as callhome-policy. Once started() returns, the daemon is busy with it; until
    ended() (called when end_fd is readable) says so, it still is: WATCHDOG=1 must arrive in
    between. Returns the caller's answer."""
    caller = h.spawn(["/usr/bin/python3", nd.NW_CALL, h.address, "CheckIn", "ssta{sv}",
                      json.dumps([pc.DEV1, "0.1.0", 0, {}])], user=nd.POLICY, name="nw-call")
    started()
    drain(sock)
    pings = 0
    while True:
        r, _, _ = select.select([sock, end_fd], [], [], 60)
        if not r:
            fail(f"neither WATCHDOG=1 nor the end of {what} in 60 s")
        if sock in r:
            pings += sock.recv(4096).decode().split("\n").count("WATCHDOG=1")
        if end_fd in r and ended():
            break
    check(pings >= 2, f"WATCHDOG=1 kept coming while {what} held the loop ({pings} of them)")
    caller.wait(60)
    return json.loads(caller.output().strip().splitlines()[-1])


def main():
    pki = pc.pki()
    with Harness("net-watchdog") as h:
        path = os.path.join(h.tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        os.chmod(path, 0o666)
        hs = HostileServer(pki)
        try:
            config = nd.write_config(h.tmp, pki, extra=["TotalTimeout=5s"])
            d = h.spawn([h.exe(nd.EXE), "--config=" + config], name="net-worker",
                        env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
            h.wait_for_name(nd.NAME, proc=d)
            nd.ok(nd.call(h, "SetServer", "s", hs.url("trickle?announce")), "SetServer trickle")
            before = drain(sock)
            if "READY=1" not in before:
                fail(f"no READY=1 before the call: {before}")
            answer = pings_while_held(h, sock, hs.read_head, hs.proc.stdout,
                                      lambda: hs.proc.stdout.readline().startswith(b"TRICKLE 3"),
                                      "the exchange (3 of its reply's bytes trickled)")
            nd.error(answer, "Timeout", "a reply trickled past TotalTimeout=")
            nd.ok(nd.call(h, "SetServer", "s", hs.url("ok")), "SetServer ok")
            nd.ok(nd.check_in(h), "the next call is served")

            # a name server that never answers: the DNS stub waits, and pings meanwhile
            silent = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
            for q in silent:
                q.bind(("127.0.0.1", 0))
            servers = " ".join("127.0.0.1:%d" % q.getsockname()[1] for q in silent)
            try:
                config = nd.write_config(h.tmp, pki, name="silent.conf", extra=["ConnectTimeout=2s", "DNS=" + servers])
                h.stop(d)
                d = h.spawn([h.exe(nd.EXE), "--config=" + config], name="net-worker",
                            env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
                h.wait_for_name(nd.NAME, proc=d)
                nd.ok(nd.call(h, "SetServer", "s", "https://commserver.test:%d/ok" % hs.port), "SetServer by name")
                silent[0].settimeout(60)
                answer = pings_while_held(h, sock, lambda: silent[0].recvfrom(1500), silent[1],
                                          lambda: bool(silent[1].recvfrom(1500)),
                                          "the wait for the first name server, until it asked the second")
                nd.error(answer, "Unreachable", "name servers that never answer")
            finally:
                for q in silent:
                    q.close()
        finally:
            hs.stop()
            sock.close()


if __name__ == "__main__":
    main()
