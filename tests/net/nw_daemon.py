# SPDX-License-Identifier: Apache-2.0
"""Helpers for the tests of the callhome-net-worker daemon: start it on a
Harness bus as root (it drops itself to callhome-net and locks down), and call
it through nw_call.py as some user. Every process is started through the
Harness, so it is stopped by PID."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
sys.path.insert(0, HERE)
from chtest import SERVICE_USERS, fail  # noqa: E402
import net_common as nc  # noqa: E402
from net_common import pc  # noqa: E402

NAME = "org.callhome.NetWorker1"
PATH = "/org/callhome/NetWorker1"
NET_USER = SERVICE_USERS[NAME]
POLICY = SERVICE_USERS["org.callhome.Policy1"]
NW_CALL = os.path.join(HERE, "nw_call.py")
EXE = "net-worker/callhome-net-worker"
ERR = NAME + ".Error."


# What callhome-net-worker.service sets: GnuTLS (loaded with Debian's libcurl, by librtmp,
# and never used) skips its implicit initialisation, which loads p11-kit modules.
UNIT_ENV = {"GNUTLS_NO_IMPLICIT_INIT": "1"}


def start(h, config, env=None):
    d = h.spawn([h.exe(EXE), "--config=" + config], name="net-worker", env=env)
    h.wait_for_name(NAME, proc=d)
    return d


def call(h, method, signature="", *args, user=POLICY, fd=None, repeat=None, reconnect=None, timeout=180):
    argv = ["/usr/bin/python3", NW_CALL, h.address, method, signature, json.dumps(list(args))]
    if fd:
        argv += ["--fd", fd]
    if repeat:
        argv += ["--repeat", str(repeat)]
    if reconnect:
        argv += ["--reconnect", reconnect]
    r = h.run(argv, user=user, timeout=timeout)
    if r.returncode != 0 or not r.stdout.strip():
        fail(f"nw_call {method} as {user} failed ({r.returncode}): {r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def ok(a, what):
    if not a["ok"]:
        fail(f"{what}: {a['error']}: {a['message']}")
    return a["reply"]


def error(a, kind, what):
    if a["ok"]:
        fail(f"{what}: expected {kind}, got success {a['reply']}")
    name = kind if "." in kind else ERR + kind
    if a["error"] != name:
        fail(f"{what}: expected {name}, got {a['error']}: {a['message']}")
    return a


def check_in(h, last=0, witness=None, user=POLICY):
    return call(h, "CheckIn", "ssta{sv}", pc.DEV1, "0.1.0", last, witness or {}, user=user)


def last_exchange(h, user=POLICY):
    return ok(call(h, "get", "", "LastExchange", user=user), "LastExchange")


def write_config(workdir, pki, name="net.conf", extra=()):
    path = nc.write_config(workdir, pki, name=name, extra=extra)
    os.chmod(path, 0o600)  # read by root before the drop
    return path
