#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A client of org.callhome.Audit1 for the reader and memory tests, run as
some user by the test (DBUS_SYSTEM_BUS_ADDRESS selects the bus).

    audit_client.py stall N [pending]
                                   N ListRecords (ListPendingPage with
                                   "pending") calls for full pages, sent at
                                   once; prints READY and then never reads a
                                   reply (the test stops it by its PID)
    audit_client.py append SIZE N [TAG [META [DIRECTION]]]
                                   N appends of SIZE payload bytes (inbound
                                   unless DIRECTION says), one after
                                   the other, each with META metadata values of
                                   1 KiB, each tried again after LimitsExceeded
                                   (what the daemon asks of a rightful caller);
                                   one line per append: "ok SEQ RETRIES" or
                                   "error NAME MESSAGE"
    audit_client.py readall N      pages through the whole log N times on one
                                   connection, answering the daemon's Pings
                                   between calls as any main loop does, and
                                   trying again after LimitsExceeded or the
                                   bus' NoReply (a read is idempotent); prints
                                   "ok RECORDS RETRIES"
    audit_client.py list AFTER MAX one ListRecords call; prints JSON
                                   {"n": records, "last": last_examined,
                                   "sizes": payload sizes} or "error NAME MESSAGE"
    audit_client.py pending AFTER MAX
                                   one ListPendingPage call; the same JSON, "last"
                                   being next_after_seq
    audit_client.py proof OLD NEW  one GetConsistencyProof call; "ok COUNT" or "error …"
    audit_client.py proof-append OLD NEW
                                   a GetConsistencyProof call and an Append,
                                   sent together in that order (as root, who may
                                   do both); prints the order of the answers
    audit_client.py ack-append SIZE ROOT TAG
                                   an Acknowledge call (ROOT and TAG in hex) and
                                   an Append, sent together in that order (as
                                   root); prints the order of the answers
"""
import json
import os
import signal
import sys
import time

import dbus
import dbus.lowlevel
import dbus.mainloop.glib
from gi.repository import GLib

DEST, PATH, IFACE = "org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1"


LIMITS = "org.freedesktop.DBus.Error.LimitsExceeded"
NO_REPLY = "org.freedesktop.DBus.Error.NoReply"
RETRIES_MAX = 10000


def connect(mainloop=None):
    return dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"], mainloop=mainloop)


def dispatch():
    """What a main loop does between calls: answer the daemon's Peer.Ping, which
    tells it that our replies were read. A short wait for it, not a pause."""
    ctx = GLib.MainContext.default()
    while ctx.iteration(False):
        pass


def call_retrying(bus, member, sig, args, between=None, again=(LIMITS,)):
    for retries in range(RETRIES_MAX):
        try:
            return call(bus, member, sig, args), retries
        except dbus.DBusException as e:
            if e.get_dbus_name() not in again:
                raise
            if between:
                between()
            time.sleep(0.01)  # a rightful caller's back-off, as after any LimitsExceeded
    raise RuntimeError(f"{member}: still LimitsExceeded after {RETRIES_MAX} tries")


def call(bus, member, sig, args, timeout=120):
    return bus.call_blocking(DEST, PATH, IFACE, member, sig, args, timeout=timeout, byte_arrays=True)


def stall(n, pending=False):
    bus = connect()
    for _ in range(n):
        if pending:
            m = dbus.lowlevel.MethodCallMessage(DEST, PATH, IFACE, "ListPendingPage")
            m.append(dbus.UInt64(0), dbus.UInt32(1000), signature="tu")
        else:
            m = dbus.lowlevel.MethodCallMessage(DEST, PATH, IFACE, "ListRecords")
            m.append(dbus.UInt64(0), dbus.UInt32(1000), dbus.Dictionary({}, signature="sv"), signature="tua{sv}")
        bus.send_message(m)
    bus.flush()
    print("READY", flush=True)
    # Never read the socket again: the replies pile up in the bus for us.
    while True:
        signal.pause()


def append(size, n, tag, meta, direction="inbound"):
    bus = connect()
    payload = dbus.ByteArray(b"A" * size)
    metadata = dbus.Dictionary({f"k{i}": "v" * 1024 for i in range(meta)}, signature="ss")
    for i in range(n):
        try:
            (seq, _), retries = call_retrying(bus, "Append", "sssaya{ss}",
                                              ("meter-reads", direction, f"{tag}-{i}", payload, metadata))
            print(f"ok {int(seq)} {retries}", flush=True)
        except dbus.DBusException as e:
            print(f"error {e.get_dbus_name()} {e.get_dbus_message()}", flush=True)


def readall(n):
    bus = connect(dbus.mainloop.glib.DBusGMainLoop())
    total = retries = 0
    for _ in range(n):
        last = 0
        while True:
            (recs, new_last), r = call_retrying(bus, "ListRecords", "tua{sv}",
                                                (dbus.UInt64(last), dbus.UInt32(1000), {}), between=dispatch,
                                                again=(LIMITS, NO_REPLY))
            retries += r
            total += len(recs)
            dispatch()
            if int(new_last) == last:
                break
            last = int(new_last)
    print(f"ok {total} {retries}", flush=True)


def list_records(after, max_):
    bus = connect()
    try:
        recs, last = call(bus, "ListRecords", "tua{sv}", (dbus.UInt64(after), dbus.UInt32(max_), {}))
        print(json.dumps({"n": len(recs), "last": int(last), "sizes": [len(r[7]) for r in recs]}), flush=True)
    except dbus.DBusException as e:
        print(f"error {e.get_dbus_name()} {e.get_dbus_message()}", flush=True)


def list_pending(after, max_):
    bus = connect()
    try:
        recs, nxt = call(bus, "ListPendingPage", "tu", (dbus.UInt64(after), dbus.UInt32(max_)))
        print(json.dumps({"n": len(recs), "last": int(nxt), "sizes": [len(r[7]) for r in recs]}), flush=True)
    except dbus.DBusException as e:
        print(f"error {e.get_dbus_name()} {e.get_dbus_message()}", flush=True)


def proof(old, new):
    bus = connect()
    try:
        p = call(bus, "GetConsistencyProof", "tt", (dbus.UInt64(old), dbus.UInt64(new)))
        print(f"ok {len(p)}", flush=True)
    except dbus.DBusException as e:
        print(f"error {e.get_dbus_name()} {e.get_dbus_message()}", flush=True)


def first_then_append(member, sig, args, what):
    """`member` and an Append sent together in that order; prints the order of the answers."""
    bus = connect(dbus.mainloop.glib.DBusGMainLoop())
    loop = GLib.MainLoop()
    order = []

    def done(what):
        def handler(*args):
            order.append(what)
            if len(order) == 2:
                loop.quit()
        return handler

    bus.call_async(DEST, PATH, IFACE, member, sig, args, done(what), done(f"{what}-error"), timeout=120)
    bus.call_async(DEST, PATH, IFACE, "Append", "sssaya{ss}", ("meter-reads", "inbound", "FENCE", dbus.ByteArray(b"x"), {}),
                   done("append"), done("append-error"), timeout=120)
    loop.run()
    print(" ".join(order), flush=True)


def proof_append(old, new):
    first_then_append("GetConsistencyProof", "tt", (dbus.UInt64(old), dbus.UInt64(new)), "proof")


def ack_append(size, root, tag):
    first_then_append("Acknowledge", "tayay",
                      (dbus.UInt64(size), dbus.ByteArray(bytes.fromhex(root)), dbus.ByteArray(bytes.fromhex(tag))),
                      "acknowledge")


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "stall":
        stall(int(sys.argv[2]), len(sys.argv) > 3 and sys.argv[3] == "pending")
    elif what == "append":
        append(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else f"C{os.getpid()}",
               int(sys.argv[5]) if len(sys.argv) > 5 else 0, sys.argv[6] if len(sys.argv) > 6 else "inbound")
    elif what == "readall":
        readall(int(sys.argv[2]))
    elif what == "list":
        list_records(int(sys.argv[2]), int(sys.argv[3]))
    elif what == "pending":
        list_pending(int(sys.argv[2]), int(sys.argv[3]))
    elif what == "ack-append":
        ack_append(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif what == "proof-append":
        proof_append(int(sys.argv[2]), int(sys.argv[3]))
    elif what == "proof":
        proof(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(f"unknown command {what}")
