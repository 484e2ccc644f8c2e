#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The installed units under a real systemd: boots systemd as PID 1 in a container.

No systemd runs as PID 1 on this machine, but systemd-nspawn (Debian's
systemd-container) can boot one in a container: the host's /usr and /etc
read-only, a fresh /var, no network (--private-network). Over them go, from a
`meson install --destdir` of this build: /usr/libexec (the host's, plus
callhome/), the bus policies and activation files, the units (in
/run/systemd/system) and the tmpfiles.d file (in /run/tmpfiles.d, so the boot
makes the state directories). A drop-in sets WatchdogSec=2s so the watchdog is seen
quickly, another gives the collector its simulator source (as a site's
EnvironmentFile= would). tests/units-boot-check.sh then runs inside as a
oneshot unit: for each installed daemon, a call to its bus name starts it
(D-Bus activation, SystemdService=); it must be active (READY=1), run as its
User= with no capabilities, no_new_privs and the seccomp filters of systemd
and its own, ping the watchdog, log no warning, come back after a crash
(Restart=on-failure), and stop cleanly. The container powers off and this test
reads the results.

Skipped (77) when systemd-nspawn is not installed (apt-get install systemd-container)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

build = os.environ.get("CALLHOME_BUILD_ROOT") or os.path.join(os.path.dirname(__file__), "..", "build")
here = os.path.dirname(os.path.abspath(__file__))

if os.geteuid() != 0:
    print("SKIP: booting a container needs root")
    sys.exit(77)
if not shutil.which("systemd-nspawn"):
    print("SKIP: systemd-nspawn is not installed (apt-get install systemd-container); "
          "tests/test_units_run.py stands in for systemd")
    sys.exit(77)

import json  # noqa: E402
sys.path.insert(0, os.path.join(here, "harness"))
from chtest import popen_wait  # noqa: E402
if os.environ.get("CALLHOME_SANITIZERS") == "1":
    print("SKIP: not under ASan+UBSan: the sanitizer runtime makes system calls (readlink, sigaltstack, the leak "
          "checker's ptrace) that the units' SystemCallFilter= denies; the plain build runs this test")
    sys.exit(77)
_opts = {o["name"]: o["value"] for o in json.loads(subprocess.run(
    ["meson", "introspect", build, "--buildoptions"], capture_output=True, text=True, check=True).stdout)}
if _opts["prefix"] != "/usr":
    # The container runs the host's /usr with ours bound over libexec and the unit dirs:
    # only a /usr build installs where the units' ExecStart= and the container look.
    print(f"SKIP: this build's prefix is {_opts['prefix']}, not /usr (meson setup --prefix=/usr)")
    sys.exit(77)

base = os.path.join(build, "tests-tmp")
os.makedirs(base, exist_ok=True)
tmp = tempfile.mkdtemp(prefix="units-boot-", dir=base)
dest = os.path.join(tmp, "dest")
r = subprocess.run(["meson", "install", "-C", build, "--destdir", dest, "--no-rebuild", "--quiet"],
                   capture_output=True, text=True)
if r.returncode != 0:
    print(f"not ok - meson install --destdir:\n{r.stdout}{r.stderr}")
    sys.exit(1)


def staged(name, *copies):
    """A directory to bind over the container's: the host's contents, then ours on top."""
    d = os.path.join(tmp, name)
    for src in copies:
        if os.path.isdir(src):
            shutil.copytree(src, d, symlinks=True, dirs_exist_ok=True)
    os.makedirs(d, exist_ok=True)
    return d


libexec = staged("libexec", "/usr/libexec", os.path.join(dest, "usr/libexec"))
policies = staged("system.d", "/usr/share/dbus-1/system.d", os.path.join(dest, "usr/share/dbus-1/system.d"))
services = staged("system-services", "/usr/share/dbus-1/system-services",
                  os.path.join(dest, "usr/share/dbus-1/system-services"))
units = staged("units", os.path.join(dest, "usr/lib/systemd/system"))
for unit in os.listdir(units):
    if unit.endswith(".service"):
        os.makedirs(os.path.join(units, unit + ".d"))
        with open(os.path.join(units, unit + ".d", "test.conf"), "w") as f:
            f.write("[Service]\nWatchdogSec=2s\n")
with open(os.path.join(units, "callhome-collector.service.d", "test.conf"), "a") as f:
    f.write("Environment=CALLHOME_COLLECTOR_SOURCE=sim:7\n")
# The net-worker's configuration, as a site installs it in /etc (read-only here): check.sh writes it.
with open(os.path.join(units, "callhome-net-worker.service.d", "test.conf"), "a") as f:
    f.write("ExecStart=\nExecStart=/usr/libexec/callhome/callhome-net-worker --config=/run/callhome-test/net-worker.conf\n")
shutil.copy(os.path.join(here, "units-boot-check.sh"), os.path.join(tmp, "check.sh"))
# The CLI as installed (the container's /usr/bin is the host's): /run/out/callhome-audit.
shutil.copy(os.path.join(dest, "usr/bin/callhome-audit"), tmp)
with open(os.path.join(units, "callhome-units-check.service"), "w") as f:
    f.write("[Unit]\nAfter=dbus.socket\nRequires=dbus.socket\n[Service]\nType=oneshot\nTimeoutStartSec=200\n"
            "ExecStart=/bin/bash /run/out/check.sh\nExecStopPost=/bin/systemctl poweroff --no-block\n")
out = tmp  # check.sh is read from, and writes its results to, /run/out

root = os.path.join(tmp, "root")
for d in ["usr", "etc", "var", "dev", "proc", "sys", "run", "tmp", "root"]:
    os.makedirs(os.path.join(root, d))
for link in ["bin", "lib", "lib64", "sbin"]:
    os.symlink(f"usr/{link}", os.path.join(root, link))
shutil.copy("/etc/os-release", os.path.join(root, "etc", "os-release"))  # what nspawn looks for

# The installed tmpfiles.d file makes the state directories at boot (systemd-tmpfiles-setup).
tmpfiles = os.path.join(dest, "usr/lib/tmpfiles.d/callhome.conf")
machine = f"callhome-units-{os.getpid()}"
argv = ["systemd-nspawn", "-D", root, f"--machine={machine}", "--register=no", "--keep-unit",
        "--private-network",
        # nspawn's own seccomp allowlist for the container answers Landlock EPERM, and the
        # daemons refuse to start without it (common/daemon.c): let it through, as a host has it.
        "--system-call-filter=landlock_create_ruleset landlock_add_rule landlock_restrict_self",
        "--bind-ro=/usr:/usr", "--bind-ro=/etc:/etc", "--tmpfs=/var",
        f"--bind={out}:/run/out", f"--bind-ro={tmpfiles}:/run/tmpfiles.d/callhome.conf",
        f"--bind-ro={units}:/run/systemd/system", f"--bind-ro={libexec}:/usr/libexec",
        f"--bind-ro={policies}:/usr/share/dbus-1/system.d", f"--bind-ro={services}:/usr/share/dbus-1/system-services",
        "--boot", "systemd.unit=basic.target", "systemd.wants=callhome-units-check.service"]
log_path = os.path.join(tmp, "nspawn.log")
with open(log_path, "w") as log:
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
try:
    rc = popen_wait(p, 240)
except subprocess.TimeoutExpired:
    p.send_signal(signal.SIGKILL)  # by its PID: nspawn takes the container with it
    p.wait()
    rc = "timeout"

result = os.path.join(tmp, "result")
lines = open(result).read().splitlines() if os.path.exists(result) else []
print("\n".join(lines))
if rc != 0 or "done" not in lines or any(l.startswith("not ok") for l in lines) \
        or not any(l.startswith("ok") for l in lines):
    print(f"not ok - the container (systemd-nspawn exit {rc}) ran every check; its console:")
    print(open(log_path, errors="replace").read()[-6000:])
    for f in sorted(os.listdir(tmp)):
        if f.startswith("journal-"):
            print(f"--- the journal of callhome-{f[8:]} ---\n" + open(os.path.join(tmp, f), errors="replace").read()[-6000:])
    sys.exit(1)
print("ok - systemd as PID 1 in a container ran every check")
shutil.rmtree(tmp, ignore_errors=True)
