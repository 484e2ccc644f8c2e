# SPDX-License-Identifier: Apache-2.0
"""A tiny authoritative DNS responder on loopback UDP and TCP (the same port)
for the net tests: A and AAAA answers from a table the test changes while it
runs, NXDOMAIN for any other name. A name set with truncate=True is answered
over UDP with the TC bit and no answer, so that the full answer must be asked
over TCP. tcp_mode makes the TCP side hostile: "answer" (the default),
"short" (announces 65535 bytes, sends a header's worth, closes) or "silent"
(reads the query, never answers, holds the connection until stop()). Counts
the queries it received, per transport. Threads of the test process; stop()
closes its sockets and joins them."""

import ipaddress
import socket
import struct
import threading


def _recv_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class DnsResponder:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(16)
        self.tcp_mode = "answer"
        self.lock = threading.Lock()
        self.records = {}  # name (lower case) -> (address, ttl, truncate)
        self.queries = []  # (name, qtype, "udp" or "tcp")
        self.conns = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.tcp_thread = threading.Thread(target=self._serve_tcp, daemon=True)
        self.tcp_thread.start()

    def set(self, name, address, ttl, truncate=False):
        with self.lock:
            self.records[name.lower()] = (address, ttl, truncate)

    def remove(self, name):
        with self.lock:
            self.records.pop(name.lower(), None)

    def count(self, name, transport=None):
        with self.lock:
            return sum(1 for n, _, t in self.queries if n == name.lower() and transport in (None, t))

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(1500)
            except OSError:
                return
            try:
                reply = self._answer(data)
            except (ValueError, IndexError, struct.error):
                continue
            self.sock.sendto(reply, peer)

    def _serve_tcp(self):
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._serve_conn, args=(conn,), daemon=True).start()

    def _serve_conn(self, conn):
        try:
            n = struct.unpack("!H", _recv_exactly(conn, 2))[0]
            reply = self._answer(_recv_exactly(conn, n), "tcp")
            if self.tcp_mode == "silent":
                return  # held open until stop()
            if self.tcp_mode == "short":
                conn.sendall(struct.pack("!H", 65535) + reply[:12])
            else:
                conn.sendall(struct.pack("!H", len(reply)) + reply)
            conn.close()
        except (OSError, ConnectionError, ValueError, IndexError, struct.error):
            conn.close()

    def _answer(self, data, transport="udp"):
        qid, flags, qd = struct.unpack("!HHH", data[:6])
        pos, labels = 12, []
        while data[pos]:
            n = data[pos]
            labels.append(data[pos + 1:pos + 1 + n].decode())
            pos += 1 + n
        qtype, qclass = struct.unpack("!HH", data[pos + 1:pos + 5])
        question = data[12:pos + 5]
        name = ".".join(labels).lower()
        with self.lock:
            self.queries.append((name, qtype, transport))
            rec = self.records.get(name)
        answers = b""
        rcode = 0 if rec else 3  # NXDOMAIN
        if rec and rec[2] and transport == "udp":
            # TC: the answer does not fit; none is given
            return struct.pack("!HHHHHH", qid, 0x8380 | (flags & 0x0100), 1, 0, 0, 0) + question
        if rec:
            addr = ipaddress.ip_address(rec[0])
            if (qtype, addr.version) in ((1, 4), (28, 6)):
                answers = b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, rec[1], len(addr.packed)) + addr.packed
        header = struct.pack("!HHHHHH", qid, 0x8180 | rcode | (flags & 0x0100), 1, 1 if answers else 0, 0, 0)
        return header + question + answers

    def stop(self):
        self.sock.close()
        self.tcp.shutdown(socket.SHUT_RDWR)
        self.tcp.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass
        self.thread.join(10)
        self.tcp_thread.join(10)
