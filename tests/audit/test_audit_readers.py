#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""No reader can stop callhome-auditd (issue 8).

  - Replies are bounded below the bus' message limit by their marshalled size:
    a page of records of the largest payload comes back (one such record alone
    if it must), the daemon keeps its name, and paging on reads every record;
    the same for the outbox, paged with ListPendingPage.
  - Readers that ask for full pages (of ListRecords, and of ListPendingPage,
    whose replies count as unread the same way) and never read their socket: policyd's
    user still appends, every append is answered (none AccessDenied), and the
    daemon keeps its name. The bound is the bus' own: every append must be
    answered before its (generous) call timeout, never a duration asserted.
  - A first consistency proof over a long log is computed a bounded number of
    leaves at a time: an append sent after it is answered before it. The same
    for a first Acknowledge, whose witness record carries such a proof.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import ack_tag, audit_call, gen, parse_note, setup_keys, start_daemon
from chtest import TEST_ADMIN, Harness, check, skip_unless_root

skip_unless_root("the audit readers test")
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "audit_client.py")
PY = "/usr/bin/python3"
MAX_PAYLOAD = 16 << 20


def client(h, user, *args, timeout=300):
    r = h.run([PY, CLIENT] + [str(a) for a in args], user=user, timeout=timeout)
    return r.stdout.strip().splitlines(), r.stderr


def big_appends(h, n, tag, size=MAX_PAYLOAD, meta=0, direction="inbound"):
    out, err = client(h, "callhome-policy", "append", size, n, tag, meta, direction)
    check(len(out) == n and all(x.startswith("ok ") for x in out),
          f"{n} append(s) of {size} bytes and {meta} KiB of metadata ({out} {err[-300:]})")
    return [int(x.split()[1]) for x in out]


with Harness("audit-readers") as h:
    d = os.path.join(h.tmp, "log")
    setup_keys(d)
    p = start_daemon(h, d, "--epoch-length=1h", "--checkpoint-interval=1h", "--segment-size=1G",
                     "--retention-size=0")

    # Item 12: a page of records at the largest payload stays below the bus
    # limit. The record just under 16 MiB, then the largest (payload and
    # metadata): together over the bus' 32 MiB, a page must stop between them.
    # Outbound, so that they are the outbox too.
    seqs = big_appends(h, 1, "UNDER", size=MAX_PAYLOAD - 256, direction="outbound")
    seqs += big_appends(h, 1, "LARGEST", meta=7, direction="outbound")
    seqs += big_appends(h, 1, "BIG", direction="outbound")
    got, last = [], seqs[0] - 1
    for _ in range(6):
        out, err = client(h, TEST_ADMIN, "list", last, 1000)
        check(len(out) == 1 and out[0].startswith("{"), f"ListRecords after {last} answers ({out} {err[-300:]})")
        page = json.loads(out[0])
        check(page["n"] >= 1 or page["last"] >= seqs[-1], f"... with at least one record ({page['n']})")
        got += page["sizes"]
        last = page["last"]
        if last >= seqs[-1]:
            break
    check(got == [MAX_PAYLOAD - 256, MAX_PAYLOAD, MAX_PAYLOAD], f"paging on reads the three largest records ({len(got)} records read)")
    got, after = [], 0
    for _ in range(6):
        out, err = client(h, TEST_ADMIN, "pending", after, 1000)
        check(len(out) == 1 and out[0].startswith("{"), f"ListPendingPage after {after} answers ({out} {err[-300:]})")
        page = json.loads(out[0])
        check(page["n"] == 1, f"... with one record of the largest size, the next one not fitting ({page['n']})")
        got += page["sizes"]
        after = page["last"]
        if after == 0:
            break
    check(got == [MAX_PAYLOAD - 256, MAX_PAYLOAD, MAX_PAYLOAD], f"paging the outbox on reads the three ({len(got)} records read)")
    check(p.alive() and h.name_has_owner("org.callhome.Audit1"), "the daemon is alive and still owns its name")

    # Item 13: stalled readers do not hold up appends nor deny them, whether
    # they page through the log or through the outbox.
    stalled = [h.spawn([PY, CLIENT, "stall", "4"] + (["pending"] if i % 2 else []), user=TEST_ADMIN, name=f"stalled-{i}")
               for i in range(6)]
    h.wait_for(lambda: all("READY" in s.output() for s in stalled), "the stalled readers to send their calls")
    out, err = client(h, "callhome-policy", "append", 100, 20, "AFTER-STALL", timeout=200)
    check(len(out) == 20 and all(x.startswith("ok ") for x in out),
          f"20 appends from policyd's user complete while 6 readers stall with 24 full-page calls, 12 of them "
          f"ListPendingPage ({out[-3:]} {err[-300:]})")
    check(not any("AccessDenied" in x for x in out), "... and none is AccessDenied")
    check(p.alive() and h.name_has_owner("org.callhome.Audit1"), "the daemon still owns its name")
    for s in stalled:
        h.stop(s)
    h.stop(p)

    # Item 13: the first proof after a start hashes every leaf of the log, a
    # bounded number per turn of the loop: an append sent right after it is
    # answered first (it waits for one turn, not for the whole log).
    d = os.path.join(h.tmp, "log-proof")
    key = setup_keys(d)
    n = gen(d, 60000, 16, 0, 0, "1G")
    p = start_daemon(h, d, "--epoch-length=1h", "--checkpoint-interval=1h")
    out, err = client(h, "root", "proof-append", 1, n)
    check(out == ["append proof"], f"an append sent after the first proof over {n} records is answered before it ({out} {err[-300:]})")
    out, err = client(h, TEST_ADMIN, "proof", 1000, n)
    check(out and out[0].startswith("ok "), f"... and proofs are answered ({out})")

    # A first Acknowledge after a start: its witness record carries a proof
    # over the whole log, computed the same way, so an append sent after it is
    # answered first; then the Acknowledge is.
    r = audit_call(h, "root", "GetCheckpoint")
    check(r.returncode == 0, f"a checkpoint to acknowledge ({r.stderr})")
    origin, size, root, _, _ = parse_note(json.loads(r.stdout)["data"][0])
    h.stop(p)
    p = start_daemon(h, d, "--epoch-length=1h", "--checkpoint-interval=1h", name="auditd-ack")
    out, err = client(h, "root", "ack-append", size, root.hex(), ack_tag(key, origin, size, root).hex())
    check(out == ["append acknowledge"],
          f"an append sent after the first Acknowledge over {size} records is answered before it, and it is answered "
          f"({out} {err[-300:]})")
    h.stop(p)
