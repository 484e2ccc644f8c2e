#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""No caller can stall callhome-policyd for the others, and a caller is judged
on its first call as on any other (common/bus-peers.c guards its object):

  - a new connection whose first call is a Properties.Set, sent together with
    Hello so that it reaches policyd before any look-up of the caller could
    have come back: from callhome-admin accepted and audited with the admin's
    uid; from another user AccessDenied by policyd itself (the bus is open);
    never "credentials are not known yet";
  - a burst of first calls (Set, Get, GetAll, Change) from many new
    connections at once, every one judged right;
  - on the bus policy as installed (policyd may Ping its callers): a caller
    that floods GetAll and never reads a reply: after each batch of its calls
    a new caller's Get is answered; the bus' limit on what policyd may have
    unread is lowered so that a flood reaches it (the real limit is larger, the
    flood would only be longer); and a caller that reads its replies makes far
    more calls on one connection than it may have unread. Asserted by answers,
    never by time.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
sys.path.insert(0, os.path.join(HERE, "..", "audit"))
from chtest import TEST_ADMIN, TEST_OTHER, Harness, check, skip_unless_root, uid_of  # noqa: E402
from auditlib import setup_keys, start_daemon as start_auditd  # noqa: E402
from bus_callers import first_calls as run_first_calls, lower_incoming_limit  # noqa: E402
from test_policy_bus import NAME, PATH, get, policy_records, start_policyd  # noqa: E402

CALLERS = os.path.join(HERE, "..", "harness", "bus_callers.py")
PY = "/usr/bin/python3"
# What the bus keeps of a connection's messages unread by their recipients before it stops
# reading that connection: 1 MiB here, so that a flood of GetAll replies exceeds it soon.
BUS_INCOMING_MAX = 1 << 20


def first_calls(h, user, n, *specs):
    return run_first_calls(h, user, n, NAME, PATH, *specs)


def not_unknown(answers):
    return not any("not known" in a.get("message", "") for a in answers)


def start(h):
    audit_dir = os.path.join(h.tmp, "audit")
    setup_keys(audit_dir)
    start_auditd(h, audit_dir)
    return audit_dir, start_policyd(h, os.path.join(h.tmp, "policy"))


def main():
    skip_unless_root("the policyd callers test")
    # policyd's own verdicts: on a bus that lets everyone call everything.
    with Harness("policy-peers", open_bus=True) as h:
        audit_dir, p = start(h)

        # A first call that is a Set, from the admin: accepted, in force, audited with its uid.
        a = first_calls(h, TEST_ADMIN, 1, f"set {NAME} MeterReads s 'automatic'")
        check(a[0]["ok"], f"callhome-admin's first call, a Set, is accepted ({a[0]})")
        check(get(h, "root", "MeterReads").stdout.strip() == 's "automatic"', "the new value is in force")
        recs = [r["body"] for r in policy_records(audit_dir)]
        check(any(r["uid"] == uid_of(TEST_ADMIN) and any(c["setting"] == "MeterReads" and c["new"] == "automatic"
                                                        for c in r["changes"]) for r in recs),
              f"the change is audited with the admin's uid ({recs})")

        # From another user: policyd's own verdict, AccessDenied, and nothing changes.
        a = first_calls(h, TEST_OTHER, 1, f"set {NAME} MeterReads s 'off'")
        check(not a[0]["ok"] and a[0]["error"] == "org.freedesktop.DBus.Error.AccessDenied",
              f"another user's first call, a Set, is AccessDenied ({a[0]})")
        check(get(h, "root", "MeterReads").stdout.strip() == 's "automatic"', "and nothing changed")

        # A burst of first calls from many new connections at once.
        admin = first_calls(h, TEST_ADMIN, 24, f"set {NAME} Supplies s 'ask'", f"get {NAME} RemoteServices",
                            f"getall {NAME}", f"call {NAME} Change a{{sv}} ({{'SuppliesInterval': <uint32 7200>}},)")
        other = first_calls(h, TEST_OTHER, 24, f"set {NAME} Supplies s 'off'", f"get {NAME} RemoteServices",
                            f"getall {NAME}", f"call {NAME} Change a{{sv}} ({{'SuppliesInterval': <uint32 3600>}},)")
        check(not_unknown(admin + other), "no first call of the burst is refused as not known yet")
        check(all(a["ok"] for a in admin), f"the admin's 24 first calls are all accepted ({[a for a in admin if not a['ok']][:2]})")
        check(all(not a["ok"] and a["error"] == "org.freedesktop.DBus.Error.AccessDenied" for a in other),
              f"the other user's 24 are all AccessDenied ({[a for a in other if a.get('ok') or 'Denied' not in a['error']][:2]})")
        check(get(h, "root", "Supplies").stdout.strip() == 's "ask"' and
              get(h, "root", "SuppliesInterval").stdout.strip() == "u 7200", "the admin's changes are in force")

    lower_incoming_limit(BUS_INCOMING_MAX)
    with Harness("policy-flood") as h:
        _, p = start(h)

        # An authorized reader floods GetAll and never reads: each new caller after a batch is answered.
        rounds = 40
        f = h.spawn([PY, CALLERS, "flood", h.address, NAME, PATH, NAME, "RemoteServices", str(rounds), "150"],
                    user=TEST_ADMIN, name="flood")
        h.wait_for(lambda: "DONE" in f.output() or not f.alive(), "the flood to end", timeout=rounds * 60)
        out = f.output()
        check("STALLED" not in out and out.count("FENCE") == rounds,
              f"after each of {rounds} batches of 150 unread GetAll, another caller's Get is answered "
              f"({out.splitlines()[-2:]})")
        r = h.busctl(TEST_ADMIN, "set-property", NAME, PATH, NAME, "Diagnostics", "s", "ask")
        check(r.returncode == 0, f"with the flooder still connected, the admin's Set is answered ({r.stderr.strip()})")
        r = h.run([PY, CALLERS, "many", h.address, "300", NAME, PATH, NAME, "RemoteServices"], user=TEST_ADMIN,
                  timeout=300)
        check(r.stdout.strip() == "ok 300", f"a caller that reads its replies makes 300 calls on one connection "
              f"({r.stdout.strip()[-200:]} {r.stderr.strip()[-300:]})")
        check(p.alive() and h.name_has_owner(NAME), "policyd is alive and owns its name")
        h.stop(f)


if __name__ == "__main__":
    main()
