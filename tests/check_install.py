#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`meson install --destdir` puts everything in its FHS place, and what it installs holds together.

Installs the build into a fresh DESTDIR and checks, under the configured
prefix: the daemons in libexec/callhome/, callhome-audit in bin/, nothing in
sbin/; the four units in lib/systemd/system/, sysusers.d and tmpfiles.d files
in lib/; the bus policies in share/dbus-1/system.d/ and one activation file
per bus name in share/dbus-1/system-services/; the man pages. Then, on the
installed files: `systemd-analyze verify --root=DESTDIR` is clean for each unit
(the host's own units copied in beside them for dbus.socket and the targets; an
ExecStart= whose daemon is not built yet is the only complaint let through, and
said); `systemd-analyze security --offline=yes --root=DESTDIR` scores each unit
at most its ceiling (0.2; the net-worker 1.0); each unit's User= is declared in
the installed sysusers.d file and is the user the installed bus policy lets own
the unit's BusName=; each StateDirectory= is made by the installed tmpfiles.d
file with the unit's owner and mode; each activation file names a bus name and
the installed unit (SystemdService=) that owns it."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "harness"))
from units import MAX_EXPOSURE, security, setting, settings  # noqa: E402

build = os.environ.get("CALLHOME_BUILD_ROOT") or os.path.join(os.path.dirname(__file__), "..", "build")
UNITS = sorted(MAX_EXPOSURE)
failures = 0


def ok(cond, msg, detail=""):
    global failures
    if cond:
        print(f"ok - {msg}")
    else:
        failures += 1
        print(f"not ok - {msg}" + (f"\n  {detail}" if detail else ""))
    return cond


opts = {o["name"]: o["value"] for o in
        json.loads(subprocess.run(["meson", "introspect", "--buildoptions", build],
                                  capture_output=True, text=True, check=True).stdout)}
prefix = opts["prefix"]


def under(*parts):
    return os.path.join(prefix, *parts)


def built(name):
    return any(os.path.isfile(p) for p in glob.glob(os.path.join(build, "*", name)))


with tempfile.TemporaryDirectory(prefix="callhome-install-") as dest:
    r = subprocess.run(["meson", "install", "-C", build, "--destdir", dest, "--no-rebuild", "--quiet"],
                       capture_output=True, text=True)
    if not ok(r.returncode == 0, f"meson install --destdir (prefix {prefix})", r.stdout + r.stderr):
        sys.exit(1)

    def inst(path):
        return os.path.join(dest, path.lstrip("/"))

    libexec = under(opts["libexecdir"], "callhome")
    for daemon in ["callhome-collector", "callhome-auditd", "callhome-net-worker", "callhome-policyd"]:
        if built(daemon):
            ok(os.access(inst(os.path.join(libexec, daemon)), os.X_OK), f"{daemon} in {libexec}")
        else:
            print(f"# {daemon}: not built yet")
    ok(os.access(inst(under(opts["bindir"], "callhome-audit")), os.X_OK), f"callhome-audit in {under(opts['bindir'])}")
    sbin = inst(under(opts["sbindir"]))
    ok(not os.path.isdir(sbin) or not os.listdir(sbin), f"nothing in {under(opts['sbindir'])}",
       str(os.listdir(sbin)) if os.path.isdir(sbin) else "")
    unitdir = under("lib", "systemd", "system")
    for unit in UNITS:
        ok(os.path.isfile(inst(os.path.join(unitdir, unit))), f"{unit} in {unitdir}")
    sysusers = inst(under("lib", "sysusers.d", "callhome.conf"))
    tmpfiles = inst(under("lib", "tmpfiles.d", "callhome.conf"))
    ok(os.path.isfile(sysusers), "sysusers.d/callhome.conf installed")
    ok(os.path.isfile(tmpfiles), "tmpfiles.d/callhome.conf installed")
    policydir = inst(under(opts["datadir"], "dbus-1", "system.d"))
    servicedir = inst(under(opts["datadir"], "dbus-1", "system-services"))
    for page in glob.glob(os.path.join(os.path.dirname(__file__), "..", "man", "*.[1-8]")):
        name = os.path.basename(page)
        ok(os.path.isfile(inst(under(opts["mandir"], "man" + name[-1], name))), f"man page {name} installed")
    if failures:
        sys.exit(1)

    users = set(re.findall(r"^u\s+(\S+)", open(sysusers).read(), flags=re.M))
    made = {}  # path -> (mode, user, group)
    for line in open(tmpfiles):
        f = line.split()
        if f and f[0] == "d":
            made[f[1]] = (f[2], f[3], f[4])

    owners = {}  # bus name -> users allowed to own it
    for conf in glob.glob(os.path.join(policydir, "*.conf")):
        for pol in ET.parse(conf).getroot().iter("policy"):
            for allow in pol.iter("allow"):
                if allow.get("own") and pol.get("user"):
                    owners.setdefault(allow.get("own"), set()).add(pol.get("user"))

    texts = {}
    for unit in UNITS:
        text = texts[unit] = open(inst(os.path.join(unitdir, unit))).read()
        user, bus_name = setting(text, "User"), setting(text, "BusName")
        exe = setting(text, "ExecStart").split()[0]
        ok(exe.startswith(libexec + "/"), f"{unit}: ExecStart= names {exe}, in {libexec}")
        ok(user in users, f"{unit}: User={user} is declared in sysusers.d")
        ok(owners.get(bus_name) == {user}, f"{unit}: the bus policy lets {user} own {bus_name}, and nobody else",
           f"owners: {owners.get(bus_name)}")
        mode = setting(text, "StateDirectoryMode", "0755")
        for rel in " ".join(settings(text, "StateDirectory")).split():
            path = "/var/lib/" + rel
            ok(made.get(path) == (mode, user, user), f"{unit}: tmpfiles.d makes {path} {mode} {user}:{user}",
               f"tmpfiles.d has {made.get(path)}")

    for f in sorted(glob.glob(os.path.join(servicedir, "*.service"))):
        text = open(f).read()
        name, unit = setting(text, "Name"), setting(text, "SystemdService")
        ok(os.path.basename(f) == f"{name}.service" and unit in texts
           and setting(texts[unit], "BusName") == name,
           f"activation {os.path.basename(f)}: SystemdService={unit} owns {name}")
    ok(sorted(os.listdir(servicedir)) == sorted(setting(t, "BusName") + ".service" for t in texts.values()),
       "one activation file per unit's bus name")

    # Scores on the installed files, before anything else is copied in.
    for unit in UNITS:
        score, label, worse, out = security(unit, root=dest)
        limit = MAX_EXPOSURE[unit]
        ok(score is not None and score <= limit, f"{unit}: installed, exposure {score} {label} (at most {limit})",
           "\n  ".join(worse) or out)

    # verify resolves dependencies inside the root: the host's own units stand in for the OS.
    shutil.copytree("/usr/lib/systemd/system", inst(unitdir), symlinks=True, dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if n.startswith("callhome-")])
    for unit in UNITS:
        r = subprocess.run(["systemd-analyze", "verify", f"--root={dest}", "--man=no", unit],
                           capture_output=True, text=True)
        exe = setting(texts[unit], "ExecStart").split()[0]
        complaints = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
        if not built(os.path.basename(exe)):
            waived = [l for l in complaints if f"Command {exe} is not executable" in l]
            if waived:
                print(f"# {unit}: {exe} not built yet, so not installed: {waived[0]}")
            complaints = [l for l in complaints if l not in waived]
            ok(not complaints, f"{unit}: systemd-analyze verify --root (but for its daemon, not built yet)",
               "\n  ".join(complaints))
        else:
            ok(r.returncode == 0 and not complaints, f"{unit}: systemd-analyze verify --root", "\n  ".join(complaints))

sys.exit(1 if failures else 0)
