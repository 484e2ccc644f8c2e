#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The net-worker runs one exchange at a time, in its method handler: while
it runs, the event loop does not, so the watchdog is fed from libcurl's
progress callback. A server that trickles its reply holds the exchange until
TotalTimeout= (3 s here). Once the server has the request, five WATCHDOG=1
must arrive on the notify socket before the caller has its answer (the loop
alone would send none before the exchange ends); the call then ends as a
typed Timeout, and the next call is served. The same while
the DNS stub waits for a name server that never answers (then Unreachable).
It waits for events (the request at the server or the name server, notify
messages, the caller's end)."""

import json
import os
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


def pings_during_call(h, sock, started, what):
    """A CheckIn as callhome-policy; once started() returns (the daemon is busy with it), five
    WATCHDOG=1 must arrive before the caller has its answer, which is returned."""
    caller = h.spawn(["/usr/bin/python3", nd.NW_CALL, h.address, "CheckIn", "ssta{sv}",
                      json.dumps([pc.DEV1, "0.1.0", 0, {}])], user=nd.POLICY, name="nw-call")
    started()
    drain(sock)
    pings = 0
    sock.settimeout(0.05)
    while pings < 5 and not caller.output():
        try:
            pings += sock.recv(4096).decode().split("\n").count("WATCHDOG=1")
        except socket.timeout:
            pass
    check(pings >= 5 and not caller.output(),
          f"WATCHDOG=1 kept coming while {what} held the loop ({pings} before the caller's answer)")
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
            config = nd.write_config(h.tmp, pki, extra=["TotalTimeout=3s"])
            d = h.spawn([h.exe(nd.EXE), "--config=" + config], name="net-worker",
                        env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
            h.wait_for_name(nd.NAME, proc=d)
            nd.ok(nd.call(h, "SetServer", "s", hs.url("trickle?announce")), "SetServer trickle")
            before = drain(sock)
            if "READY=1" not in before:
                fail(f"no READY=1 before the call: {before}")
            answer = pings_during_call(h, sock, hs.read_head, "the exchange")
            nd.error(answer, "Timeout", "a reply trickled past TotalTimeout=")
            nd.ok(nd.call(h, "SetServer", "s", hs.url("ok")), "SetServer ok")
            nd.ok(nd.check_in(h), "the next call is served")

            # a name server that never answers: the DNS stub waits, and pings meanwhile
            silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            silent.bind(("127.0.0.1", 0))
            try:
                config = nd.write_config(h.tmp, pki, name="silent.conf",
                                         extra=["ConnectTimeout=3s", "DNS=127.0.0.1:%d" % silent.getsockname()[1]])
                h.stop(d)
                d = h.spawn([h.exe(nd.EXE), "--config=" + config], name="net-worker",
                            env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
                h.wait_for_name(nd.NAME, proc=d)
                nd.ok(nd.call(h, "SetServer", "s", "https://commserver.test:%d/ok" % hs.port), "SetServer by name")
                silent.settimeout(30)
                answer = pings_during_call(h, sock, lambda: silent.recvfrom(1500), "a DNS query")
                nd.error(answer, "Unreachable", "a name server that never answers")
            finally:
                silent.close()
        finally:
            hs.stop()
            sock.close()


if __name__ == "__main__":
    main()
