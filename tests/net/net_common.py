# SPDX-License-Identifier: Apache-2.0
"""Helpers for the net tests: the nw-request driver (libnetworker behind one
JSON command per line), its configuration file, and small loopback servers.
Every process is started here and stopped by PID."""

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import protocol_common as pc  # noqa: E402
from chtest import popen_wait  # noqa: E402  (on the path protocol_common set)

NW_REQUEST = os.path.join(pc.BUILD_ROOT, "tests", "net", "nw-request")
DEV1 = pc.DEV1


def stop_process(p, timeout=30):
    """SIGTERM, then SIGKILL if it does not end in time: by PID, always reaped."""
    if p.poll() is None:
        p.terminate()
        try:
            popen_wait(p, timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            popen_wait(p, 10)


def write_config(workdir, pki, name="net.conf", device=pc.DEV1, cert=None, key=None, key_uri=None,
                 ca=None, extra=()):
    """A configuration file for the client; cert/key default to the device's."""
    lines = ["# test configuration",
             "CACertificates=%s" % (ca or os.path.join(pki, "ca.crt"))]
    if cert is not False:
        lines.append("ClientCertificate=%s" % (cert or os.path.join(pki, "device-%s.crt" % device)))
        if key_uri:
            lines.append("ClientKeyURI=%s" % key_uri)
        else:
            lines.append("ClientKey=%s" % (key or os.path.join(pki, "device-%s.key" % device)))
    lines += list(extra)
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Client:
    """nw-request as a child process: send() one command, get its one-line answer."""

    def __init__(self, config, env=None, argv_prefix=()):
        self.proc = subprocess.Popen(list(argv_prefix) + [NW_REQUEST, config], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.buf = b""

    def send(self, cmd, timeout=60, **kw):
        obj = dict(kw)
        obj["cmd"] = cmd
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no answer to %s" % cmd)
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
                if not chunk:
                    raise AssertionError("nw-request ended: %s" % self.proc.stderr.read().decode())
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, cmd, **kw):
        kw.setdefault("device", DEV1)
        return self.send(cmd, **kw)

    def close(self):
        p, self.proc = self.proc, None
        if not p:
            return
        try:
            p.stdin.close()
            popen_wait(p, 30)
        except subprocess.TimeoutExpired:
            p.kill()
            popen_wait(p, 10)
        finally:
            p.stdout.close()
            p.stderr.close()
        assert p.returncode == 0, "nw-request exited %d" % p.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None and self.proc:
            self.proc.kill()
        self.close()


def smaps(pid):
    """/proc/PID/smaps_rollup in kB, by field (Private_Clean, Private_Dirty, Rss, ...)."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                out[k] = int(v.split()[0])
    return out


def expect_error(answer, kind):
    assert not answer["ok"], "expected %s, got success: %s" % (kind, answer)
    assert answer["error"] == kind, "expected %s, got %s: %s" % (kind, answer["error"], answer["message"])
    assert answer["dbus"] == "org.callhome.NetWorker1.Error." + kind
    return answer


def expect_ok(answer):
    assert answer["ok"], "expected success, got %s: %s" % (answer.get("error"), answer.get("message"))
    return answer


class Relay:
    """A TCP relay on loopback that records both directions, for looking at
    what crosses a hop (e.g. what a proxy forwarded)."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.recorded = []  # per connection: [towards the target, from the target]
        self.lock = threading.Lock()
        self.stopping = False
        self.threads = []
        self.pumps = []  # per connection, its two pump threads
        self.cut = 0  # so many next connections are closed at once, not relayed nor recorded
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def _pump(self, src, dst, record, ended):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # Half-close: the other direction runs on until its own end, so that
            # what a peer sends after the other's last bytes (a close_notify in
            # answer to one) still crosses, and is recorded.
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            with self.lock:
                ended.append(src)
                last = len(ended) == 2
            if last:
                src.close()
                dst.close()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                cut, self.cut = self.cut > 0, max(self.cut - 1, 0)
            if cut:
                c.close()  # as a connection reset under the ClientHello
                continue
            u = socket.create_connection(self.target)
            rec = (bytearray(), bytearray())
            pumps, ended = [], []  # its two pump threads; those that ended
            with self.lock:
                self.recorded.append(rec)
                self.pumps.append(pumps)
            for a, b, rec in ((c, u, rec[0]), (u, c, rec[1])):
                t = threading.Thread(target=self._pump, args=(a, b, rec, ended), daemon=True)
                t.start()
                pumps.append(t)
                self.threads.append(t)

    def wait_closed(self, timeout=30):
        """Waits until every connection so far has ended in both directions (so
        that what a peer sends last, e.g. its close_notify, is recorded)."""
        with self.lock:
            pumps = [t for p in self.pumps for t in p]
        for t in pumps:
            t.join(timeout)
            assert not t.is_alive(), "a relayed connection did not end"

    def connections(self):
        with self.lock:
            return [(bytes(u), bytes(d)) for u, d in self.recorded]

    def stop(self):
        self.stopping = True
        self.sock.close()


def tls_records(data):
    """Splits bytes into TLS records [(type, version, length)]; raises if they are not TLS."""
    out, i = [], 0
    while i < len(data):
        assert i + 5 <= len(data), "truncated TLS record header at %d" % i
        ctype, ver, n = data[i], data[i + 1] << 8 | data[i + 2], data[i + 3] << 8 | data[i + 4]
        assert ctype in (20, 21, 22, 23), "byte %d: not a TLS record (type %d)" % (i, ctype)
        assert ver in (0x0301, 0x0302, 0x0303), "byte %d: not a TLS version (0x%04x)" % (i, ver)
        out.append((ctype, ver, n))
        i += 5 + n
    return out


def client_hello_session_id(data):
    """The legacy_session_id of the ClientHello at the start of a TLS stream."""
    assert data[0] == 22 and data[5] == 1, "not a ClientHello"
    return bytes(data[9 + 34 + 1:9 + 34 + 1 + data[9 + 34]])


def client_hello_suites(data):
    """The cipher suites (numbers) of the ClientHello at the start of a TLS stream."""
    assert data[0] == 22 and data[5] == 1, "not a ClientHello"
    hello = data[9:]
    i = 2 + 32
    i += 1 + hello[i]                          # legacy session id
    n = hello[i] << 8 | hello[i + 1]
    return [hello[i + 2 + k] << 8 | hello[i + 3 + k] for k in range(0, n, 2)]


def client_hello_extensions(data, with_data=False):
    """Extension types (or {type: data}) of the ClientHello at the start of a TLS stream."""
    assert data[0] == 22 and data[5] == 1, "not a ClientHello"
    n = data[3] << 8 | data[4]
    hello = data[9:5 + n]
    i = 2 + 32
    i += 1 + hello[i]                          # legacy session id
    i += 2 + (hello[i] << 8 | hello[i + 1])    # cipher suites
    i += 1 + hello[i]                          # compression methods
    end = i + 2 + (hello[i] << 8 | hello[i + 1])
    i += 2
    exts = {}
    while i < end:
        n = hello[i + 2] << 8 | hello[i + 3]
        exts[hello[i] << 8 | hello[i + 1]] = bytes(hello[i + 4:i + 4 + n])
        i += 4 + n
    return exts if with_data else list(exts)


def process_memory_holds(pid, needles):
    """Which of needles (bytes) occur in the writable memory of process pid
    (heap, stacks, anonymous mappings), read through /proc/PID/mem."""
    found = set()
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "w" not in fields[1]:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if end - start > 1 << 30:
                continue  # a sanitizer's shadow memory, terabytes reserved: no heap in it
            step = 1 << 24
            for at in range(start, end, step):
                try:
                    mem.seek(at)
                    # overlap by the longest needle, so none is missed across a chunk edge
                    data = mem.read(min(step + 256, end - at))
                except OSError:
                    break
                for n in needles:
                    if n in data:
                        found.add(n)
    return found
