#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a C file defining `const char NAME[]` (the input's bytes, NUL
terminated) and `const size_t NAME_len`: the policy schema is built into
callhome-policyd, so the daemon validates against exactly the XSD it ships."""
import sys

src, out, name = sys.argv[1:4]
data = open(src, "rb").read()
with open(out, "w") as f:
    f.write("/* Generated from %s by policy/embed-file.py. Do not edit. */\n#include <stddef.h>\n" % src.split("/")[-1])
    f.write("extern const char %s[];\nextern const size_t %s_len;\n" % (name, name))
    f.write("const char %s[] = {\n" % name)
    for i in range(0, len(data), 16):
        f.write("        " + ", ".join(str(b) for b in data[i:i + 16]) + ",\n")
    f.write("        0,\n};\nconst size_t %s_len = %d;\n" % (name, len(data)))
