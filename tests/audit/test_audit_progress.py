#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`callhome-audit verify` draws a progress bar on stderr only when stderr is
a terminal: a person watching a long verification sees it move; a script
reading the output (a pipe, a file) never gets control characters.

--progress lowers the size at which the bar is drawn to zero, so a small log
shows the behaviour; the terminal test still decides."""
import os
import pty
import select
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import CLI, gen, setup_keys
from chtest import Harness, check, popen_wait


def run_on_pty(argv):
    """Run argv with stderr on a pseudo-terminal; return (exit status, what the terminal got)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        rc = popen_wait(p, 30)
        os.close(master)
    return rc, out.decode(errors="replace")


with Harness("audit-progress", bus=False) as h:
    d = os.path.join(h.tmp, "log")
    key = setup_keys(d)
    gen(d, 400, 256, 100, 200, "64K")

    rc, tty = run_on_pty([CLI, "verify", f"--dir={d}", f"--key={key}", "--progress"])
    check(rc == 0, "verify on a terminal exits 0")
    check("Verifying: [" in tty and "100%" in tty, "a terminal gets a progress bar that reaches 100%")
    check("\r" in tty and "\033[K" in tty, "the bar redraws in place and is erased at the end")

    r = subprocess.run([CLI, "verify", f"--dir={d}", f"--key={key}", "--progress"], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, "verify into a pipe exits 0")
    check("Verifying:" not in r.stderr and "\r" not in r.stderr and "\033" not in r.stderr,
          "a pipe gets no progress bar and no control characters, even with --progress")

    rc, tty = run_on_pty([CLI, "verify", f"--dir={d}", f"--key={key}", "--no-progress"])
    check(rc == 0 and "Verifying:" not in tty, "--no-progress keeps a terminal quiet too")
