#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The repository works wherever it is cloned, /root (0700) included.

Clones this source tree (HEAD, then the working tree's tracked files on top, so
what is tested is what is checked out) into a fresh 0700 directory under a 0700
parent, as a clone into /root is on Debian. Building there again would cost
minutes, so the executables the runs below need are copied from this build into
the clone's build/ (they link nothing from the build tree). Then, as root, from
the clone: the demo, and the harness running a build executable as the admin
user (as the audit tests do). Both must pass: the daemons, dropped to their users,
must find their state and the bus where those users can reach them."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from chtest import BUILD_ROOT, SOURCE_ROOT, check, ensure_users, skip_unless_root  # noqa: E402

EXECUTABLES = ["auditd/callhome-auditd", "auditd/callhome-audit", "collector/callhome-collector",
               "policy/callhome-policyd", "net-worker/callhome-net-worker"]
# A build executable run as another user (as the audit tests run callhome-audit as an admin).
AS_ADMIN = """
import sys
sys.path.insert(0, "tests/harness")
from chtest import TEST_ADMIN, Harness
with Harness("clone-as-admin", bus=False) as h:
    print("RUN DIR", h.tmp)
    r = h.run([h.exe("auditd/callhome-audit"), "--help"], user=TEST_ADMIN)
    sys.exit(r.returncode)
"""
RUNS = [("the demo", ["scripts/demo.py"]),
        ("callhome-audit run as callhome-test-admin", ["-c", AS_ADMIN])]

skip_unless_root("cloning into a 0700 home and dropping to the service users")
if shutil.which("git") is None or subprocess.run(["git", "-C", SOURCE_ROOT, "rev-parse", "HEAD"],
                                                 capture_output=True).returncode != 0:
    print("SKIP: the source tree is not a git checkout")
    sys.exit(77)

parent = tempfile.mkdtemp(prefix="callhome-clone-")  # 0700, like /root
try:
    home = os.path.join(parent, "root")
    os.mkdir(home, 0o700)
    clone = os.path.join(home, "callhome")
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", SOURCE_ROOT, clone], check=True)
    # The working tree's tracked files over the clone: the test sees uncommitted edits too.
    files = subprocess.run(["git", "-C", SOURCE_ROOT, "ls-files", "-z"], capture_output=True,
                           check=True).stdout.split(b"\0")
    for rel in (f.decode() for f in files if f):
        src = os.path.join(SOURCE_ROOT, rel)
        if os.path.isfile(src) and not os.path.islink(src):
            os.makedirs(os.path.dirname(os.path.join(clone, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(clone, rel))
    build = os.path.join(clone, "build")
    for rel in EXECUTABLES:
        os.makedirs(os.path.dirname(os.path.join(build, rel)), exist_ok=True)
        shutil.copy2(os.path.join(BUILD_ROOT, rel), os.path.join(build, rel))
    ensure_users()
    r = subprocess.run(["setpriv", "--reuid=callhome-collector", "--regid=callhome-collector", "--clear-groups",
                        "test", "-x", build], capture_output=True)
    check(r.returncode == 1, f"the clone {clone} is out of the service users' reach, as under /root")

    env = dict(os.environ, CALLHOME_SOURCE_ROOT=clone, CALLHOME_BUILD_ROOT=build)
    env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
    for what, argv in RUNS:
        argv = argv if argv[0] == "-c" else [os.path.join(clone, a) for a in argv]
        r = subprocess.run(["/usr/bin/python3"] + argv, env=env, cwd=clone,
                           capture_output=True, text=True, timeout=150)
        if r.returncode != 0:
            print(f"# {what} from the clone exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        check(r.returncode == 0, f"{what} passes when run from a clone in a 0700 home")
        rundirs = set(re.findall(r"(/tmp/callhome-[\w-]+?)(?:/|\s|$)", r.stdout))
        left = [d for d in rundirs if os.path.exists(d)]
        check(rundirs and not left, f"... and the run's directory {sorted(rundirs)} is removed {left}")
    leftover = [d for d in os.listdir(build) if d == "tests-tmp"]
    check(not leftover, "nothing of the runs was left in the clone's build tree")
finally:
    shutil.rmtree(parent, ignore_errors=True)
