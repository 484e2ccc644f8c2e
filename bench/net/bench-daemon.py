#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The confined net-worker's memory over many check-ins through the bus.

Starts callhome-net-worker on a private bus (as root; it drops to
callhome-net), the reference server, and one client as callhome-policy that
calls CheckIn N times in a row, each on a new connection that resumes the TLS
session (SetServer before each, as check-ins hours apart do); prints the daemon's private memory
(Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) after a warm-up,
half-way and at the end, and the growth between the last two. The bar:
at most 6 MiB private after 1,000 check-ins, and no growth.
The daemon runs with its unit's environment (GNUTLS_NO_IMPLICIT_INIT=1;
BENCH_NO_UNIT_ENV=1 leaves it out, for comparison).
Run by hand, as root: meson compile -C build bench-net-daemon, or
/usr/bin/python3 bench/net/bench-daemon.py [CHECKINS]  (default 1000)"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "net"))
import nw_daemon as nd  # noqa: E402
from chtest import Harness  # noqa: E402
from nw_daemon import nc, pc  # noqa: E402

LIMIT_KIB = 6 * 1024


def memory(pid):
    """(private, private dirty, resident) in KiB. Clean private pages are mostly libraries'
    read-only pages that no other process maps at the moment: they move with what else runs,
    dirty ones do not. Resident counts every page, shared or not: what the worker would hold
    private if nothing else mapped its libraries."""
    s = nc.smaps(pid)
    return s.get("Private_Clean", 0) + s.get("Private_Dirty", 0), s.get("Private_Dirty", 0), s.get("Rss", 0)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    if os.geteuid() != 0:
        sys.exit("bench-daemon: run as root (it starts the daemon as root and calls as callhome-policy)")
    pki = pc.pki()
    with Harness("bench-net-daemon") as h:
        server = pc.CommServer(pki, h.tmp).start()
        try:
            unit_env = os.environ.get("BENCH_NO_UNIT_ENV") is None
            d = nd.start(h, nd.write_config(h.tmp, pki), env=nd.UNIT_ENV if unit_env else None)
            nd.ok(nd.call(h, "SetServer", "s", server.url()), "SetServer")
            warm = max(n // 10, 1)
            half = max(n // 2 - warm, 1)
            figures, done = [], 0
            for count in (warm, half, n - warm - half):
                nd.ok(nd.call(h, "CheckIn", "ssta{sv}", pc.DEV1, "0.1.0", 0, {}, repeat=count,
                              reconnect=server.url(), timeout=3600),
                      "CheckIn x%d" % count)
                done += count
                figures.append((done, *memory(d.pid)))
            if os.environ.get("BENCH_SMAPS"):
                with open("/proc/%d/smaps" % d.pid) as f:
                    sys.stdout.write(f.read())
            ex = nd.last_exchange(h)
        finally:
            server.stop()
    for done, kib, dirty, rss in figures:
        print("after %5d check-ins: %6d KiB private, %6d KiB of it dirty; %6d KiB resident" % (done, kib, dirty, rss))
    growth = figures[-1][2] - figures[-2][2]
    print("dirty growth over the last %d: %+d KiB; handshakes %d, the last resumed: %s; last request %d B, reply %d B"
          % (figures[-1][0] - figures[-2][0], growth, ex["handshakes"], ex["tls_resumed"], ex["request_bytes"],
             ex["reply_bytes"]))
    ok = figures[-1][1] <= LIMIT_KIB and growth <= 64
    print("%s: at most %d KiB private and not growing" % ("PASS" if ok else "FAIL", LIMIT_KIB))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
