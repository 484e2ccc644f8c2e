#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""RAUC as the installer (callhome-policyd --rauc), against a real `rauc
service` on the test's bus with file-backed slots (two raw slot images and a
custom bootloader backend that keeps its state in a file): a RAUC bundle
offered by the reference server and signed with callhome's code-signing key
is fetched and verified by policyd, then installed by RAUC's InstallBundle:
the other slot holds the image and is the primary one. A bundle that passes
callhome's checks but that RAUC refuses (for another compatible) is reported
Failed with RAUC's reason, removed from the drop directory, and the version
floor goes back to what it was. An installed bundle does not stay in the
drop directory. The bus is open here: RAUC's own bus policy
is not part of callhome (callhome-policyd(8) says what a site must allow)."""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_instruction_common import (check, check_in, connect, pc, software_system,  # noqa: E402
                                     wait_report, wait_verdict)
from test_software_fetch import window_from  # noqa: E402
from chtest import Harness, skip_unless_root  # noqa: E402

BOOTLOADER = """#!/bin/sh
# A bootloader whose state is a file: what RAUC's custom backend asks of it.
state={state}
case "$1" in
get-primary) cat "$state" 2>/dev/null || echo A ;;
set-primary) echo "$2" > "$state" ;;
get-state) echo good ;;
set-state) ;;
get-current) echo A ;;
esac
"""


def rauc_setup(h):
    d = os.path.join(h.tmp, "rauc")
    os.makedirs(os.path.join(d, "mnt"))
    os.makedirs(os.path.join(d, "data"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", os.path.join(d, "rauc.key"), "-out", os.path.join(d, "rauc.crt"),
                    "-subj", "/CN=callhome test RAUC bundles", "-days", "2",
                    "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
                    "-addext", "basicConstraints=critical,CA:TRUE"], check=True, capture_output=True, timeout=30)
    with open(os.path.join(d, "bootloader.sh"), "w") as f:
        f.write(BOOTLOADER.format(state=os.path.join(d, "primary")))
    os.chmod(os.path.join(d, "bootloader.sh"), 0o755)
    for slot in ("a", "b"):
        with open(os.path.join(d, f"slot-{slot}.img"), "wb") as f:
            f.truncate(1 << 20)
    with open(os.path.join(d, "system.conf"), "w") as f:
        f.write(f"""[system]
compatible=callhome-test-printer
bootloader=custom
mountprefix={d}/mnt
data-directory={d}/data
bundle-formats=plain

[handlers]
bootloader-custom-backend={d}/bootloader.sh

[keyring]
path={d}/rauc.crt

[slot.rootfs.0]
device={d}/slot-a.img
type=raw
bootname=A

[slot.rootfs.1]
device={d}/slot-b.img
type=raw
bootname=B
""")
    return d


def rauc_bundle(d, name, image, compatible="callhome-test-printer"):
    src = os.path.join(d, name)
    os.makedirs(src)
    with open(os.path.join(src, "rootfs.img"), "wb") as f:
        f.write(image)
    with open(os.path.join(src, "manifest.raucm"), "w") as f:
        f.write(f"[update]\ncompatible={compatible}\nversion=1\n\n[bundle]\nformat=plain\n\n"
                "[image.rootfs]\nfilename=rootfs.img\n")
    out = os.path.join(d, name + ".raucb")
    subprocess.run(["rauc", "bundle", f"--cert={d}/rauc.crt", f"--key={d}/rauc.key", src, out],
                   check=True, capture_output=True, timeout=60)
    shutil.rmtree(src)
    with open(out, "rb") as f:
        return f.read()


def main():
    skip_unless_root("the RAUC install test")
    if not shutil.which("rauc") or not shutil.which("mksquashfs"):
        print("SKIP: rauc and squashfs-tools are not installed")
        sys.exit(77)
    with Harness("software-rauc", open_bus=True) as h, \
            software_system(h, repo=os.path.join(h.tmp, "repo"), extra=["--rauc"]) as s:
        repo = os.path.join(h.tmp, "repo")
        d = rauc_setup(h)
        rauc = h.spawn(["rauc", "service", f"--conf={d}/system.conf", "--override-boot-slot=A"], name="rauc")
        h.wait_for_name("de.pengutronix.rauc", proc=rauc)
        s.start_all()
        image = os.urandom(200000)
        pc.sign_package(s.dirs["pki"], repo, "os", rauc_bundle(d, "good", image), version="1.0.0")
        connect(s)
        s.set_policy(SoftwareUpdates="automatic", MaintenanceWindowStart=window_from(-1), MaintenanceWindowMinutes=120)

        good = s.enqueue({"type": "SoftwareAvailable", "package": "os"})
        check_in(s)
        rep = wait_report(s, good, "Done")
        check("installed by RAUC" in rep.get("Detail", ""), f"the bundle is verified and RAUC installs it ({rep['Detail']})")
        with open(os.path.join(d, "slot-b.img"), "rb") as f:
            check(f.read(len(image)) == image, "the other slot holds the image")
        with open(os.path.join(d, "primary")) as f:
            check(f.read().strip() == "B", "and is the one to boot next")
        v = wait_verdict(s, good, "installed")
        check(v["arguments"] == {"installed": "os-1.0.0.pkg", "installer": "rauc"}, "the install is audited")
        floor = os.path.join(s.dirs["policy"], "software-floor-os")
        with open(floor) as f:
            check(f.read() == "1.0.0\n", "the version floor is raised")
        check(os.listdir(s.drop) == [], "the bundle, in its slot now, is gone from the drop directory")

        # Good for callhome, not for RAUC: another device's bundle.
        pc.sign_package(s.dirs["pki"], repo, "os", rauc_bundle(d, "alien", os.urandom(1000), compatible="other"),
                        version="1.0.1")
        alien = s.enqueue({"type": "SoftwareAvailable", "package": "os"})
        check_in(s)
        rep = wait_report(s, alien, "Failed")
        check("RAUC did not install os-1.0.1.pkg" in rep.get("Detail", "") and "ompatible" in rep["Detail"],
              f"RAUC's refusal is reported with its reason ({rep['Detail']})")
        check("RAUC did not install" in wait_verdict(s, alien, "failed")["why"], "... and audited")
        with open(floor) as f:
            check(f.read() == "1.0.0\n", "the version floor is back where it was")
        check(os.listdir(s.drop) == [], "the refused bundle is gone from the drop directory")
        h.stop(rauc)
        check(s.stop("policyd") == 0, "policyd stops cleanly (under ASan: nothing leaked)")


if __name__ == "__main__":
    main()
