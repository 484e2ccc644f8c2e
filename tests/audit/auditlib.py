# SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the audit tests: an independent RFC 9162 implementation,
C2SP note parsing, running the CLI and the daemon."""
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
import chtest  # noqa: E402

CLI = os.path.join(chtest.BUILD_ROOT, "auditd", "callhome-audit")
DAEMON = os.path.join(chtest.BUILD_ROOT, "auditd", "callhome-auditd")
TOOL = os.path.join(chtest.BUILD_ROOT, "tests", "audit", "audit-testtool")


# --- RFC 9162: the reference server's Python implementation, written from the
# RFC and independent of the C code under test (server/commserver/merkle.py).
sys.path.insert(0, os.path.join(HERE, "..", "..", "server"))
from commserver import merkle  # noqa: E402

leaf_hash = merkle.leaf_hash
node_hash = merkle.node_hash
mth = merkle.tree_hash  # Merkle Tree Hash of a list of leaf data (RFC 9162 §2.1.1)
verify_consistency = merkle.verify_consistency  # §2.1.4.2


# --- CRC-32C (Castagnoli, reflected), written from its definition, not from auditlog/crc32c.c.
_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ _CRC32C_TABLE[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def consistency_proof(m, leaves):
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1; empty for m = 0."""
    return merkle.consistency_proof(m, leaves) if m else []


def parse_note(note):
    body, _, sigs = note.partition("\n\n")
    origin, size, root = body.split("\n")[:3]
    return origin, int(size), base64.b64decode(root), body + "\n", sigs


# --- witnesses: the customer's acknowledgement and the server's cosignature, written here
# from their definitions (checkpoint.h; C2SP tlog-cosignature/v1 by the reference server's code).
from commserver import note as c2sp_note  # noqa: E402


def ack_tag(key_hex, origin, size, root):
    """HMAC-SHA256(HMAC-SHA256(K_0, "callhome-audit acknowledge"), checkpoint body)."""
    a = hmac.new(bytes.fromhex(key_hex), b"callhome-audit acknowledge", hashlib.sha256).digest()
    body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n".encode()
    return hmac.new(a, body, hashlib.sha256).digest()


def ay(data):
    """busctl arguments of a byte array."""
    return [str(len(data))] + [str(b) for b in data]


class Cosigner:
    """A witness like the Communication Server's: its own Ed25519 key, cosigning checkpoints."""
    def __init__(self, name="commserver.test/witness"):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        self.c = c2sp_note.Cosigner(name, Ed25519PrivateKey.generate())
        self.vkey = self.c.vkey()

    def cosign(self, checkpoint_note, timestamp=1767225600):
        """The note with the cosignature line appended, as the device stores it."""
        body = checkpoint_note.partition("\n\n")[0] + "\n"
        return checkpoint_note + self.c.cosign(body.encode(), timestamp) + "\n"


# --- running things ------------------------------------------------------------
def cli(*args, check=None):
    r = subprocess.run([CLI] + list(args), capture_output=True, text=True, timeout=120)
    if check is not None and r.returncode != check:
        chtest.fail(f"callhome-audit {' '.join(args)} exited {r.returncode}, expected {check}:\n{r.stdout}\n{r.stderr}")
    return r


# Work, not wall-clock time: a limit on the CPU seconds the child is charged
# (RLIMIT_CPU, all its threads together). A slow or loaded machine stretches the
# wall clock but charges a process only for what it computes; SIGXCPU ends a run
# that does orders of magnitude more work than a linear scan (a quadratic scan of
# a few MiB needs minutes, the linear one well under a second).
CPU_LIMIT_SECONDS = 20


def run_cpu_limited(argv, seconds=CPU_LIMIT_SECONDS):
    # prlimit(1) (util-linux) sets the limit and execs: a preexec_fn would make every
    # spawn a full fork of the test's Python, ten times slower on a loaded machine.
    r = subprocess.run(["prlimit", f"--cpu={seconds}:{seconds + 1}", "--"] + list(argv),
                       capture_output=True, text=True, timeout=600)
    if r.returncode < 0:
        chtest.fail(f"{' '.join(argv)} was killed by signal {-r.returncode} "
                    f"(SIGXCPU: more than {seconds} CPU seconds, not linear work):\n{r.stdout}{r.stderr}")
    return r


def setup_keys(d, origin="test.callhome/audit"):
    r = cli("setup-keys", f"--dir={d}", f"--origin={origin}", check=0)
    key = next((x.strip() for x in r.stdout.splitlines()
                if len(x.strip()) == 64 and all(c in "0123456789abcdef" for c in x.strip())), None)
    if not key or len(key) != 64:
        chtest.fail(f"setup-keys printed no key:\n{r.stdout}")
    return key


def records(d):
    r = cli("show", f"--dir={d}", "-o", "json")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def gen(d, n, payload=200, seal_every=0, ckpt_every=0, segment="8M", retention=None, synced=True):
    r = subprocess.run([TOOL, "gen"] + ([] if synced else ["--unsynced"]) + [d, str(n), str(payload), str(seal_every), str(ckpt_every), segment]
                       + ([retention] if retention else []), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        chtest.fail(f"audit-testtool gen failed: {r.stderr}")
    # What the tool wrote as root belongs, as the daemon would have written it, to the
    # directory's owner (setup-keys hands the directory to callhome-audit).
    st = os.stat(d)
    for f in os.listdir(d):
        os.chown(os.path.join(d, f), st.st_uid, st.st_gid, follow_symlinks=False)
    return int(r.stdout.strip())


class Notify:
    """A NOTIFY_SOCKET to learn exactly when a daemon is ready."""
    def __init__(self, tmp):
        self.path = os.path.join(tmp, f"notify-{os.getpid()}-{time.monotonic_ns()}")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)

    def wait_ready(self, proc, timeout=20):
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.1)
        while time.monotonic() < deadline:
            try:
                msg = self.sock.recv(4096).decode()
                if "READY=1" in msg.split("\n"):
                    return
            except socket.timeout:
                pass
            if not proc.alive():
                chtest.fail(f"callhome-auditd exited ({proc.popen.returncode}) before it was ready:\n{proc.output()}")
        chtest.fail("callhome-auditd was not ready in time")

    def close(self):
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def start_daemon(h, d, *extra, name="auditd"):
    n = Notify(h.tmp)
    p = h.spawn([DAEMON, f"--state-dir={d}"] + list(extra), env={"NOTIFY_SOCKET": n.path}, name=name)
    try:
        n.wait_ready(p)
    finally:
        n.close()
    return p


# --- calling the daemon on the test bus ---------------------------------------------
AUDIT_DEST = ["org.callhome.Audit1", "/org/callhome/Audit1", "org.callhome.Audit1"]


def audit_call(h, user, member, *args):
    """busctl call of an org.callhome.Audit1 member; the CompletedProcess (JSON on stdout)."""
    return h.busctl(user, "--json=short", "call", *AUDIT_DEST, member, *args)


def audit_append(h, txn, direction="outbound", payload=b"hello", user="callhome-policy"):
    return audit_call(h, user, "Append", "sssaya{ss}", "meter-reads", direction, txn, str(len(payload)),
                      *[str(b) for b in payload], "0")


def audit_property(h, name, user=None):
    r = h.busctl(user, "--json=short", "get-property", *AUDIT_DEST, name)
    return json.loads(r.stdout)["data"] if r.returncode == 0 else None
