#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Callers that test a service's caller checks and its flow control, run as
some user (Harness.run / Harness.spawn put them under setpriv):

    bus_callers.py first ADDRESS N DEST PATH CALL...
        N new connections, each sending Hello and its first CALL in one write,
        before the bus has answered Hello: the service learns the caller exists
        (NameOwnerChanged) and receives the call at once, before any look-up of
        its credentials can have come back. All N are written before any reply
        is read. Prints one JSON list: per connection, {"ok": true, "body": ...}
        or {"ok": false, "error": NAME, "message": TEXT}.
        CALL is "get IFACE PROP", "getall IFACE", "set IFACE PROP SIG VALUE"
        (VALUE in GVariant text form) or "call IFACE MEMBER SIG ARGS" (ARGS a
        GVariant tuple in text form, "()" for none); with several CALLs, the
        connections take them in turn.

    bus_callers.py flood ADDRESS DEST PATH IFACE PROP ROUNDS PER_ROUND
        One connection sends PER_ROUND calls at a time and never reads a reply:
        in turn Properties.GetAll(IFACE), Introspect, and a call to an object
        that does not exist (each answered, by the daemon or by sd-bus); after each batch a new connection (another caller)
        asks Properties.Get(IFACE, PROP) and must be answered: "FENCE i" per
        round, "STALLED i NAME" if it is not (the bus' NoReply after the call
        timeout), then "DONE", and it waits to be stopped by its PID.

    bus_callers.py many ADDRESS N DEST PATH IFACE PROP
        One GDBus connection (which answers org.freedesktop.DBus.Peer.Ping on
        its own, as any main loop does) asks Properties.Get(IFACE, PROP) N
        times, one after the other; prints "ok N", or "error I NAME MESSAGE".

A test imports it for first_calls() and lower_incoming_limit().
"""
import json
import os
import signal
import socket
import sys

from gi.repository import Gio, GLib

CAPS = Gio.DBusCapabilityFlags.NONE


def socket_path(address):
    for part in address.split(":", 1)[1].split(","):
        k, _, v = part.partition("=")
        if k == "path":
            return v
    raise SystemExit(f"not a unix:path= address: {address}")


def message(dest, path, iface, member, body, serial):
    m = Gio.DBusMessage.new_method_call(dest, path, iface, member)
    if body is not None:
        m.set_body(body)
    m.set_serial(serial)
    return m.to_blob(CAPS)


def first_call(spec, dest, path):
    kind, args = spec.split()[0], spec.split()[1:]
    props = "org.freedesktop.DBus.Properties"
    if kind == "get":
        return props, "Get", GLib.Variant("(ss)", tuple(args))
    if kind == "getall":
        return props, "GetAll", GLib.Variant("(s)", tuple(args))
    if kind == "set":
        iface, prop, sig, value = args[0], args[1], args[2], " ".join(args[3:])
        return props, "Set", GLib.Variant("(ssv)", (iface, prop, GLib.Variant.parse(GLib.VariantType(sig), value)))
    if kind == "call":
        iface, member, sig, value = args[0], args[1], args[2], " ".join(args[3:])
        return iface, member, GLib.Variant.parse(GLib.VariantType(f"({sig})"), value) if sig else None
    raise SystemExit(f"unknown call {spec}")


class RawConnection:
    """A connection spoken by hand, so that its first call goes with Hello."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(socket_path(address))
        self.sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = self.sock.recv(1)
            if not chunk:
                raise SystemExit("the bus closed the connection during authentication")
            line += chunk
        if not line.startswith(b"OK "):
            raise SystemExit(f"authentication refused: {line!r}")
        self.buf = b""

    def send_first(self, dest, path, iface, member, body):
        hello = message("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", None, 1)
        self.sock.sendall(b"BEGIN\r\n" + hello + message(dest, path, iface, member, body, 2))

    def reply(self, serial=2):
        """The reply to `serial`, as a dict; signals and the Hello reply are skipped."""
        while True:
            while len(self.buf) < 16 or len(self.buf) < Gio.DBusMessage.bytes_needed(self.buf[:16]):
                chunk = self.sock.recv(65536)
                if not chunk:
                    return {"ok": False, "error": "closed", "message": "the bus closed the connection"}
                self.buf += chunk
            n = Gio.DBusMessage.bytes_needed(self.buf[:16])
            m, self.buf = Gio.DBusMessage.new_from_blob(self.buf[:n], CAPS), self.buf[n:]
            if m.get_reply_serial() != serial:
                continue
            body = m.get_body()
            if m.get_message_type() == Gio.DBusMessageType.ERROR:
                text = body.unpack()[0] if body is not None and body.n_children() > 0 else ""
                return {"ok": False, "error": m.get_error_name(), "message": text}
            return {"ok": True, "body": body.print_(False) if body is not None else "()"}


def first(address, n, dest, path, specs):
    calls = [first_call(s, dest, path) for s in specs]
    conns = [RawConnection(address) for _ in range(n)]
    for i, c in enumerate(conns):
        c.send_first(dest, path, *calls[i % len(calls)])
    print(json.dumps([c.reply() for c in conns]), flush=True)


def flood(address, dest, path, iface, prop, rounds, per_round):
    import dbus
    import dbus.lowlevel

    stalling = dbus.bus.BusConnection(address)
    for i in range(rounds):
        for j in range(per_round):
            if j % 3 == 0:
                m = dbus.lowlevel.MethodCallMessage(dest, path, "org.freedesktop.DBus.Properties", "GetAll")
                m.append(iface, signature="s")
            elif j % 3 == 1:
                m = dbus.lowlevel.MethodCallMessage(dest, path, "org.freedesktop.DBus.Introspectable", "Introspect")
            else:
                m = dbus.lowlevel.MethodCallMessage(dest, path + "/Nowhere", iface, "Nothing")
            stalling.send_message(m)
        stalling.flush()
        other = dbus.bus.BusConnection(address)
        try:
            other.call_blocking(dest, path, "org.freedesktop.DBus.Properties", "Get", "ss", (iface, prop), timeout=40)
            print("FENCE", i, flush=True)
        except dbus.exceptions.DBusException as e:
            print("STALLED", i, e.get_dbus_name(), flush=True)
            break
        finally:
            other.close()
    print("DONE", flush=True)
    # Never read the socket again: the replies pile up in the bus for us.
    while True:
        signal.pause()


def many(address, n, dest, path, iface, prop):
    flags = Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION
    bus = Gio.DBusConnection.new_for_address_sync(address, flags, None, None)
    for i in range(n):
        try:
            bus.call_sync(dest, path, "org.freedesktop.DBus.Properties", "Get", GLib.Variant("(ss)", (iface, prop)),
                          None, Gio.DBusCallFlags.NONE, 60000, None)
        except GLib.Error as e:
            print("error", i, Gio.DBusError.get_remote_error(e), e.message, flush=True)
            return
    print("ok", n, flush=True)


def first_calls(h, user, n, dest, path, *specs):
    """Runs "first" as `user` on Harness h's bus; returns the list of answers."""
    import chtest

    r = h.run(["/usr/bin/python3", os.path.abspath(__file__), "first", h.address, str(n), dest, path] + list(specs),
              user=user, timeout=120)
    chtest.check(r.returncode == 0 and r.stdout.strip(), f"{n} first call(s) as {user} ran ({r.stderr.strip()[-300:]})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def lower_incoming_limit(nbytes):
    """The buses that Harnesses start from now on keep at most `nbytes` of a
    connection's messages unread by their recipients before they stop reading
    that connection (the system bus' 127 MiB would only make a flood longer)."""
    import chtest

    default = '<limit name="max_incoming_bytes">133169152</limit>'
    chtest.check(default in chtest.BUS_CONF, "the test bus' incoming limit is where it is expected")
    chtest.BUS_CONF = chtest.BUS_CONF.replace(default, f'<limit name="max_incoming_bytes">{nbytes}</limit>')


def main(argv):
    if len(argv) >= 6 and argv[0] == "first":
        first(argv[1], int(argv[2]), argv[3], argv[4], argv[5:])
    elif len(argv) == 7 and argv[0] == "many":
        many(argv[1], int(argv[2]), argv[3], argv[4], argv[5], argv[6])
    elif len(argv) == 8 and argv[0] == "flood":
        flood(argv[1], argv[2], argv[3], argv[4], argv[5], int(argv[6]), int(argv[7]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
