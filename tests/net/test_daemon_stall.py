#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""No caller can stall callhome-net-worker for the others, and a caller is
judged on its first call as on any other (common/bus-peers.c guards its object):

  - new connections whose first call (a Properties.Get or GetAll) goes with
    Hello, so that it reaches the daemon before any look-up of the caller could
    have come back, many at once: callhome-policy's all answered, another
    user's all AccessDenied by the daemon itself (the bus is open); none
    "credentials are not known yet";
  - on the bus policy as installed (the net-worker may Ping its callers):
    callhome-policy floods GetAll and never reads a reply: after each batch of
    its calls a new caller's Get is answered. The bus' limit on what the daemon
    may have unread is lowered so that a flood reaches it (the real limit is
    larger, the flood would only be longer). A caller that reads its replies
    makes far more calls on one connection than it may have unread. Asserted
    by answers, never by time.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nw_daemon as nd  # noqa: E402
import chtest  # noqa: E402
from chtest import TEST_OTHER, Harness, check, skip_unless_root  # noqa: E402
from bus_callers import first_calls as run_first_calls, lower_incoming_limit  # noqa: E402
from nw_daemon import NAME, PATH, POLICY, pc  # noqa: E402

skip_unless_root("the net-worker stall test")

CALLERS = os.path.join(chtest.SOURCE_ROOT, "tests", "harness", "bus_callers.py")
PY = "/usr/bin/python3"
BUS_INCOMING_MAX = 512 << 10


def first_calls(h, user, n, *specs):
    return run_first_calls(h, user, n, NAME, PATH, *specs)


def main():
    pki = pc.pki()
    # The daemon's own verdicts: on a bus that lets everyone call everything.
    with Harness("net-first", open_bus=True) as h:
        nd.start(h, nd.write_config(h.tmp, pki))

        specs = (f"get {NAME} LastExchange", f"getall {NAME}")
        mine = first_calls(h, POLICY, 24, *specs)
        other = first_calls(h, TEST_OTHER, 24, *specs)
        check(not any("not known" in a.get("message", "") for a in mine + other),
              "no first call is refused as not known yet")
        check(all(a["ok"] and "tls_resumed" in a["body"] for a in mine),
              f"callhome-policy's 24 first calls are answered ({[a for a in mine if not a['ok']][:2]})")
        check(all(not a["ok"] and a["error"] == "org.freedesktop.DBus.Error.AccessDenied" for a in other),
              f"another user's 24 are AccessDenied ({[a for a in other if a.get('ok') or 'Denied' not in a['error']][:2]})")

    lower_incoming_limit(BUS_INCOMING_MAX)
    with Harness("net-stall") as h:
        d = nd.start(h, nd.write_config(h.tmp, pki))

        rounds = 40
        f = h.spawn([PY, CALLERS, "flood", h.address, NAME, PATH, NAME, "LastExchange", str(rounds), "200"],
                    user=POLICY, name="flood")
        h.wait_for(lambda: "DONE" in f.output() or not f.alive(), "the flood to end", timeout=rounds * 60)
        out = f.output()
        check("STALLED" not in out and out.count("FENCE") == rounds,
              f"after each of {rounds} batches of 200 unread GetAll, another caller's Get is answered "
              f"({out.splitlines()[-2:]})")
        a = nd.call(h, "get", "", "LastExchange", user="root")
        check(a["ok"], f"with the flooder still connected, root's Get is answered ({a})")
        r = h.run([PY, CALLERS, "many", h.address, "100", NAME, PATH, NAME, "LastExchange"], user=POLICY, timeout=300)
        check(r.stdout.strip() == "ok 100", f"a caller that reads its replies makes 100 calls on one connection "
              f"({r.stdout.strip()[-200:]} {r.stderr.strip()[-300:]})")
        check(d.alive() and h.name_has_owner(NAME), "the net-worker is alive and owns its name")
        h.stop(f)


if __name__ == "__main__":
    main()
