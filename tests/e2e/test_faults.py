#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The whole system under faults (tests/harness/system.py: server, auditd,
collector, net-worker, policyd, each as its own user). test_faults.py CASE:

  server-down  the server goes away while scheduled meter pushes continue: they
               are recorded and queue (the audit log is the outbox); once it is
               back every one is delivered, each counted once by the server.
  restarts     the customer's proxy restarted between pushes; then the bus
               restarted: each daemon exits non-zero when its bus goes away
               (common/daemon.c; under systemd Restart=on-failure starts it
               again), the test plays the service manager and starts a new bus
               and the daemons again, and what was pending is delivered.
  kill9        200 push cycles (SendMeterReadsNow), a daemon killed with SIGKILL at
               random points between and during them and started again: every
               meter read recorded reaches the server exactly once, and
               callhome-audit verify passes.
  offline      remote services off through many scheduled times (the schedule
               sped up by policyd's test divisor): nothing reaches the server,
               not a connection; the log does not grow with the schedule (only
               auditd's seals and checkpoints) and verifies.

"Exactly once" is checked against both sides: each meter-reads transaction the
log holds as outbound is in the server's submissions, no transaction id twice,
the server's count equals the number of distinct ids, and nothing is pending.
Every wait is for an event (the server's state, a property, a log line)."""
import json
import os
import random
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from chtest import Harness, check, fail, skip_unless_root  # noqa: E402
from system import System  # noqa: E402
import auditlib  # noqa: E402

POLICY = ("org.callhome.Policy1", "/org/callhome/Policy1", "org.callhome.Policy1")


SYSTEMS = []


def up(h, divisor=100, proxy=False):
    s = System(h, plant={}, proxy=proxy, policyd_env={"CALLHOME_POLICYD_TIME_DIVISOR": str(divisor)})
    SYSTEMS.append(s)  # its server and proxy are stopped by PID at the end, whatever happens
    s.__enter__()
    return s


def outbound(s, rtype="meter-reads"):
    r = auditlib.cli("export", f"--dir={s.dirs['audit']}", "--json", check=0)
    recs = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip().startswith("{")]
    return [x["txn"] for x in recs if x.get("type") == rtype and x.get("direction") == "outbound"]


def prop(s, name):
    return s.policy_property(name)


def pending_zero(s):
    s.h.wait_for(lambda: prop(s, "PendingPushes") == 0 and
                 s.busctl_json("root", "get-property", "org.callhome.Audit1", "/org/callhome/Audit1",
                               "org.callhome.Audit1", "PendingCount") == 0,
                 "every pending transaction to be delivered", timeout=60)


def exactly_once(s, op="SubmitMeterReads", rtype="meter-reads"):
    pending_zero(s)
    txns = outbound(s, rtype)
    subs = [x.get("payload", {}).get("TransactionId") for x in s.submissions(op)]
    dup = sorted({t for t in subs if subs.count(t) > 1})
    missing = sorted(set(txns) - set(subs))
    check(txns and not missing, f"all {len(set(txns))} recorded {rtype} transactions reached the server {missing[:3]}")
    check(not dup, f"no transaction was counted twice {dup[:3]}")
    check(s.counts().get(op) == len(set(subs)) == len(set(txns)),
          f"the server counted {s.counts().get(op)} {op}, one per transaction id ({len(set(txns))})")
    r = s.verify()
    check(r.returncode == 0, f"callhome-audit verify passes: {r.stdout.strip().splitlines()[0] if r.stdout else r.stderr}")


def case_server_down(h):
    s = up(h)
    s.enable(MeterReads="automatic", MeterReadsInterval=60, RetryMinimumWait=1, RetryIntervalMultiplier=1000)
    s.wait_server(lambda d: d.get("counts", {}).get("SubmitMeterReads", 0) >= 1, "a first scheduled push")
    s.stop_server()
    n0 = len(outbound(s))
    at = s.log_size("policyd")
    s.h.wait_for(lambda: len(outbound(s)) >= n0 + 5, "five more scheduled pushes recorded while the server is down",
                 timeout=60)
    s.wait_log("policyd", r"not delivered", after=at)
    check(prop(s, "PendingPushes") >= 1, f"they wait to be sent ({prop(s, 'PendingPushes')} pending)")
    check(prop(s, "LastPushError") != "", f"LastPushError says why: {prop(s, 'LastPushError')[:120]}")
    s.start("server")
    s.set_policy(MeterReads="ask")  # the schedule stops; what is queued still goes (with "off" it stays home)
    exactly_once(s)


def restart_bus(h):
    """The bus goes away and comes back at the same socket (the service manager's job)."""
    h.stop(h.bus)
    h.procs.remove(h.bus)
    h._start_bus()


def case_restarts(h):
    s = up(h, proxy=True)
    s.enable(MeterReads="ask", Supplies="ask", RetryMinimumWait=1, RetryIntervalMultiplier=1000,
             ProxyURL=s.proxy.url())
    s.call_policy("root", "SendMeterReadsNow")
    s.wait_server(lambda d: d["counts"].get("SubmitMeterReads") == 1, "a push through the proxy")
    conf = os.path.join(s.dirs["proxy"], "tinyproxy.conf")
    s.proxy.stop()
    r = s.call_policy("root", "SendMeterReadsNow")
    check(r.returncode == 0, "a push is recorded while the proxy is down")
    s.h.wait_for(lambda: prop(s, "LastPushError") != "", "the push to fail for want of the proxy")
    s.proxy._start(["tinyproxy", "-d", "-c", conf], s.dirs["proxy"])  # the same port, as a restarted service
    s.wait_server(lambda d: d["counts"].get("SubmitMeterReads") == 2, "the queued push once the proxy is back")
    check(len(s.submissions("SubmitMeterReads")) == 2, "proxy restarted: both pushes delivered once")

    # The bus restarts: every daemon exits non-zero (nothing to serve without it).
    r = s.call_policy("root", "SendSuppliesNow")
    check(r.returncode == 0, "a supplies push is recorded before the bus goes")
    procs = {n: s.procs[n] for n in ("auditd", "collector", "net", "policyd")}
    restart_bus(h)
    for n, p in procs.items():
        rc = p.wait(timeout=30)
        check(rc != 0, f"{n} exits {rc} when the bus goes away (Restart=on-failure starts it again)")
    for n in ("auditd", "collector", "net", "policyd"):  # the service manager, in dependency order
        s.start(n)
    s.call_policy("root", "SendMeterReadsNow")
    exactly_once(s)
    pending_zero(s)
    check(len(outbound(s, "supplies")) == s.counts().get("SubmitSupplies") == 1, "the supplies push too, once")


def case_kill9(h):
    seed = int(os.environ.get("CALLHOME_E2E_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    print(f"# seed {seed} (CALLHOME_E2E_SEED={seed} repeats this run)")
    s = up(h)
    s.enable(MeterReads="ask", RetryMinimumWait=1, RetryIntervalMultiplier=1000)
    kills = {n: 0 for n in ("auditd", "collector", "net", "policyd")}
    answered, failed = [], 0
    for cycle in range(200):
        r = s.call_policy("root", "SendMeterReadsNow")
        if r.returncode == 0:
            answered.append(json.loads(r.stdout)["data"][0])
        else:
            failed += 1
        if rnd.random() < 0.12:
            victim = rnd.choice(sorted(kills))
            if rnd.random() < 0.5:
                # A random point inside the next push: the kill lands while it is recorded or sent.
                s.h.run(["busctl", f"--address={h.address}", "--timeout=20", "call", *POLICY, "SendMeterReadsNow"])
                os.kill(s.pid(victim), signal.SIGKILL)
                s.procs[victim].wait(timeout=30)
            else:
                s.kill9(victim)
            kills[victim] += 1
            s.start(victim)  # the service manager starts it again
    print(f"# {len(answered)} pushes answered, {failed} refused while a daemon was down; kills {kills}")
    check(all(kills.values()), f"each daemon was killed at least once {kills}")
    check(len(answered) >= 150, f"most of the 200 cycles recorded a push ({len(answered)})")
    missing = sorted(set(answered) - set(outbound(s)))
    check(not missing, f"every transaction id policyd answered is in the log {missing[:3]}")
    exactly_once(s)


def case_offline(h):
    s = up(h, divisor=1000)  # 60 s of schedule in 60 ms
    s.set_policy(RemoteServices=False, ServerURL=s.server_url(), MeterReads="automatic", MeterReadsInterval=60,
                 Supplies="automatic", SuppliesInterval=60, CheckInIntervalMin=60, CheckInIntervalMax=60)
    before = auditlib.records(s.dirs["audit"])
    at = s.log_size("policyd")
    ticks = 100
    s.wait_log("policyd", r"^callhome-policyd: Meter reads: scheduled time; not sent: remote services are off",
               after=at, count=ticks, timeout=80)
    after = auditlib.records(s.dirs["audit"])
    grown = [r for r in after if r["seq"] > before[-1]["seq"]]
    kinds = sorted({r.get("type") for r in grown})
    check(all(k in ("audit.seal", "audit.checkpoint") for k in kinds),
          f"{ticks} scheduled meter pushes ({ticks} min of schedule) off: the log grew by {len(grown)} "
          f"record(s), only auditd's own seals and checkpoints ({kinds})")
    check(not s.server_messages() and not any(s.counts().values()),
          f"the server received nothing at all: {s.counts()}")
    r = s.verify()
    check(r.returncode == 0, "callhome-audit verify passes")


CASES = {"server-down": case_server_down, "restarts": case_restarts, "kill9": case_kill9, "offline": case_offline}

if __name__ == "__main__":
    skip_unless_root("the whole system")
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        fail(f"usage: test_faults.py {'|'.join(CASES)}")
    with Harness(f"e2e-{sys.argv[1]}") as h:
        try:
            CASES[sys.argv[1]](h)
        finally:
            for system in SYSTEMS:
                system.__exit__(*sys.exc_info())
