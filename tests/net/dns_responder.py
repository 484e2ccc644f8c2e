# SPDX-License-Identifier: Apache-2.0
"""A tiny authoritative DNS responder on loopback UDP for the net tests: A and
AAAA answers from a table the test changes while it runs, NXDOMAIN for any
other name. Counts the queries it answered. A thread of the test process;
stop() closes its socket and joins it."""

import ipaddress
import socket
import struct
import threading


class DnsResponder:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.records = {}  # name (lower case) -> (address, ttl)
        self.queries = []  # (name, qtype)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, name, address, ttl):
        with self.lock:
            self.records[name.lower()] = (address, ttl)

    def remove(self, name):
        with self.lock:
            self.records.pop(name.lower(), None)

    def count(self, name):
        with self.lock:
            return sum(1 for n, _ in self.queries if n == name.lower())

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

    def _answer(self, data):
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
            self.queries.append((name, qtype))
            rec = self.records.get(name)
        answers = b""
        rcode = 0 if rec else 3  # NXDOMAIN
        if rec:
            addr = ipaddress.ip_address(rec[0])
            if (qtype, addr.version) in ((1, 4), (28, 6)):
                answers = b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, rec[1], len(addr.packed)) + addr.packed
        header = struct.pack("!HHHHHH", qid, 0x8180 | rcode | (flags & 0x0100), 1, 1 if answers else 0, 0, 0)
        return header + question + answers

    def stop(self):
        self.sock.close()
        self.thread.join(10)
