#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""callhome-auditd's memory is bounded (issue 8, item 14).

The worst case the man page describes: 24 clients of policyd's user, each on
its own new connection, append the largest payload at once, while readers page
through a log of the largest records. Every append is answered (after
LimitsExceeded, tried again as the daemon asks), every reader reads the whole
log, and the daemon's peak resident memory (VmHWM) stays under the bound stated
in callhome-auditd(8), which systemd/callhome-auditd.service's MemoryMax= holds."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import setup_keys, start_daemon
from chtest import TEST_ADMIN, Harness, check, proc_status, skip_if_sanitized, skip_unless_root

skip_unless_root("the audit memory test")
skip_if_sanitized("VmHWM would measure ASan's shadow memory and quarantine, not the daemon's bound, and the "
                  "instrumented daemon takes longer over 24 x 16 MiB than the bus waits for a reply; "
                  "the plain build runs this test")
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "audit_client.py")
PY = "/usr/bin/python3"
MAX_PAYLOAD = 16 << 20
APPENDERS = 24
READERS = 2


def stated_bound():
    """The worst case as the man page states it, in MiB."""
    with open(os.path.join(HERE, "..", "..", "man", "callhome-auditd.8")) as f:
        m = re.search(r"at most (\d+) MiB", f.read())
    check(m is not None, "callhome-auditd(8) states the daemon's worst-case memory")
    return int(m.group(1))


def memory_max():
    with open(os.path.join(HERE, "..", "..", "systemd", "callhome-auditd.service")) as f:
        m = re.search(r"^MemoryMax=(\d+)M$", f.read(), re.M)
    return int(m.group(1)) if m else None


def kib(status, field):
    return int(status[field].split()[0])


bound = stated_bound()
check(memory_max() is not None and memory_max() >= bound,
      f"the unit's MemoryMax= ({memory_max()}M) holds the stated bound ({bound} MiB)")

with Harness("audit-memory") as h:
    d = os.path.join(h.tmp, "log")
    setup_keys(d)
    p = start_daemon(h, d, "--epoch-length=1h", "--checkpoint-interval=1h", "--segment-size=1G",
                     "--retention-size=0")
    r = h.run([PY, CLIENT, "append", str(MAX_PAYLOAD), "2", "SEED", "7"], user="callhome-policy", timeout=300)
    check(r.stdout.count("ok ") == 2, f"two records of the largest payload to read ({r.stdout.strip()} {r.stderr[-200:]})")
    idle = kib(proc_status(p.pid), "VmHWM")

    appenders = [h.spawn([PY, CLIENT, "append", str(MAX_PAYLOAD), "1", f"A{i}", "7"], user="callhome-policy",
                         name=f"appender-{i}") for i in range(APPENDERS)]
    readers = [h.spawn([PY, CLIENT, "readall", "1"], user=TEST_ADMIN, name=f"reader-{i}") for i in range(READERS)]
    for c in appenders + readers:
        c.wait(timeout=600)
    peak = kib(proc_status(p.pid), "VmHWM")
    print(f"# VmHWM idle {idle} KiB, peak {peak} KiB", flush=True)
    outs = [c.output().strip() for c in appenders]
    check(all(o.startswith("ok ") for o in outs),
          f"all {APPENDERS} concurrent appends of {MAX_PAYLOAD} bytes are answered "
          f"(tries again after LimitsExceeded: {sum(int(o.split()[2]) for o in outs if o.startswith('ok '))})")
    routs = [c.output().strip() for c in readers]
    check(all(o.startswith("ok ") and int(o.split()[1]) >= 3 for o in routs),
          f"{READERS} readers page through the log of the largest records meanwhile (records, tries: {routs})")
    check(peak <= bound * 1024, f"the daemon's peak resident memory {peak // 1024} MiB stays under the stated {bound} MiB")
    check(p.alive() and h.name_has_owner("org.callhome.Audit1"), "the daemon is alive and owns its name")
    h.stop(p)
