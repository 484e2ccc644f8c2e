#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every executable the build produces carries the hardening meson.build asks
for: PIE, full RELRO (GNU_RELRO + BIND_NOW), a non-executable stack, the stack
protector, and _FORTIFY_SOURCE's checked functions where any apply.

Reads the ELF files with readelf (binutils), so the test sees what ships, not
what the build files claim."""
import os
import subprocess
import sys

build = os.environ.get("CALLHOME_BUILD_ROOT")
if not build:
    print("SKIP: CALLHOME_BUILD_ROOT unset")
    sys.exit(77)

exes = []
for root, dirs, files in os.walk(build):
    dirs[:] = [d for d in dirs if not d.endswith(".p") and d not in ("meson-private", "meson-logs", "meson-info", "tests-tmp")]
    for f in files:
        p = os.path.join(root, f)
        if not os.access(p, os.X_OK) or os.path.islink(p):
            continue
        with open(p, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                continue
        exes.append(p)

if not exes:
    print("FAIL: no executables found")
    sys.exit(1)

failures = 0
for p in sorted(exes):
    name = os.path.relpath(p, build)
    hdr = subprocess.run(["readelf", "-W", "-h", "-l", "-d", p], capture_output=True, text=True).stdout
    syms = subprocess.run(["readelf", "-W", "--dyn-syms", p], capture_output=True, text=True).stdout
    problems = []
    if "DYN (Position-Independent Executable" not in hdr and "Type:                              DYN" not in hdr:
        problems.append("not PIE")
    if "GNU_RELRO" not in hdr:
        problems.append("no RELRO")
    dyn_flags = " ".join(l for l in hdr.splitlines() if "(FLAGS)" in l or "(FLAGS_1)" in l)
    if "BIND_NOW" not in dyn_flags and " NOW" not in dyn_flags:
        problems.append("no BIND_NOW (partial RELRO)")
    stack = [l for l in hdr.splitlines() if "GNU_STACK" in l]
    if not stack or "RWE" in stack[0]:
        problems.append("executable stack")
    if "__stack_chk_fail" not in syms:
        problems.append("no stack protector")
    unchecked = [s for s in ("memcpy", "snprintf", "vsnprintf", "read", "printf", "fprintf")
                 if f" {s}@" in syms and f" __{s}_chk@" not in syms]
    if unchecked and "_chk@" not in syms:
        problems.append(f"no _FORTIFY_SOURCE checks ({', '.join(unchecked)})")
    if problems:
        failures += 1
        print(f"not ok - {name}: {', '.join(problems)}")
    else:
        print(f"ok - {name}: PIE, full RELRO, NX stack, stack protector, fortify")

print(f"{len(exes)} executables, {failures} not hardened")
sys.exit(1 if failures else 0)
