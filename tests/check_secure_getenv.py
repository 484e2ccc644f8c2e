#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""No C source reads the environment with getenv(): secure_getenv() only.

The daemons start as root or under units whose environment an
EnvironmentFile= can fill; secure_getenv() gives nothing to a process that
gained privileges at exec, so the environment of whoever started it cannot
steer it. One rule for every file, so a helper moved into a daemon is covered."""
import os
import re
import sys

src = os.environ.get("CALLHOME_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), ".."))
call = re.compile(r"(?<![A-Za-z0-9_])getenv\s*\(")

found = []
for root, dirs, files in os.walk(src):
    dirs[:] = sorted(d for d in dirs if not d.startswith((".", "build")))
    for name in sorted(files):
        if not name.endswith((".c", ".h")):
            continue
        path = os.path.join(root, name)
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if call.search(line):
                    found.append(f"{os.path.relpath(path, src)}:{n}: {line.strip()}")

if found:
    print("not ok - getenv() where secure_getenv() belongs:\n  " + "\n  ".join(found))
    sys.exit(1)
print("ok - every C source reads the environment with secure_getenv()")
