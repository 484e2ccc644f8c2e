#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every source, build, script and doc file the project tracks names its
license with an SPDX-License-Identifier line near its top (vendors shipping
callhome in firmware rely on that for their license scans)."""
import os
import subprocess
import sys

src = os.environ.get("CALLHOME_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), ".."))
r = subprocess.run(["git", "-C", src, "ls-files"], capture_output=True, text=True)
if r.returncode != 0:
    print("SKIP: not a git checkout")
    sys.exit(77)

CHECKED_EXT = (".c", ".h", ".py", ".sh", ".build", ".txt", ".md", ".xml", ".xsd", ".wsdl", ".conf",
               ".service", ".socket", ".timer", ".1", ".5", ".7", ".8", ".in")
CHECKED_NAMES = ("meson.build", "meson_options.txt", "run", "check", "demo", "install-deps",
                 ".editorconfig", ".clang-format")
EXEMPT_DIRS = ("/corpus-", "/fuzz/corpus", "tests/data/", "/testdata/")
missing = []
for path in r.stdout.splitlines():
    base = os.path.basename(path)
    if any(d in "/" + path for d in EXEMPT_DIRS) or base == "LICENSE":
        continue
    if not (path.endswith(CHECKED_EXT) or base in CHECKED_NAMES):
        continue
    try:
        with open(os.path.join(src, path), errors="replace") as f:
            head = f.read(1024)
    except OSError:
        continue
    if "SPDX-License-Identifier:" not in head:
        missing.append(path)

for p in missing:
    print(f"not ok - {p}: no SPDX-License-Identifier in its first lines")
print(f"{len(missing)} file(s) without an SPDX header")
sys.exit(1 if missing else 0)
