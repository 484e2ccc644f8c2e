#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""README.md's commands work verbatim against `scripts/demo --stay`.

Starts the demo with --stay, waits for the one `export …` line it prints, then
runs every command of the README's ```console blocks (the lines after "$ ")
in bash, after that line, as a reader pasting both would. Each must exit 0 and
print what the README shows, as far as a run can repeat it: the first word of
its output, numbers aside (busctl's type letter, "OK:", the table heading). Then SIGINT to the
demo's PID alone: it must exit 0, having stopped every process it started (each
checked by PID) and removed its run directory."""
import os
import re
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from chtest import SOURCE_ROOT, check, fail, popen_wait, skip_unless_root, wait_for_change  # noqa: E402


def readme_commands(path):
    """[(command, expected output lines)] from the ```console blocks."""
    out, block = [], None
    with open(path) as f:
        for line in f.read().splitlines():
            if block is None:
                if line.strip() == "```console":
                    block = []
                continue
            if line.strip() == "```":
                block = None
                continue
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out:
                out[-1][1].append(line)
    return out


def descendants(pid):
    """Every process below pid, from /proc (by PPid)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


skip_unless_root("the demo")
commands = readme_commands(os.path.join(SOURCE_ROOT, "README.md"))
check(len(commands) >= 8, f"README.md has {len(commands)} commands in ```console blocks")

log = tempfile.NamedTemporaryFile(prefix="callhome-readme-", suffix=".log", delete=False)
env = dict(os.environ)
env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
demo = subprocess.Popen(["/usr/bin/python3", os.path.join(SOURCE_ROOT, "scripts", "demo.py"), "--stay"],
                        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
try:
    def export_line():
        with open(log.name) as f:
            m = re.search(r"^export DBUS_SYSTEM_BUS_ADDRESS=\S+ PATH=\S+$", f.read(), re.M)
        return m.group(0) if m else (demo.poll() is not None and "exited")

    try:
        export = wait_for_change([log.name], export_line, "the demo's export line", timeout=80)
    except AssertionError:
        export = None
    if export in (None, "exited"):
        export = None
    if export is None:
        fail(f"the demo printed no export line:\n{open(log.name).read()[-3000:]}")
    check(True, f"the demo stays up and prints: {export[:70]}…")
    rundir = re.search(r"unix:path=(/\S+)/system_bus_socket", export).group(1)

    for cmd, shown in commands:
        r = subprocess.run(["bash", "-c", export + "\n" + cmd], capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if k != "DBUS_SYSTEM_BUS_ADDRESS"})
        first_shown = re.sub(r"\d+", "N", shown[0].split()[0]) if shown and shown[0].split() else None
        first_got = re.sub(r"\d+", "N", r.stdout.split()[0]) if r.stdout.split() else None
        if r.returncode != 0 or first_shown != first_got:
            print(f"# {cmd}\n# exit {r.returncode}\n# stdout: {r.stdout[:500]}\n# stderr: {r.stderr[:500]}")
        check(r.returncode == 0 and first_shown == first_got,
              f"README: {cmd[:90]} (exit 0, output starts {first_shown!r})")

    started = descendants(demo.pid)
    check(len(started) >= 6, f"the demo runs {len(started)} processes (bus, server, four daemons)")
    os.kill(demo.pid, signal.SIGINT)
    rc = popen_wait(demo, 60)
    check(rc == 0, f"SIGINT: the demo exits 0 ({rc})")
    left = [p for p in started if alive(p)]
    check(not left, f"nothing it started is left running ({left})")
    check(not os.path.exists(rundir), f"its run directory {rundir} is removed")
    out = open(log.name).read()
    check("every process it started has been stopped" in out, "it says it stopped everything")
finally:
    if demo.poll() is None:  # a check failed: the demo stops what it started on SIGTERM
        started = descendants(demo.pid)
        demo.terminate()
        try:
            popen_wait(demo, 60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    os.unlink(log.name)
