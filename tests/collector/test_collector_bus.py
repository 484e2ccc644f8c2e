#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""callhome-collector on a private system-like bus, started as root, dropping
itself to callhome-collector under its seccomp profile (kill mode).

Shows: the confinement in /proc/PID/status; only policyd's user and root get
snapshots (bus policy, and the daemon's own check on an open bus); the
snapshot's typed structure; one broken value per malformed class is reported
with its name and reason while the rest is served and the daemon lives on; a
decrease is signalled (CounterAnomaly) and flagged, never billed; so is an
increase faster than the engine can count, until later readings confirm it;
listeners take a CounterAnomaly only from the unique name owning
org.callhome.Collector1, never a forged one from another peer; a restart
keeps the high-water marks and what is pending; the simulator is
deterministic and root-only. It waits for events (replies, signals behind a
fence), never for time.
"""
import json
import os
import shutil
import signal
import stat
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
from chtest import (SERVICE_USERS, TEST_ADMIN, TEST_OTHER, Harness, check, fail, proc_status,
                    skip_unless_root, uid_of)

skip_unless_root("the collector bus test")

NAME = "org.callhome.Collector1"
PATH = "/org/callhome/Collector1"
COLLECTOR = SERVICE_USERS[NAME]
POLICY = SERVICE_USERS["org.callhome.Policy1"]
FIELDS = ["serial", "model", "time", "generation", "sequence", "counters", "markers", "supplies",
          "errors", "anomalies", "extra"]


def call(h, user, member, *args):
    return h.busctl(user, "--json=short", "call", NAME, PATH, NAME, member, *args)


def denied(r):
    out = r.stdout + r.stderr
    return r.returncode != 0 and ("Access denied" in out or "AccessDenied" in out)


def snapshot(h, user=POLICY):
    r = call(h, user, "GetSnapshot")
    if r.returncode != 0:
        fail(f"GetSnapshot as {user} failed: {r.stderr}")
    doc = json.loads(r.stdout)
    if doc["type"] != "(ssttta(sstts)a(ustts)a(usssss(si)(si))a(ss)a(stts)a{sv})":
        fail(f"snapshot signature changed: {doc['type']}")
    s = dict(zip(FIELDS, doc["data"][0]))
    s["counters"] = {c[0]: {"unit": c[1], "value": c[2], "observed": c[3], "state": c[4]} for c in s["counters"]}
    s["errors"] = {e[0]: e[1] for e in s["errors"]}
    s["supplies"] = {p[0]: p for p in s["supplies"]}
    return s


def prop(h, user, name):
    r = h.busctl(user, "--json=short", "get-property", NAME, PATH, NAME, name)
    return json.loads(r.stdout)["data"] if r.returncode == 0 else r


def start(h, source, state, extra=()):
    d = h.spawn([h.exe("collector/callhome-collector"), f"--source={source}", f"--state-dir={state}", *extra],
                name="collector")
    h.wait_for_name(NAME, d)
    return d


def forge(h, tag):
    """A CounterAnomaly on the collector's path and interface, from another peer
    (a stranger): listeners must not take it for the collector's. Sent after
    everything the collector emitted so far, each listener receives it after
    those signals (one bus daemon, one order), so it is also a fence."""
    r = h.busctl(TEST_OTHER, "emit", PATH, NAME, "CounterAnomaly", "stts", f"Forged{tag}Impressions", "1", "2",
                 "decrease")
    if r.returncode != 0:
        fail(f"busctl emit failed: {r.stderr}")


def after_fence(h, ears, tag):
    """Waits until every listener has received forged signal `tag`; returns
    {user: (accepted, ignored)} as it stands then."""
    def forged(e):
        return sum(1 for m, _ in h.signals_so_far(e)[1] if m == "CounterAnomaly") >= tag
    h.wait_for(lambda: all(forged(e) for e in ears.values()), f"every listener to receive forged signal {tag}")
    return {u: h.signals_so_far(e) for u, e in ears.items()}


def anomalies_heard(accepted):
    return sorted(tuple(a) for m, a in accepted if m == "CounterAnomaly")


def put(tree, rel, content):
    p = os.path.join(tree, rel)
    if os.path.islink(p) or os.path.exists(p):
        os.unlink(p)
    with open(p, "w" if isinstance(content, str) else "wb") as f:
        f.write(content)


with Harness("collector-bus") as h:
    tree = os.path.join(h.tmp, "tree")
    shutil.copytree(h.src("tests/collector/sysfs-example"), tree)
    state = os.path.join(h.tmp, "state")
    d = start(h, f"sysfs:{tree}", state)

    # --- confinement -----------------------------------------------------------
    st = proc_status(d.pid)
    uid = uid_of(COLLECTOR)
    check(st["Uid"].split() == [str(uid)] * 4, f"runs as {COLLECTOR} (uid {uid}) in all four uid slots")
    check(st["Groups"] == "", "no supplementary groups")
    check(int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0 and int(st["CapBnd"], 16) == 0,
          "CapEff, CapPrm and the bounding set are 0")
    check(st["NoNewPrivs"] == "1", "NoNewPrivs 1")
    check(st["Seccomp"] == "2", "Seccomp 2 (filter)")
    sd = os.stat(state)
    check(sd.st_uid == uid and stat.S_IMODE(sd.st_mode) == 0o700, "state dir created for the service user, 0700")

    # --- the contract in ipc/ is what the daemon serves ------------------------------
    h.check_interface_contract(NAME)

    # --- who may call ------------------------------------------------------------
    s = snapshot(h)
    check(s["serial"] == "CNB7X01234" and s["model"] == "Example ColorLaser 4200dn", "policyd's user gets a snapshot")
    r = call(h, "root", "GetSnapshot")
    check(r.returncode == 0, "root gets a snapshot")
    for user in (TEST_OTHER, TEST_ADMIN, SERVICE_USERS["org.callhome.NetWorker1"],
                 SERVICE_USERS["org.callhome.Audit1"], COLLECTOR):
        check(denied(call(h, user, "GetSnapshot")), f"{user} calling GetSnapshot gets AccessDenied")
    check(denied(h.busctl(TEST_OTHER, "get-property", NAME, PATH, NAME, "Source")),
          "a stranger cannot read the properties either")

    # --- the typed snapshot ------------------------------------------------------
    c = s["counters"]
    check(set(c) == {"TotalImpressions", "MonochromeImpressions", "FullColorImpressions",
                     "HighlightColorImpressions", "BlankImpressions", "TotalTwoSidedImpressions",
                     "TotalSheets", "LargeFormatSheets"}, "the PWG counters and the source's extra one")
    check(c["TotalImpressions"] == {"unit": "impressions", "value": 125000, "observed": 125000, "state": "ok"},
          "TotalImpressions: name, unit, value, observed, state")
    check(c["TotalSheets"]["unit"] == "sheets", "TotalSheets counts sheets")
    check(s["markers"] == [[1, "impressions", 125000, 125000, "ok"]], "marker life count with its unit")
    check(s["supplies"][1] == [1, "toner", "supplyThatIsConsumed", "Black Toner Cartridge", "black",
                               "tenthsOfGrams", ["value", 1830], ["value", 2400]], "supply 1 complete")
    check(s["supplies"][4][6] == ["some-remaining", 0], "-3 is the explicit state some-remaining")
    check(s["supplies"][5][6] == ["unknown", 0] and s["supplies"][5][7] == ["unknown", 0], "-2 is unknown")
    check(s["supplies"][6][6] == ["other", 0] and s["supplies"][6][7] == ["other", 0], "-1 is other/no restriction")
    check(s["errors"] == {} and s["anomalies"] == [], "no errors, no anomalies")
    check(s["generation"] == 1 and s["extra"]["source"]["data"] == f"sysfs:{tree}", "generation 1, source named")
    before = time.time_ns() // 1000
    s2 = snapshot(h)
    after = time.time_ns() // 1000 + 1
    check(before <= s2["time"] <= after, "snapshot time is the wall clock in µs, taken during the call")
    check(s2["sequence"] == s["sequence"] + 2, "sequence counts every snapshot (root's too)")
    check(prop(h, POLICY, "Source") == f"sysfs:{tree}", "property Source")
    check(prop(h, POLICY, "LastSnapshotTime") == s2["time"], "property LastSnapshotTime is the last snapshot's time")
    r = call(h, "root", "SimulatorStep", "u", "10")
    check(r.returncode != 0 and ("NotSimulator" in r.stderr + r.stdout or "not a simulator" in r.stderr),
          "simulator commands on a sysfs source fail with NotSimulator")

    # --- a broken tree, one value per malformed class ------------------------------
    put(tree, "billing/MonochromeImpressions", "12a4\n")
    put(tree, "billing/FullColorImpressions", "-24000\n")
    put(tree, "billing/HighlightColorImpressions", "18446744073709551616\n")
    put(tree, "billing/BlankImpressions", "")
    put(tree, "billing/LargeFormatSheets", b"7" * (10 << 20))
    outside = os.path.join(h.tmp, "outside")
    os.mkdir(outside)
    put(outside, "secret", "999999999\n")
    os.unlink(os.path.join(tree, "billing/TotalTwoSidedImpressions"))
    os.symlink("../../outside/secret", os.path.join(tree, "billing/TotalTwoSidedImpressions"))
    os.unlink(os.path.join(tree, "supplies/2/level"))
    os.symlink("..", os.path.join(tree, "supplies/7"))
    os.symlink(outside, os.path.join(tree, "supplies/8"))
    os.mkfifo(os.path.join(tree, "billing/FifoImpressions"))
    # A FIFO that blocked the open, or a 10 MiB file read whole, would keep this
    # call from being answered (busctl gives up after 20 s): the reply is the event.
    s = snapshot(h)
    e = s["errors"]
    expect = {
        "MonochromeImpressions": "not a decimal number",
        "FullColorImpressions": "negative",
        "HighlightColorImpressions": "above 2^64-1",
        "BlankImpressions": "empty",
        "LargeFormatSheets": "10485760 bytes exceeds the limit",
        "TotalTwoSidedImpressions": "symbolic link, not followed",
        "supplies/2/level": "missing",
        "supplies/7": "symbolic link",
        "supplies/8": "symbolic link",
        "FifoImpressions": "not a regular file",
    }
    for name, reason in expect.items():
        check(name in e and reason in e[name], f"{name}: error '{reason}' ({e.get(name)})")
    check(set(s["counters"]) == {"TotalImpressions", "TotalSheets"}, "the two good counters are still served")
    check(sorted(s["supplies"]) == [1, 3, 4, 5, 6], "the good supplies are still served")
    check(999999999 not in [v["value"] for v in s["counters"].values()], "nothing from outside the root")
    check(d.alive(), "the daemon still runs")

    # --- a decrease: signalled, flagged, never billed ----------------------------
    shutil.rmtree(tree)   # the driver recreates its directory: the daemon follows the path
    shutil.copytree(h.src("tests/collector/sysfs-example"), tree)
    check(snapshot(h)["errors"] == {}, "a recreated tree is read afresh")
    # root and policyd's user may hear the collector's signals, nobody else; a
    # listener keeps running across the restart below.
    ears = h.listen_signals(("root", POLICY, TEST_OTHER, "callhome-net"), PATH)
    put(tree, "billing/TotalSheets", "104000\n")
    put(tree, "markers/1/life_count", "5\n")
    s = snapshot(h)
    check(s["counters"]["TotalSheets"] == {"unit": "sheets", "value": 105000, "observed": 104000, "state": "anomaly"},
          "TotalSheets flagged; its value held at the high-water mark 105000")
    check(s["markers"] == [[1, "impressions", 125000, 5, "anomaly"]], "marker life count flagged and held")
    decreases = [("TotalSheets", 105000, 104000, "decrease"), ("markers/1/life_count", 125000, 5, "decrease")]
    check(sorted(map(tuple, s["anomalies"])) == decreases,
          "the anomaly list names counter, previous, observed and reason")
    forge(h, 1)
    for u, (accepted, ignored) in after_fence(h, ears, 1).items():
        if u in ("root", POLICY):
            check(anomalies_heard(accepted) == decreases, f"{u} hears CounterAnomaly for each decrease ({accepted})")
        else:
            check(accepted == [], f"{u} hears none of the collector's signals ({accepted})")
        check(not any(a[0].startswith("Forged") for a in anomalies_heard(accepted)) and
              any(m == "CounterAnomaly" for m, _ in ignored),
              f"{u}: a forged CounterAnomaly from another peer on the same path and interface is not taken "
              f"for the collector's")
    s = snapshot(h)
    forge(h, 2)
    for u in ("root", POLICY):
        accepted, _ = after_fence(h, ears, 2)[u]
        check(len(anomalies_heard(accepted)) == 2 and len(s["anomalies"]) == 2,
              f"the same decrease stays flagged but is not signalled again ({u})")
    for u in (POLICY, TEST_OTHER, "callhome-net"):
        h.stop(ears.pop(u))

    # --- restart keeps the marks ---------------------------------------------------
    rc = h.stop(d)
    check(rc == 0, "SIGTERM stops the daemon cleanly")
    hw = os.path.join(state, "highwater")
    hs = os.stat(hw)
    check(hs.st_uid == uid and stat.S_IMODE(hs.st_mode) == 0o600, "marks file owned by the service user, 0600")
    with open(hw) as f:
        text = f.read()
    check("\nmark TotalSheets 105000 " in text and "\nmark markers/1/life_count 125000 " in text,
          "the marks on disk are the high-water marks, not the lower values")
    check(not os.path.exists(hw + ".tmp"), "no temporary file left")
    d = start(h, f"sysfs:{tree}", state)
    s = snapshot(h)
    check(s["generation"] == 2 and s["sequence"] == 1, "a restart is a new generation")
    check(s["counters"]["TotalSheets"]["state"] == "anomaly" and s["counters"]["TotalSheets"]["value"] == 105000,
          "after the restart the decrease is still flagged against the kept mark")
    forge(h, 3)
    accepted, _ = after_fence(h, ears, 3)["root"]
    check(anomalies_heard(accepted) == sorted(decreases * 2),
          "the listener follows the collector's new unique name after the restart (NameOwnerChanged)")
    put(tree, "billing/TotalSheets", "105001\n")
    s = snapshot(h)
    check(s["counters"]["TotalSheets"] == {"unit": "sheets", "value": 105001, "observed": 105001, "state": "ok"},
          "passing the mark clears it")

    # --- an increase faster than the engine can count: held back until confirmed ---
    spike = 2**64 - 1
    put(tree, "billing/TotalImpressions", f"{spike}\n")
    s = snapshot(h)
    check(s["counters"]["TotalImpressions"] == {"unit": "impressions", "value": 125000, "observed": spike,
                                                 "state": "anomaly"},
          "a glitch to 2^64-1 is flagged; the billable value stays at the mark")
    check(("TotalImpressions", 125000, spike, "implausible-increase") in map(tuple, s["anomalies"]),
          "listed as an implausible increase")
    forge(h, 4)
    accepted, _ = after_fence(h, ears, 4)["root"]
    check(("TotalImpressions", 125000, spike, "implausible-increase") in anomalies_heard(accepted),
          "CounterAnomaly signalled for the implausible increase")
    put(tree, "billing/TotalImpressions", "125010\n")
    s = snapshot(h)
    check(s["counters"]["TotalImpressions"] == {"unit": "impressions", "value": 125010, "observed": 125010,
                                                 "state": "ok"}, "the next plausible reading is billed: no pinning")
    put(tree, "billing/TotalImpressions", "9000000\n")
    s = snapshot(h)
    check(s["counters"]["TotalImpressions"]["state"] == "anomaly" and
          s["counters"]["TotalImpressions"]["value"] == 125010, "a jump of millions is held back")
    h.stop(d)
    with open(hw) as f:
        check(" pending 9000000 9000000 " in f.read(), "what is pending is persisted")
    d = start(h, f"sysfs:{tree}", state)
    s = snapshot(h)
    check(s["counters"]["TotalImpressions"]["state"] == "anomaly" and
          s["counters"]["TotalImpressions"]["value"] == 125010, "…still held after a restart")
    put(tree, "billing/TotalImpressions", "9000050\n")
    s = snapshot(h)
    check(s["counters"]["TotalImpressions"] == {"unit": "impressions", "value": 9000050, "observed": 9000050,
                                                 "state": "ok"},
          "confirmed by readings that carry on from it at a plausible rate: adopted")
    os.unlink(os.path.join(tree, "billing/TotalImpressions"))
    s = snapshot(h)
    check(s["errors"].get("TotalImpressions") == "missing (high-water mark 9000050)",
          "a counter file that disappears is reported missing, with its mark")
    h.stop(d)

    # --- a corrupt state file: refuse to start rather than forget the marks -------
    with open(hw, "w") as f:
        f.write("callhome-collector-highwater 1\ngeneration 2\nmark TotalSheets 10")
    d = h.spawn([h.exe("collector/callhome-collector"), f"--source=sysfs:{tree}", f"--state-dir={state}"],
                name="collector-corrupt")
    check(d.wait(timeout=20) == 1 and "corrupt" in d.output(), "a torn marks file stops the start, saying why")

# Defence in depth: with a bus that lets everyone through, the daemon itself
# refuses strangers, and only root drives the simulator.
with Harness("collector-open", open_bus=True) as h:
    d = start(h, "sim:7", os.path.join(h.tmp, "state"))
    check(denied(call(h, TEST_OTHER, "GetSnapshot")), "open bus: the daemon refuses a stranger itself")
    check(denied(h.busctl(TEST_OTHER, "get-property", NAME, PATH, NAME, "Source")),
          "open bus: the daemon refuses a stranger's property read")
    check(call(h, POLICY, "GetSnapshot").returncode == 0, "open bus: policyd's user still admitted")
    for member, sig, arg in (("SimulatorStep", "u", "5"), ("SimulatorReplaceSupply", "u", "1"),
                             ("SimulatorResetCounter", "s", "TotalImpressions")):
        check(denied(call(h, POLICY, member, sig, arg)), f"only root may call {member}")
        check(denied(call(h, TEST_OTHER, member, sig, arg)), f"a stranger may not call {member}")

# The simulator: same seed and steps give identical snapshots; its commands work.
def sim_run(h, tag):
    d = start(h, "sim:42", os.path.join(h.tmp, f"state-{tag}"))
    for member, sig, arg in (("SimulatorStep", "u", "300"), ("SimulatorReplaceSupply", "u", "2"),
                             ("SimulatorStep", "u", "77")):
        r = call(h, "root", member, sig, arg)
        if r.returncode != 0:
            fail(f"{member}: {r.stderr}")
    s = snapshot(h)
    h.stop(d)
    for k in ("time", "generation", "sequence"):
        del s[k]
    return s, d


with Harness("collector-sim") as h:
    a, _ = sim_run(h, "a")
    b, _ = sim_run(h, "b")
    check(a == b, "sim:42 twice with the same steps: identical snapshots")
    check(a["counters"]["TotalSheets"]["value"] == 387, "10 factory sheets + 377 printed")
    d = start(h, "sim:42", os.path.join(h.tmp, "state-c"))
    s = snapshot(h)
    check(s["serial"].startswith("SIM") and s["errors"] == {}, "the simulator has an identity and no errors")
    # SimulatorReplaceSupply: the same supply before and after, so a method that did nothing fails.
    check(call(h, "root", "SimulatorStep", "u", "300").returncode == 0, "printed 300 sheets")
    used = snapshot(h)["supplies"]
    check(call(h, "root", "SimulatorReplaceSupply", "u", "2").returncode == 0, "replaced supply 2")
    refilled = snapshot(h)["supplies"]
    cap = used[2][7]
    check(cap[0] == "value" and used[2][6][0] == "value" and used[2][6][1] < cap[1],
          f"supply 2 used below its max capacity before the replacement ({used[2][6]} of {cap})")
    check(refilled[2][6] == cap and refilled[2][7] == cap, f"supply 2 back at its max capacity ({refilled[2][6]})")
    check(refilled[2][:6] == used[2][:6], "the same supply (index, type, class, description, colorant, unit)")
    check({k: v for k, v in refilled.items() if k != 2} == {k: v for k, v in used.items() if k != 2},
          "the other supplies are untouched")
    r = call(h, "root", "SimulatorStep", "u", "1000001")
    check(r.returncode != 0 and ("InvalidArgs" in r.stderr + r.stdout or "At most" in r.stderr),
          "too large a step is InvalidArgs")
    r = call(h, "root", "SimulatorReplaceSupply", "u", "6")
    check(r.returncode != 0 and "no numeric max capacity" in r.stderr, "waste box cannot be refilled")
    r = call(h, "root", "SimulatorResetCounter", "s", "NoSuchCounter")
    check(r.returncode != 0 and "No counter" in r.stderr, "unknown counter is InvalidArgs")
    check(call(h, "root", "SimulatorResetCounter", "s", "TotalImpressions").returncode == 0, "reset TotalImpressions")
    s = snapshot(h)
    t = s["counters"]["TotalImpressions"]
    check(t["state"] == "anomaly" and t["observed"] == 0 and t["value"] > 0,
          "a reset counter is an anomaly, its billable value held")
    check(d.alive(), "the simulated collector still runs")
    h.stop(d)

    # --max-rate=: at one impression a minute, 300 sheets at once cannot be real.
    d = start(h, "sim:42", os.path.join(h.tmp, "state-rate"), ("--max-rate=1",))
    before = snapshot(h)["counters"]["TotalSheets"]["value"]
    check(call(h, "root", "SimulatorStep", "u", "300").returncode == 0, "printed 300 sheets")
    t = snapshot(h)["counters"]["TotalSheets"]
    check(t["state"] == "anomaly" and t["value"] == before and t["observed"] == before + 300,
          "with --max-rate=1, 300 sheets at once are held back as implausible")
    r = h.run([h.exe("collector/callhome-collector"), "--source=sim:1", "--max-rate=0"])
    check(r.returncode == 1 and "--max-rate=" in r.stderr + r.stdout, "--max-rate=0 is refused, saying why")

print("collector bus: all checks passed")
