#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The project's bus policy (ipc/busconfig/) on a private system-like bus.

Real users, real dbus-daemon, real policy files: the right user owns each
name, the wrong one is refused; callers outside the policy get AccessDenied;
and a service's own credentials check holds even on a bus that allows all.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "harness"))
from chtest import (ADMIN_GROUP, SERVICE_USERS, TEST_ADMIN, TEST_OTHER, Harness, check,
                    skip_unless_root, uid_of)

skip_unless_root("the bus policy test")
PROBE = None


def path_of(name):
    return "/org/callhome/" + name.split(".")[-1]


def call(h, user, name, member):
    return h.busctl(user, "call", name, path_of(name), name, member)


def denied(r):
    return r.returncode != 0 and "Access denied" in (r.stderr + r.stdout) or \
        "AccessDenied" in (r.stderr + r.stdout)


with Harness("bus-policy") as h:
    PROBE = h.exe("tests/bus-probe")

    # Ownership: every other service user and a stranger are refused each name.
    for name, owner in SERVICE_USERS.items():
        for user in [u for u in SERVICE_USERS.values() if u != owner] + [TEST_OTHER, TEST_ADMIN]:
            r = h.run([PROBE, name], user=user, timeout=20)
            check(r.returncode == 13, f"{user} may not own {name}")

    # The rightful owners take their names.
    probes = {}
    for name, owner in SERVICE_USERS.items():
        probes[name] = h.spawn([PROBE, name, ADMIN_GROUP], user=owner, name=owner)
        h.wait_for_name(name, probes[name])
        check(True, f"{owner} owns {name}")

    # Who may call whom (DESIGN.md): policyd's user calls the other three;
    # root calls everything; the admin group calls policyd and reads the audit
    # log; nobody else calls anything.
    policy_user = SERVICE_USERS["org.callhome.Policy1"]
    expect = {
        "org.callhome.Collector1": {"root", policy_user},
        "org.callhome.NetWorker1": {"root", policy_user},
        "org.callhome.Audit1": {"root", policy_user, TEST_ADMIN},
        "org.callhome.Policy1": {"root", TEST_ADMIN},
    }
    callers = ["root", TEST_ADMIN, TEST_OTHER] + list(SERVICE_USERS.values())
    for name, allowed in expect.items():
        for user in callers:
            r = call(h, user, name, "Ping")
            if user in allowed:
                check(r.returncode == 0 and r.stdout.strip() == 's "pong"',
                      f"{user} may call {name}")
            else:
                check(denied(r), f"{user} calling {name} gets AccessDenied")

    # The caller seen by the service is the real one (credentials from the bus).
    r = call(h, policy_user, "org.callhome.Collector1", "Whoami")
    check(r.stdout.strip() == f"u {uid_of(policy_user)}", "the service sees the caller's real uid")

    # Admins read the audit log but never write it: Append is denied by member.
    r = h.busctl(TEST_ADMIN, "call", "org.callhome.Audit1", "/org/callhome/Audit1",
                 "org.callhome.Audit1", "Append")
    check(denied(r), "an admin calling Audit1.Append gets AccessDenied")
    r = h.busctl(TEST_ADMIN, "call", "org.callhome.Audit1", "/org/callhome/Audit1",
                 "org.callhome.Audit1", "MarkDelivered")
    check(denied(r), "an admin calling Audit1.MarkDelivered gets AccessDenied")

# Defence in depth: on a bus whose policy lets everything through, the
# service's own check (bus_check_caller) still refuses a stranger, and admits
# root and a member of the admin group by its supplementary group.
with Harness("bus-open", open_bus=True) as h:
    probe = h.spawn([h.exe("tests/bus-probe"), "org.callhome.Policy1", ADMIN_GROUP],
                    user=SERVICE_USERS["org.callhome.Policy1"])
    h.wait_for_name("org.callhome.Policy1", probe)
    r = call(h, TEST_OTHER, "org.callhome.Policy1", "Guarded")
    check(denied(r), "with an open bus, the service itself still refuses a stranger")
    r = call(h, TEST_ADMIN, "org.callhome.Policy1", "Guarded")
    check(r.returncode == 0 and "granted" in r.stdout,
          "an admin-group member is admitted by the service's own check")
    r = call(h, "root", "org.callhome.Policy1", "Guarded")
    check(r.returncode == 0 and "granted" in r.stdout, "root is admitted by the service's own check")

print("bus policy: all checks passed")
