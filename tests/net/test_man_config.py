#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""callhome-net-worker(8) and the code agree on the configuration: every key
the parser (net-worker/nw-config.c) accepts is documented in the man page's
CONFIGURATION section, and every key documented there is accepted."""

import os
import re
import sys

ROOT = os.environ.get("CALLHOME_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

with open(os.path.join(ROOT, "net-worker", "nw-config.c")) as f:
    code = set(re.findall(r'streq\(key, "([A-Za-z0-9]+)"\)', f.read()))
with open(os.path.join(ROOT, "man", "callhome-net-worker.8")) as f:
    man = f.read()
section = man.split(".SH CONFIGURATION", 1)[1].split("\n.SH ", 1)[0]
documented = set()
for line in section.splitlines():
    if line.startswith(".BI "):
        documented |= set(re.findall(r"\b([A-Z][A-Za-z0-9]+)=", line))

ok = True
for key in sorted(code - documented):
    print(f"not ok - {key}= is accepted but not documented in callhome-net-worker(8)")
    ok = False
for key in sorted(documented - code):
    print(f"not ok - {key}= is documented but the parser does not know it")
    ok = False
if ok:
    print(f"ok - the {len(code)} configuration keys of the code and of callhome-net-worker(8) are the same")
sys.exit(0 if ok else 1)
