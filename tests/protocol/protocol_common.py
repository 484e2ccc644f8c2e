# SPDX-License-Identifier: Apache-2.0
"""Shared helpers for the protocol tests: PKI, a server under test that is
always stopped by PID, raw HTTPS posts, the admin API, xmllint validation."""

import base64
import http.client
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("CALLHOME_SOURCE_ROOT") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD_ROOT = os.environ.get("CALLHOME_BUILD_ROOT") or os.path.join(SOURCE_ROOT, "build")
SOAP_DIR = os.path.join(SOURCE_ROOT, "ipc", "soap")
XSD = os.path.join(SOAP_DIR, "callhome.xsd")
ENVELOPE_XSD = os.path.join(SOAP_DIR, "callhome-envelope.xsd")
WSDL = os.path.join(SOAP_DIR, "callhome.wsdl")
SERVER = os.path.join(SOURCE_ROOT, "server", "callhome-commserver")
SIGN_TOOL = os.path.join(SOURCE_ROOT, "tools", "callhome-sign-package")
MKPKI = os.path.join(SOURCE_ROOT, "tests", "pki", "mkpki")
PYTHON = "/usr/bin/python3"
TNS = "urn:callhome:soap:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
DEV1 = "CH0000000001"
DEV2 = "CH0000000002"

sys.path.insert(0, os.path.join(SOURCE_ROOT, "server"))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "harness"))
import chtest  # noqa: E402


def tests_tmp():
    d = os.path.join(BUILD_ROOT, "tests-tmp")
    os.makedirs(d, exist_ok=True)
    return d


def make_tmpdir(name):
    return tempfile.mkdtemp(prefix="protocol-%s-" % name, dir=tests_tmp())


def pki():
    """The shared test PKI (minted once, reused while valid)."""
    d = os.path.join(tests_tmp(), "pki")
    subprocess.run([MKPKI, d], check=True, timeout=60)
    return d


def envelope(inner: str) -> bytes:
    """A request in the wire form PROTOCOL.md documents."""
    return ('<s:Envelope xmlns:s="%s"><s:Body>%s</s:Body></s:Envelope>' % (SOAP_ENV, inner)).encode()


def idle_checkin(device=DEV1, last=0, version="0.1.0") -> bytes:
    return envelope('<CheckIn xmlns="%s"><DeviceId>%s</DeviceId><AgentVersion>%s</AgentVersion>'
                    '<LastInstruction>%d</LastInstruction></CheckIn>' % (TNS, device, version, last))


class CommServer:
    """callhome-commserver as a child process; stop() always ends it by PID."""

    def __init__(self, pki_dir, workdir, extra_args=(), state_dir=None, server_cert="server"):
        """server_cert: which PKI certificate the server presents (NAME.crt, NAME.key)."""
        self.pki = pki_dir
        self.server_cert = server_cert
        self.workdir = workdir
        self.state_dir = state_dir or os.path.join(workdir, "state")
        self.extra_args = list(extra_args)
        self.proc = None

    def start(self):
        os.makedirs(self.state_dir, exist_ok=True)
        self.stderr = open(os.path.join(self.workdir, "server.stderr"), "ab")
        cmd = [PYTHON, SERVER, "--listen", "127.0.0.1", "--port", "0",
               "--cert", os.path.join(self.pki, self.server_cert + ".crt"),
               "--key", os.path.join(self.pki, self.server_cert + ".key"),
               "--client-ca", os.path.join(self.pki, "ca.crt"),
               "--state-dir", self.state_dir,
               "--witness-key", os.path.join(self.pki, "witness.key")] + self.extra_args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL)
        info = {}
        deadline = time.monotonic() + 20
        buf = b""
        needed = {"LISTENING", "WITNESS"} | (set() if "--no-admin" in self.extra_args else {"ADMIN"})
        while not needed <= info.keys():
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("server did not start; see %s/server.stderr" % self.workdir)
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    k, _, v = line.decode().partition(" ")
                    info[k] = v
        self.port = int(info["LISTENING"])
        self.admin_port = int(info["ADMIN"]) if "ADMIN" in info else None
        self.witness_vkey = info["WITNESS"]
        return self

    def stop(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        try:
            if p.poll() is None:
                p.terminate()
                try:
                    chtest.popen_wait(p, 10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    chtest.popen_wait(p, 10)
        finally:
            if p.stdout:
                p.stdout.close()
            self.stderr.close()
        self.returncode = p.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- clients ----
    def tls_context(self, device=DEV1, cert=None, key=None, no_cert=False):
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        if not no_cert:
            cert = cert or os.path.join(self.pki, "device-%s.crt" % device)
            key = key or os.path.join(self.pki, "device-%s.key" % device)
            ctx.load_cert_chain(cert, key)
        return ctx

    def post(self, body: bytes, device=DEV1, ctx=None, path="/callhome", headers=None):
        """POST raw bytes; returns (status, response bytes)."""
        ctx = ctx or self.tls_context(device)
        conn = http.client.HTTPSConnection("localhost", self.port, context=ctx, timeout=20)
        try:
            h = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
            h.update(headers or {})
            conn.request("POST", path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def get(self, path, device=DEV1):
        conn = http.client.HTTPSConnection("localhost", self.port, context=self.tls_context(device), timeout=20)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def admin(self, method, path, obj=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=20)
        try:
            body = json.dumps(obj).encode() if obj is not None else None
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, json.loads(r.read())
        finally:
            conn.close()

    def enqueue(self, device, instruction):
        st, res = self.admin("POST", "/v1/devices/%s/instructions" % device, instruction)
        assert st == 200, res
        return res["id"]

    def device_state(self, device):
        st, res = self.admin("GET", "/v1/devices/%s" % device)
        assert st == 200, res
        return res

    def message_log(self):
        return os.path.join(self.state_dir, "messages.jsonl")

    def messages(self):
        """The message log's complete lines (one being written is left for later)."""
        with open(self.message_log(), "rb") as f:
            data = f.read()
        return [json.loads(line) for line in data[:data.rfind(b"\n") + 1].split(b"\n") if line.strip()]

    def wait_messages(self, predicate, count=1, start=0, timeout=10):
        """Log lines from index `start` on that match `predicate`, waiting
        until there are at least `count` (the server logs a refused TLS
        handshake in its own thread, possibly after the client saw the alert):
        woken by each write to the log (inotify) or the server's exit."""
        found = []

        def enough():
            try:
                found[:] = [m for m in self.messages()[start:] if predicate(m)]
            except FileNotFoundError:
                found[:] = []
            return len(found) >= count or self.proc is None or self.proc.poll() is not None

        chtest.wait_for_change([self.message_log()], enough, "the server's message log", timeout,
                               pids=[self.proc.pid] if self.proc else [], must=False)
        return found

    def url(self):
        return "https://localhost:%d/callhome" % self.port


def xmllint_validate(data: bytes, schema=ENVELOPE_XSD, workdir=None):
    """(ok, diagnostics) from `xmllint --noout --schema`."""
    fd, path = tempfile.mkstemp(suffix=".xml", dir=workdir or tests_tmp())
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        r = subprocess.run(["xmllint", "--noout", "--nonet", "--schema", schema, path],
                           capture_output=True, timeout=30)
        return r.returncode == 0, r.stderr.decode(errors="replace")
    finally:
        os.unlink(path)


def body_child(data: bytes) -> bytes:
    """The Body's child element as a standalone document (for callhome.xsd alone)."""
    from lxml import etree
    root = etree.fromstring(data)
    child = next(c for c in root.find("{%s}Body" % SOAP_ENV) if isinstance(c.tag, str))
    if child.tag == "{%s}Fault" % SOAP_ENV:
        child = next(c for c in child.find("detail") if isinstance(c.tag, str))
    return etree.tostring(child)


def parse(data: bytes):
    from lxml import etree
    return etree.fromstring(data)


def fault_detail(data: bytes):
    """(detail local name, {child: text}) of a Fault response, else None."""
    from lxml import etree
    root = etree.fromstring(data)
    f = root.find("{%s}Body/{%s}Fault" % (SOAP_ENV, SOAP_ENV))
    if f is None:
        return None
    d = next(c for c in f.find("detail") if isinstance(c.tag, str))
    return etree.QName(d).localname, {etree.QName(c).localname: c.text for c in d}


def find(data: bytes, path: str):
    """Text of the first element at `path` (local names, '/'-separated) under the Body's child."""
    root = parse(data)
    el = next(c for c in root.find("{%s}Body" % SOAP_ENV) if isinstance(c.tag, str))
    for part in path.split("/"):
        el = el.find("{%s}%s" % (TNS, part))
        if el is None:
            return None
    return el.text


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ServerTestCase(unittest.TestCase):
    """One server per test class, stopped in tearDownClass even on failure."""

    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.pki = pki()
        cls.workdir = make_tmpdir(cls.__name__)
        cls.server = CommServer(cls.pki, cls.workdir, cls.server_args)
        try:
            cls.server.start()
        except BaseException:
            cls.server.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def assertValidOut(self, data):
        ok, diag = xmllint_validate(data, workdir=self.workdir)
        self.assertTrue(ok, "server message fails callhome-envelope.xsd:\n%s\n%s" % (diag, data[:2000]))
        ok, diag = xmllint_validate(body_child(data), XSD, workdir=self.workdir)
        self.assertTrue(ok, "server message body fails callhome.xsd:\n%s" % diag)


def b64(b):
    return base64.b64encode(b).decode()


def run_tests():
    """unittest main; exit status for meson."""
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)


def cleanup_tmp(path):
    shutil.rmtree(path, ignore_errors=True)


class DeviceLog:
    """A device audit log stand-in: RFC 9162 tree over records, checkpoints
    signed as C2SP signed notes with Ed25519 (built with hashlib and
    cryptography, independently of the server's acceptance logic)."""

    def __init__(self, device=DEV1, name=None):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from commserver import note
        self.device = device
        self.name = name or "callhome.test/audit/%s" % device
        self.key = Ed25519PrivateKey.generate()
        self.vkey = note.verifier_for(self.name, self.key).vkey()
        self.leaves = []

    def append(self, n=1):
        for _ in range(n):
            self.leaves.append(b"record %d of %s" % (len(self.leaves), self.device.encode()))

    def root(self, size=None):
        from commserver import merkle
        return merkle.tree_hash(self.leaves[:len(self.leaves) if size is None else size])

    def checkpoint(self, size=None, root=None, key=None):
        from commserver import note
        size = len(self.leaves) if size is None else size
        root = self.root(size) if root is None else root
        text = ("%s\n%d\n%s\n" % (self.name, size, b64(root))).encode()
        return note.sign_note(text, self.name, key or self.key).decode()

    def proof(self, old, new=None):
        from commserver import merkle
        new = len(self.leaves) if new is None else new
        if old == 0 or old == new:
            return []
        return merkle.consistency_proof(old, self.leaves[:new])


def witness_xml(checkpoint, proof_from, proof=(), log_key=None):
    from xml.sax.saxutils import escape
    return ("<Witness><Checkpoint>%s</Checkpoint>%s<ProofFrom>%d</ProofFrom>%s</Witness>"
            % (escape(checkpoint), "<LogKey>%s</LogKey>" % log_key if log_key else "",
               proof_from, "".join("<ProofHash>%s</ProofHash>" % b64(h) for h in proof)))


def checkin_with_witness(device, checkpoint, proof_from, proof=(), log_key=None, last=0):
    return envelope('<CheckIn xmlns="%s"><DeviceId>%s</DeviceId><AgentVersion>0.1.0</AgentVersion>'
                    '<LastInstruction>%d</LastInstruction>%s</CheckIn>'
                    % (TNS, device, last, witness_xml(checkpoint, proof_from, proof, log_key)))


def sign_package(pki_dir, repo, package_id, data, version="2.0.1", model="XC-9000", extra=()):
    path = os.path.join(repo, package_id + ".src")
    os.makedirs(repo, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    r = subprocess.run([PYTHON, SIGN_TOOL, "--key", os.path.join(pki_dir, "codesign.key"),
                        "--cert", os.path.join(pki_dir, "codesign.crt"),
                        "--package-id", package_id, "--version", version, "--model", model,
                        "--out-dir", repo, *extra, path], capture_output=True, timeout=60)
    os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError("signing failed: %s" % r.stderr.decode())
    return r.stdout
