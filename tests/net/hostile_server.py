#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A hostile Communication Server for the net tests: real TLS on loopback
(client certificate required, as the real one), and for each request path a
way of misbehaving. Prints "LISTENING <port>" once bound; stops on SIGTERM.

    hostile_server.py CERT KEY CLIENT_CA [--tls-max 1.1|1.2]
"""

import json
import os
import signal
import socket
import ssl
import sys
import threading
import time

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "urn:callhome:soap:v1"
OK = ('<s:Envelope xmlns:s="%s"><s:Body><CheckInResponse xmlns="%s"/></s:Body></s:Envelope>' % (SOAP, TNS)).encode()


def envelope(inner):
    return ('<s:Envelope xmlns:s="%s"><s:Body>%s</s:Body></s:Envelope>' % (SOAP, inner)).encode()


BODIES = {
    "doctype-xxe": b'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' +
                   envelope('<CheckInResponse xmlns="%s">&xxe;</CheckInResponse>' % TNS),
    "billion-laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' +
                      b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                               for i in range(1, 10)) + b']><lolz>&lol9;</lolz>',
    "xinclude": envelope('<CheckInResponse xmlns="%s"><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
                         'href="file:///etc/passwd" parse="text"/></CheckInResponse>' % TNS),
    "deep": b"<a>" * 10000 + b"</a>" * 10000,
    "million": b"<r>" + b"<a/>" * 1000000 + b"</r>",
}


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    path = lines[0].split(" ")[1]
    if path.startswith("/headers") or path.endswith("?announce"):  # the test reads what the client sent
        print("HEAD " + json.dumps({"request": lines[0], "headers": lines[1:], "body": body.decode()}), flush=True)
    return path


def respond(conn, path):
    mode = path.strip("/").split("?")[0]
    xml = b"Content-Type: text/xml; charset=utf-8\r\n"
    if mode in BODIES:
        body = BODIES[mode]
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + xml + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    elif mode in ("ok", "headers"):
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + xml + b"Content-Length: %d\r\n\r\n" % len(OK) + OK)
    elif mode in ("huge", "huge-chunked"):
        size = 100 << 20
        if mode == "huge":
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + xml + b"Content-Length: %d\r\n\r\n" % size)
            block = b"<a/>" * 16384
            for _ in range(size // len(block)):
                conn.sendall(block)
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + xml + b"Transfer-Encoding: chunked\r\n\r\n")
            block = b"<a/>" * 16384
            for _ in range(size // len(block)):
                conn.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
    elif mode == "bad-chunked":
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + xml + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n<s:Envelope\r\n0\r\n\r\n")
    elif mode == "header-flood":
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + xml + b"".join(b"X-Flood-%d: %d\r\n" % (i, i) for i in range(10000)) +
                     b"Content-Length: %d\r\n\r\n" % len(OK) + OK)
    elif mode == "long-header":
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + xml + b"X-Long: " + b"a" * (200 << 10) + b"\r\n" +
                     b"Content-Length: %d\r\n\r\n" % len(OK) + OK)
    elif mode == "cut-short":
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + xml + b"Content-Length: %d\r\n\r\n" % (len(OK) + 1000) + OK)
        return False  # and close: the body ends 1000 bytes early
    elif mode == "cut-mid-record":
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + xml + b"Content-Length: %d\r\n\r\n" % len(OK))
        # a TLS record header that promises 16 KiB, 100 bytes of it, then the TCP connection ends
        raw = socket.socket(fileno=os.dup(conn.fileno()))
        raw.sendall(b"\x17\x03\x03\x40\x00" + b"\x42" * 100)
        raw.shutdown(socket.SHUT_RDWR)
        raw.close()
        return False
    elif mode == "trickle":
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + xml + b"Content-Length: %d\r\n\r\n" % len(OK))
        for i, b in enumerate(OK):
            conn.sendall(bytes([b]))
            time.sleep(1)
            if path.endswith("?announce"):
                print("TRICKLE %d" % (i + 1), flush=True)
    elif mode == "redirect":
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: https://evil.example/steal\r\nContent-Length: 0\r\n\r\n")
    elif mode.startswith("retry-"):
        value = mode[6:].replace("_", " ")
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: " + value.encode() +
                     b"\r\nContent-Length: 0\r\n\r\n")
    elif mode == "html":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(OK) + OK)
    else:
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    return True


def serve(ctx, sock):
    try:
        conn = ctx.wrap_socket(sock, server_side=True)
    except (OSError, ssl.SSLError):
        sock.close()
        return
    try:
        while True:
            path = read_request(conn)
            if path is None or not respond(conn, path):
                break
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    cert, key, client_ca = sys.argv[1:4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if sys.argv[4:6] == ["--tls-max", "1.1"]:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    elif sys.argv[4:6] == ["--tls-max", "1.2"]:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(client_ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    print("LISTENING %d" % lsock.getsockname()[1], flush=True)
    while True:
        s, _ = lsock.accept()
        threading.Thread(target=serve, args=(ctx, s), daemon=True).start()


if __name__ == "__main__":
    main()
