#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Each shipped program links only the libraries its work needs (readelf -d
NEEDED): the offline CLI neither the sandbox libraries nor libsystemd. A
library function placed beside code a program does not need drags that code's
libraries into every program that calls it; this catches it.

Only the programs in EXPECTED are checked; the others are listed."""
import os
import re
import subprocess
import sys

build = os.environ.get("CALLHOME_BUILD_ROOT")
if not build:
    print("SKIP: CALLHOME_BUILD_ROOT unset")
    sys.exit(77)

# The C library's parts are always allowed.
BASE = {"libc", "ld-linux-x86-64", "ld-linux-aarch64", "ld-linux-armhf", "libm", "libpthread", "libdl", "librt"}
# With -Dsanitizers=true every program also links the sanitizer runtimes.
SANITIZERS = {"libasan", "libubsan", "libgcc_s", "libstdc++"}
EXPECTED = {
    "auditd/callhome-audit": {"libcrypto", "libjson-c"},
    "auditd/callhome-auditd": {"libsystemd", "libcrypto", "libjson-c", "libseccomp", "libcap-ng"},
    "collector/callhome-collector": {"libsystemd", "libseccomp", "libcap-ng"},
}


def needed(path):
    out = subprocess.run(["readelf", "-W", "-d", path], capture_output=True, text=True, check=True).stdout
    return {re.sub(r"\.so.*$", "", m) for m in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)}


failures = 0
for name, allowed in sorted(EXPECTED.items()):
    path = os.path.join(build, name)
    if not os.path.exists(path):
        failures += 1
        print(f"not ok - {name}: not built")
        continue
    extra = needed(path) - allowed - BASE - SANITIZERS
    if extra:
        failures += 1
        print(f"not ok - {name}: links {', '.join(sorted(extra))}, which it does not use")
    else:
        print(f"ok - {name}: {', '.join(sorted(needed(path) - BASE - SANITIZERS)) or 'libc only'}")
sys.exit(1 if failures else 0)
