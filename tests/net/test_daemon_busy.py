#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""No call stalls the net-worker, and none is refused for being early: a
Download whose server trickles its reply a byte a second is under way (the
server has the request and has begun to answer); meanwhile LastExchange is
read at once, a SetServer and 15 CheckIns wait for their turn (they would use
or change the connection under the transfer), and the calls beyond those 16
are answered org.callhome.NetWorker1.Error.Busy at once -- all while the
Download's caller is still waiting for its answer. Then the server stops, the
Download ends as a typed error, and the waiting calls are served in turn; stopped
during an exchange, the daemon exits cleanly. It waits for events (the
request at the server, the server's announcements, the callers' answers),
never for time."""

import json
import os
import pwd
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nw_daemon as nd  # noqa: E402
from chtest import Harness, check, fail, skip_unless_root  # noqa: E402
from nw_daemon import POLICY, pc  # noqa: E402
from test_client_hostile import HostileServer  # noqa: E402

skip_unless_root("the net-worker busy test")


def answers(proc):
    """The JSON lines nw_call.py --parallel has printed so far."""
    return [json.loads(line) for line in proc.output().split("\n")[:-1] if line.startswith("{")]  # whole lines


def main():
    pki = pc.pki()
    with Harness("net-busy") as h:
        hs = HostileServer(pki)
        try:
            # a trickle of 1 byte/s is not a stall here; TotalTimeout= ends it on a daemon
            # that would hold every call until then
            config = nd.write_config(h.tmp, pki, extra=["StallMinBytesPerSecond=1", "StallTimeout=60s",
                                                        "TotalTimeout=60s"])
            d = h.spawn([h.exe(nd.EXE), "--config=" + config, "--log-level=debug"], name="net-worker")
            h.wait_for_name(nd.NAME, proc=d)
            nd.ok(nd.call(h, "SetServer", "s", hs.url("trickle?announce")), "SetServer trickle")
            path = os.path.join(h.tmp, "download")
            with open(path, "wb"):
                pass
            os.chown(path, pwd.getpwnam(POLICY).pw_uid, pwd.getpwnam(POLICY).pw_gid)
            downloader = h.spawn(["/usr/bin/python3", nd.NW_CALL, h.address, "Download", "ssttth",
                                  json.dumps([pc.DEV1, "fw-main", 0, 0, 0]), "--fd", path],
                                 user=POLICY, name="nw-call-download")
            hs.read_head()  # the server has the GetSoftware request: the Download is under way
            line = hs.proc.stdout.readline().decode()
            check(line.startswith("TRICKLE 1"), "the server has begun to trickle its reply (%r)" % line)

            # SetServer first: it waits its turn (it would change the connection under the transfer)
            setter = h.spawn(["/usr/bin/python3", nd.NW_CALL, h.address, "SetServer", "s",
                              json.dumps([hs.url("ok")]), "--parallel", "1"], user=POLICY, name="nw-call-setserver")
            h.wait_for(lambda: "SetServer from" in d.output() and "waits for the exchange under way" in d.output(),
                       "SetServer waiting (the net-worker's debug line)")
            waiting = 15
            extra = 3
            checkins = h.spawn(["/usr/bin/python3", nd.NW_CALL, h.address, "CheckIn", "ssta{sv}",
                                json.dumps([pc.DEV1, "0.1.0", 0, {}]), "--parallel", str(waiting + extra)],
                               user=POLICY, name="nw-call-checkins")
            h.wait_for(lambda: len(answers(checkins)) >= extra, "the CheckIns beyond those waiting answered")
            busy = answers(checkins)
            for a in busy:
                nd.error(a, "Busy", "a CheckIn beyond the 16 waiting calls")
                check("under way" in a["message"] and "wait" in a["message"], "Busy says why: %s" % a["message"])
            nd.last_exchange(h)
            # The server trickles its 141-byte reply a byte a second: while it has not sent the
            # last one, the Download's caller, the waiting CheckIns and SetServer have no answer.
            check(downloader.alive() and checkins.alive() and setter.alive(),
                  "the Download, the waiting CheckIns and SetServer are still waiting while LastExchange was read")

            hs.stop()  # the Download's connection ends: a typed error for its caller
            downloader.wait(120)
            out = downloader.output().strip().splitlines()
            if not out:
                fail("the Download's caller printed nothing")
            nd.error(json.loads(out[-1]), "ConnectionFailed", "the Download whose server went away")
            checkins.wait(120)
            served = answers(checkins)[extra:]
            check(len(served) == waiting, "every waiting CheckIn answered (%d)" % len(served))
            check(all(not a["ok"] and a["error"] != nd.ERR + "Busy" for a in served),
                  "each waiting CheckIn is served in turn once the Download ended (the server is gone: %s)"
                  % sorted({a["error"] for a in served}))
            setter.wait(60)
            nd.ok(answers(setter)[0], "SetServer, served in its turn")

            hs = HostileServer(pki)
            nd.ok(nd.call(h, "SetServer", "s", hs.url("ok")), "SetServer after the Download")
            nd.ok(nd.check_in(h), "the next call is served")

            # stopped during an exchange, it ends cleanly (in the sanitizer build: nothing leaked)
            nd.ok(nd.call(h, "SetServer", "s", hs.url("trickle?announce")), "SetServer trickle again")
            caller = h.spawn(["/usr/bin/python3", nd.NW_CALL, h.address, "CheckIn", "ssta{sv}",
                              json.dumps([pc.DEV1, "0.1.0", 0, {}])], user=POLICY, name="nw-call-checkin")
            hs.read_head()
            rc = h.stop(d)
            check(rc == 0, "stopped during an exchange, the daemon exits cleanly (%s)" % rc)
            caller.wait(120)
        finally:
            hs.stop()


if __name__ == "__main__":
    main()
