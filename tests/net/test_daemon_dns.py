#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Name resolution of the confined net-worker, which opens no file after its
lock-down: the server's name is resolved by its own DNS stub, over UDP to the
name server the configuration names (DNS=, here a loopback responder), and
handed to curl. A name that does not resolve yet is Unreachable and asked
again on the next exchange (never cached as a failure); an answer is kept for
its TTL (TTL 0: asked every time), so a changed address is picked up; names
in /etc/hosts (localhost) need no server; a proxy named by a host name is
resolved the same way (the proxy resolves the server's name); a truncated
UDP answer is asked again over TCP, and a TCP answer cut short or never given
is Unreachable, the next exchange served. It waits for replies, never for time."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nw_daemon as nd  # noqa: E402
from chtest import Harness, check, skip_unless_root  # noqa: E402
from dns_responder import DnsResponder  # noqa: E402
from nw_daemon import pc  # noqa: E402
from proxies import Tinyproxy  # noqa: E402

skip_unless_root("the net-worker DNS test")

NAME = "commserver.test"  # in the test server certificate's SANs


def main():
    pki = pc.pki()
    dns = DnsResponder()
    try:
        with Harness("net-dns") as h:
            server = pc.CommServer(pki, h.tmp).start()
            try:
                d = nd.start(h, nd.write_config(h.tmp, pki, extra=["DNS=127.0.0.1:%d" % dns.port]))
                url = "https://%s:%d/callhome" % (NAME, server.port)
                nd.ok(nd.call(h, "SetServer", "s", url), "SetServer by name")

                a = nd.error(nd.check_in(h), "Unreachable", "a name the server does not know")
                check(NAME in a["message"] and dns.count(NAME) >= 1,
                      "a name that does not resolve: Unreachable naming it, after asking the name server")
                asked = dns.count(NAME)
                dns.set(NAME, "127.0.0.9", 0)  # nothing listens there
                nd.error(nd.check_in(h), "Unreachable", "an address where nothing listens")
                check(dns.count(NAME) > asked, "the failure was not cached: the name server was asked again")

                # A truncated UDP answer is asked again over TCP, of the same server.
                dns.set(NAME, "127.0.0.1", 0, truncate=True)
                udp, tcp = dns.count(NAME, "udp"), dns.count(NAME, "tcp")
                nd.ok(nd.check_in(h), "CheckIn when the UDP answer is truncated")
                check(dns.count(NAME, "udp") > udp and dns.count(NAME, "tcp") > tcp,
                      "the truncated UDP answer was asked again over TCP, whose answer was used")
                # Hostile over TCP: cut short, or never answered (within the query's deadline).
                for mode, what in (("short", "an answer announcing 65535 bytes and ending after 12"),
                                   ("silent", "no answer over TCP")):
                    dns.tcp_mode = mode
                    tcp = dns.count(NAME, "tcp")
                    nd.error(nd.check_in(h), "Unreachable", what)
                    check(dns.count(NAME, "tcp") > tcp, f"{what}: asked over TCP, Unreachable")
                dns.tcp_mode = "answer"
                nd.ok(nd.check_in(h), "and the next exchange is served")
                check(d.alive(), "the net-worker is alive")

                asked = dns.count(NAME)
                dns.set(NAME, "127.0.0.1", 300)
                nd.ok(nd.check_in(h), "CheckIn once the name resolves to the server")
                check(dns.count(NAME) > asked, "TTL 0 was not cached: the changed address was picked up")
                asked = dns.count(NAME)
                nd.ok(nd.call(h, "SetServer", "s", url), "SetServer again (a new connection)")
                nd.ok(nd.check_in(h), "CheckIn on a new connection")
                check(dns.count(NAME) == asked, "within its TTL the answer is reused, no new query")
                check(nd.last_exchange(h)["tls_resumed"] is True, "the new connection resumed the TLS session")

                # /etc/hosts, read at start: localhost needs no name server
                asked = len(dns.queries)
                nd.ok(nd.call(h, "SetServer", "s", server.url()), "SetServer localhost")
                nd.ok(nd.check_in(h), "CheckIn to localhost")
                check(len(dns.queries) == asked, "localhost came from /etc/hosts, read before the lock-down")

                # a proxy named by a host name: its name is ours to resolve (it resolves the server's)
                with Tinyproxy(os.path.join(h.tmp, "tp"), "device", "s3cret-Pass") as p:
                    dns.set("proxy.test", "127.0.0.1", 300)
                    nd.ok(nd.call(h, "SetProxy", "sss", "http://proxy.test:%d" % p.port, "device", "s3cret-Pass"),
                          "SetProxy by name")
                    nd.ok(nd.check_in(h), "CheckIn through the proxy named proxy.test")
                    check(dns.count("proxy.test") >= 1, "the proxy's name was resolved by our DNS stub")
                    dns.remove("proxy.test")
                    nd.ok(nd.call(h, "SetProxy", "sss", "http://unknown-proxy.test:%d" % p.port, "", ""),
                          "SetProxy by an unknown name")
                    a = nd.error(nd.check_in(h), "Unreachable", "a proxy name that does not resolve")
                    check("unknown-proxy.test" in a["message"], "Unreachable names the proxy that did not resolve")
            finally:
                server.stop()
    finally:
        dns.stop()


if __name__ == "__main__":
    main()
