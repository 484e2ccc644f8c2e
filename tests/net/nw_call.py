#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Calls org.callhome.NetWorker1 on a bus, as whoever runs it (the tests run it
as callhome-policy, root or another user), and prints one JSON line per call:
{"ok": true, "reply": [...]} or {"ok": false, "error": NAME, "message": TEXT,
"details": {...}}.

    nw_call.py ADDRESS METHOD SIGNATURE JSON_ARGS [--fd PATH] [--repeat N] [--reconnect URL] [--parallel N]

JSON_ARGS is a JSON list; with --fd PATH the file PATH (opened for writing)
is passed as the last argument (a Unix fd). "get LastExchange" reads the property.
With --reconnect URL each repeated call is preceded by SetServer(URL), so each
goes out on a new connection (resuming the TLS session), as check-ins hours
apart do. With --parallel N the call is made N times at once, each on its own
connection, and a line is printed for each answer as it arrives, with "n",
the call's number (0 first), in the order they were sent."""

import json
import os
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)

NAME = IFACE = "org.callhome.NetWorker1"
PATH = "/org/callhome/NetWorker1"


def plain(v):
    if isinstance(v, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(v)
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, dbus.Byte):
        return int(v)
    if isinstance(v, dbus.Array) and v.signature == "y":
        return bytes(v).hex()
    if isinstance(v, (int, float)):
        return int(v) if not isinstance(v, float) else float(v)
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def call(bus, method, signature, args, fd_path=None):
    obj = bus.get_object(NAME, PATH, introspect=False)
    try:
        if method == "get":
            reply = obj.Get(IFACE, args[0], dbus_interface="org.freedesktop.DBus.Properties")
            return {"ok": True, "reply": plain(reply)}
        if fd_path:
            fd = os.open(fd_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            args = list(args) + [dbus.types.UnixFd(fd)]
            os.close(fd)
        # Asynchronously: only that path keeps an error's whole body (s a{sv}), not just its text.
        result = {}
        loop = GLib.MainLoop()

        def on_reply(*reply):
            result["reply"] = reply
            loop.quit()

        def on_error(e):
            result["error"] = e
            loop.quit()

        obj.get_dbus_method(method, IFACE)(*args, signature=signature, timeout=120, reply_handler=on_reply,
                                           error_handler=on_error)
        loop.run()
        if "error" in result:
            raise result["error"]
        return {"ok": True, "reply": plain(list(result["reply"]))}
    except dbus.exceptions.DBusException as e:
        body = e.args
        return {"ok": False, "error": e.get_dbus_name(), "message": str(body[0]) if body else "",
                "details": plain(body[1]) if len(body) > 1 else {}}


def parallel(address, method, signature, args, n):
    """n calls sent in order, one connection each; a line per answer as it comes."""
    loop = GLib.MainLoop()
    left = [n]
    connections = []  # held until every answer is in: a connection let go loses its call

    def answer(i, out):
        out["n"] = i
        print(json.dumps(out), flush=True)
        left[0] -= 1
        if not left[0]:
            loop.quit()

    for i in range(n):
        connections.append(dbus.bus.BusConnection(address))
        obj = connections[-1].get_object(NAME, PATH, introspect=False)

        def on_reply(*reply, i=i):
            answer(i, {"ok": True, "reply": plain(list(reply))})

        def on_error(e, i=i):
            body = e.args
            answer(i, {"ok": False, "error": e.get_dbus_name(), "message": str(body[0]) if body else "",
                       "details": plain(body[1]) if len(body) > 1 else {}})

        obj.get_dbus_method(method, IFACE)(*args, signature=signature, timeout=300, reply_handler=on_reply,
                                           error_handler=on_error)
    loop.run()


def main():
    address, method, signature, args = sys.argv[1:5]
    rest = sys.argv[5:]
    fd_path, repeat, reconnect = None, 1, None
    while rest:
        opt = rest.pop(0)
        if opt == "--fd":
            fd_path = rest.pop(0)
        elif opt == "--repeat":
            repeat = int(rest.pop(0))
        elif opt == "--reconnect":
            reconnect = rest.pop(0)
        elif opt == "--parallel":
            return parallel(address, method, signature, json.loads(args), int(rest.pop(0)))
    bus = dbus.bus.BusConnection(address)
    args = json.loads(args)
    for _ in range(repeat):
        out = call(bus, "SetServer", "s", [reconnect]) if reconnect else {"ok": True}
        if out["ok"]:
            out = call(bus, method, signature, args, fd_path)
        if not out["ok"] or repeat == 1:
            print(json.dumps(out), flush=True)
            if not out["ok"]:
                break
    if repeat > 1:
        print(json.dumps({"ok": True, "reply": [], "repeated": repeat}), flush=True)


if __name__ == "__main__":
    main()
