#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What an idle check-in costs on the wire, and what the client keeps in memory.

TCP payload in both directions of the idle CheckIn (PROTOCOL.md's 245-byte
request, its 141-byte reply), measured by a recording relay between the
client and the reference server: libnetworker (tests/net/nw-request) on a
new connection with a full handshake and then with a resumed TLS session,
side by side with the stock curl one-shot and resumed (two transfers in one
invocation, the first closing its connection). Then libnetworker's private
memory (/proc/PID/smaps_rollup) after N resumed check-ins, and instructions
per resumed check-in under callgrind (the difference between 21 and 1
check-ins, over 20), beside curl's (the same difference, with transfers
chained by --next in one curl process).
(BENCH_NO_CALLGRIND=1 skips the callgrind part.)
Run by hand: meson compile -C build bench-net, or
/usr/bin/python3 bench/net/bench-wire.py [CHECKINS]  (default 1000)"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "net"))
import net_common as nc  # noqa: E402
from net_common import pc  # noqa: E402


smaps = nc.smaps
GOAL_RESUMED = 1200  # issue 10: a resumed idle check-in, TCP payload both ways


def callgrind(cmd, stdin=None):
    """Instructions executed by cmd (and its threads) under callgrind."""
    out = os.path.join(pc.tests_tmp(), "callgrind.out.%d" % os.getpid())
    subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + cmd, input=stdin,
                   check=True, capture_output=True, timeout=1800)
    total = 0
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    os.unlink(out)
    return total


def instructions_per_check_in(config, url, curl_args, k=20):
    def ours(n):
        cmds = ['{"cmd": "server", "url": "%s"}' % url]
        cmds += ['{"cmd": "CheckIn", "device": "%s"}\n{"cmd": "drop"}' % pc.DEV1] * n
        return callgrind([nc.NW_REQUEST, config], stdin=("\n".join(cmds) + "\n").encode())

    def theirs(n):
        cmd = ["curl"]
        for i in range(n):
            cmd += (["--next"] if i else []) + curl_args + ["-H", "Connection: close", url]
        return callgrind(cmd)

    return (ours(k + 1) - ours(1)) / k, (theirs(k + 1) - theirs(1)) / k


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    pki = pc.pki()
    wd = pc.make_tmpdir("bench-net")
    body = os.path.join(wd, "checkin.xml")
    with open(body, "wb") as f:
        f.write(pc.idle_checkin())
    with pc.CommServer(pki, wd) as server:
        relay = nc.Relay(server.port)
        url = "https://localhost:%d/callhome" % relay.port
        config = nc.write_config(wd, pki)
        with nc.Client(config) as c:
            nc.expect_ok(c.send("server", url=url))
            for _ in range(2):
                nc.expect_ok(c.call("CheckIn"))
                nc.expect_ok(c.send("drop"))
        relay.wait_closed()
        mine = relay.connections()
        k = len(mine)
        dev = ["--cert", os.path.join(pki, "device-%s.crt" % pc.DEV1),
               "--key", os.path.join(pki, "device-%s.key" % pc.DEV1), "--cacert", os.path.join(pki, "ca.crt")]
        post = ["-sS", "-o", "/dev/null", "-H", "Content-Type: text/xml; charset=utf-8", "-H", 'SOAPAction: ""',
                "--data-binary", "@" + body]
        subprocess.run(["curl"] + dev + post + ["-H", "Connection: close", url, "--next"] + dev + post +
                       ["-H", "Connection: close", url], check=True, timeout=60)
        relay.wait_closed()
        theirs = relay.connections()[k:]
        relay.stop()

        def row(name, conn):
            up, down = conn
            print("%-34s %6d up %6d down %6d total" % (name, len(up), len(down), len(up) + len(down)))

        print("idle CheckIn, TCP payload bytes (counted once both ends closed)")
        row("libnetworker, full handshake", mine[0])
        row("libnetworker, resumed", mine[1])
        row("curl, one-shot", theirs[0])
        row("curl, resumed", theirs[1])
        total = lambda conn: len(conn[0]) + len(conn[1])  # noqa: E731
        print("ratio to curl: full handshake %.2f, resumed %.2f; resumed %d bytes, the goal at most %d"
              % (total(mine[0]) / total(theirs[0]), total(mine[1]) / total(theirs[1]), total(mine[1]), GOAL_RESUMED))

        with nc.Client(config) as c:
            nc.expect_ok(c.send("server", url=server.url()))
            nc.expect_ok(c.call("CheckIn"))
            before = smaps(c.proc.pid)
            for _ in range(n):
                nc.expect_ok(c.send("drop"))
                a = nc.expect_ok(c.call("CheckIn"))
                assert a["tls_resumed"]
            after = smaps(c.proc.pid)
        priv = lambda s: s.get("Private_Clean", 0) + s.get("Private_Dirty", 0)  # noqa: E731
        print("nw-request private memory: %d KiB after 1 check-in, %d KiB after %d more (resumed)"
              % (priv(before), priv(after), n))

        if os.environ.get("BENCH_NO_CALLGRIND"):
            return
        mine_i, curl_i = instructions_per_check_in(config, server.url(), dev + post)
        print("instructions per resumed check-in (callgrind): libnetworker %d, curl %d (ratio %.2f)"
              % (mine_i, curl_i, mine_i / curl_i))


if __name__ == "__main__":
    main()
