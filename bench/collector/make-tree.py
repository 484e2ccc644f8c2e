#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""make-tree.py DIR [COUNTERS]: a sysfs-style counter tree (ipc/COUNTERS.md)
with COUNTERS billing counters (default 200), one marker and four toners."""
import os
import sys

root = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
units = ["Impressions", "Sheets", "Pages"]


def put(rel, value):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(f"{value}\n")


put("identity/serial", "BENCH0001")
put("identity/model", "Benchmark Printer 200")
os.makedirs(os.path.join(root, "billing"), exist_ok=True)
for i in range(n):
    put(f"billing/Tray{i:03d}{units[i % 3]}", 1000000 + i * 7919)
put("markers/1/life_count", 123456789)
put("markers/1/counter_unit", "impressions")
for i, colour in enumerate(["black", "cyan", "magenta", "yellow"], 1):
    put(f"supplies/{i}/type", "toner")
    put(f"supplies/{i}/class", "supplyThatIsConsumed")
    put(f"supplies/{i}/description", f"{colour.title()} Toner Cartridge")
    put(f"supplies/{i}/colorant", colour)
    put(f"supplies/{i}/unit", "tenthsOfGrams")
    put(f"supplies/{i}/level", 1000 + i)
    put(f"supplies/{i}/max_capacity", 2400)
for dirpath, dirnames, filenames in os.walk(root):
    os.chmod(dirpath, 0o755)
    for f in filenames:
        os.chmod(os.path.join(dirpath, f), 0o644)
print(f"{root}: {n} billing counters, 1 marker, 4 supplies")
