#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""callhome-policyd on a private system-like bus, started as root, dropping
itself to callhome-policy, beside a real callhome-auditd and callhome-collector:

  - every property and method: root and callhome-admin allowed, any other user
    denied, by the bus policy and (on an open bus) by the daemon's own check;
  - a change is audited (uid, old, new) before it takes effect and is written to
    the policy file; a bad value is InvalidArgs saying what to change;
  - the proxy credentials never appear in a D-Bus reply, a log line or an audit record;
  - with auditd gone the change is refused and nothing changes;
  - Preview drops a field the allowlist does not name, and lists it.
"""
import json
import os
import shutil
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
sys.path.insert(0, os.path.join(HERE, "..", "audit"))
import chtest  # noqa: E402
from chtest import TEST_ADMIN, TEST_OTHER, Harness, check, skip_unless_root, uid_of  # noqa: E402
from auditlib import cli, setup_keys, start_daemon as start_auditd  # noqa: E402

NAME, PATH = "org.callhome.Policy1", "/org/callhome/Policy1"
POLICYD = os.path.join(chtest.BUILD_ROOT, "policy", "callhome-policyd")
COLLECTOR = os.path.join(chtest.BUILD_ROOT, "collector", "callhome-collector")
SECRET_USER, SECRET_PASSWORD = "proxy-user-Zq81", "s3cret-Pw-7Xk2"


def policy_records(audit_dir, kind="policy.change"):
    """The records of type `kind` in the log, each with its payload decoded."""
    r = cli("export", f"--dir={audit_dir}", "--json", check=0)
    out = []
    for line in r.stdout.splitlines():
        rec = json.loads(line) if line.strip().startswith("{") else None
        if rec and rec.get("type") == kind:
            rec["body"] = json.loads(rec["payload"])
            out.append(rec)
    return out


def check_protocol_shape(h, xml, element):
    """The payload is the protocol's request element, valid against ipc/soap/callhome.xsd."""
    path = os.path.join(h.tmp, f"{element}.xml")
    with open(path, "w") as f:
        f.write(xml)
    r = h.run(["xmllint", "--noout", "--schema", h.src("ipc/soap/callhome.xsd"), path])
    check(r.returncode == 0 and xml.startswith(f'<{element} xmlns="urn:callhome:soap:v1">'),
          f"the payload is a {element} element valid against callhome.xsd {r.stderr.strip()}")


def start_policyd(h, state, open_bus=False):
    p = h.spawn([POLICYD, f"--state-dir={state}", "--log-level=debug"], name="policyd")
    h.wait_for_name(NAME, p)
    return p


def get(h, user, prop):
    return h.busctl(user, "get-property", NAME, PATH, NAME, prop)


def call(h, user, method, sig, *args):
    return h.busctl(user, "call", NAME, PATH, NAME, method, sig, *args)


def denied(r):
    return r.returncode != 0 and ("Access denied" in r.stderr or "AccessDenied" in r.stderr
                                  or "not permitted" in r.stderr or "rejected" in r.stderr)


def members():
    """The properties (name, type, access) and methods of ipc/org.callhome.Policy1.xml."""
    with open(os.path.join(chtest.SOURCE_ROOT, "ipc", "org.callhome.Policy1.xml")) as f:
        iface = chtest.interface_of(f.read(), NAME)
    props = [(k[1], v[0], v[1]) for k, v in iface.items() if k[0] == "property"]
    methods = {k[1]: [t for _, t, d in v if d == "in"] for k, v in iface.items() if k[0] == "method"}
    return props, methods


def dummy_args(types):
    """busctl arguments of the right signature (a method's own check must be reached), or None."""
    simple = {"s": "x", "o": "/x", "b": "false", "y": "1", "q": "1", "n": "1", "u": "1", "i": "1", "t": "1", "x": "1"}
    args = []
    for t in types:
        if t in simple:
            args.append(simple[t])
        elif t.startswith("a"):
            args.append("0")
        else:
            return None
    return ["".join(types)] + args if types else []


def access_checks(h, label):
    props, methods = members()
    check(len(props) >= 19 and {"Change", "Preview"} <= set(methods),
          f"{label}: at least the 19 settings and Change, Preview to check")
    for user in ("root", TEST_ADMIN):
        bad = [n for n, _, _ in props if get(h, user, n).returncode != 0]
        check(not bad, f"{label}: {user} reads every property {bad}")
        check(h.busctl(user, "call", NAME, PATH, "org.freedesktop.DBus.Properties", "GetAll", "s", NAME).returncode == 0,
              f"{label}: {user} reads them all at once")
    for user in (TEST_OTHER, "callhome-collector"):
        bad = [n for n, _, _ in props if not denied(get(h, user, n))]
        check(not bad, f"{label}: {user} reads no property {bad}")
        check(denied(h.busctl(user, "call", NAME, PATH, "org.freedesktop.DBus.Properties", "GetAll", "s", NAME)),
              f"{label}: {user} cannot GetAll")
        value = {"b": ("b", "true"), "u": ("u", "7200"), "s": ("s", "ask"), "as": ("as", "1", "meter.*")}
        bad = [n for n, t, a in props if a == "readwrite" and
               not denied(h.busctl(user, "set-property", NAME, PATH, NAME, n, *value[t]))]
        check(not bad, f"{label}: {user} sets no property {bad}")
        check(denied(call(h, user, "Change", "a{sv}", "1", "Supplies", "s", "ask")), f"{label}: {user} cannot call Change")
        check(denied(call(h, user, "Preview", "s", "meter-reads")), f"{label}: {user} cannot call Preview")
        # Every other method of the interface too: the bus refuses the call before its arguments matter.
        bad = [n for n, types in methods.items() if dummy_args(types) is not None and
               not denied(h.busctl(user, "call", NAME, PATH, NAME, n, *dummy_args(types)))]
        check(not bad, f"{label}: {user} calls no method {bad}")
    check(denied(h.busctl("callhome-policy", "set-property", NAME, PATH, NAME, "RemoteServices", "b", "true")),
          f"{label}: the service user itself does not change its policy over the bus")
    check(get(h, "root", "RemoteServices").stdout.strip() == "b false", f"{label}: nothing was changed by them")


def main():
    skip_unless_root()
    with Harness("policy-bus") as h:
        audit_dir = os.path.join(h.tmp, "audit")
        setup_keys(audit_dir)
        auditd = start_auditd(h, audit_dir)
        col_state = os.path.join(h.tmp, "collector")
        h.spawn([COLLECTOR, "--source=sim:7", f"--state-dir={col_state}"], name="collector")
        h.wait_for_name("org.callhome.Collector1")
        state = os.path.join(h.tmp, "policy")
        p = start_policyd(h, state)
        h.check_interface_contract(NAME)
        st = chtest.proc_status(p.pid)
        check(st["Uid"].split()[0] == str(uid_of("callhome-policy")) and st["Groups"] == "" and
              int(st["CapEff"], 16) == 0 and st["NoNewPrivs"] == "1" and st["Seccomp"] == "2",
              "policyd runs as callhome-policy, no groups, no capabilities, no_new_privs, seccomp")
        check(oct(os.stat(os.path.join(state, "policy.xml")).st_mode & 0o777) == "0o600" and
              os.stat(os.path.join(state, "policy.xml")).st_uid == uid_of("callhome-policy"),
              "the defaults are written to policy.xml, callhome-policy's alone")

        access_checks(h, "system bus policy")

        ears = h.listen_signals([TEST_ADMIN, TEST_OTHER], PATH)

        # A change by the admin: audited with uid, old and new, then in force and on disk.
        r = h.busctl(TEST_ADMIN, "set-property", NAME, PATH, NAME, "MeterReads", "s", "automatic")
        check(r.returncode == 0, f"callhome-admin sets MeterReads ({r.stderr.strip()})")
        check(get(h, TEST_ADMIN, "MeterReads").stdout.strip() == 's "automatic"', "the new value is in force")
        with open(os.path.join(state, "policy.xml")) as f:
            check("<Mode>automatic</Mode>" in f.read(), "and written to policy.xml")
        h.wait_for(lambda: any(m == "PropertiesChanged" and "MeterReads" in a[1]
                               for m, a in h.signals_so_far(ears[TEST_ADMIN])[0]), "PropertiesChanged of MeterReads")
        check(True, "the admin hears PropertiesChanged of MeterReads")
        recs = policy_records(audit_dir)
        check(len(recs) == 1, "one policy.change record in the audit log")
        body = recs[0]["body"]
        check(body["uid"] == uid_of(TEST_ADMIN), "the record names the caller's uid")
        check(body["changes"] == [{"setting": "MeterReads", "old": "off", "new": "automatic"}],
              "the record holds the old and the new value")

        # Validating setters: a person can act on the message.
        r = h.busctl("root", "set-property", NAME, PATH, NAME, "Diagnostics", "s", "automatic")
        check(r.returncode != 0 and "never sent without consent" in r.stderr, "Diagnostics cannot be automatic")
        r = h.busctl("root", "set-property", NAME, PATH, NAME, "CheckInIntervalMin", "u", "30")
        check(r.returncode != 0 and "60 to 2678400" in r.stderr, "an interval out of bounds says the bounds")
        r = h.busctl("root", "set-property", NAME, PATH, NAME, "ServerURL", "s", "http://x.example/")
        check(r.returncode != 0 and "https://" in r.stderr, "a server URL must be https")

        # Credentials: accepted, never shown, masked in the record, never logged.
        r = call(h, "root", "Change", "a{sv}", "3", "ProxyURL", "s", "http://proxy.example:3128",
                 "ProxyUser", "s", SECRET_USER, "ProxyPassword", "s", SECRET_PASSWORD)
        check(r.returncode == 0, f"root sets the proxy and its credentials ({r.stderr.strip()})")
        check(get(h, "root", "ProxyAuthentication").stdout.strip() == "b true", "ProxyAuthentication says they are set")
        everything = h.busctl("root", "introspect", NAME, PATH).stdout
        for prop in ("ProxyUser", "ProxyPassword"):
            check(get(h, "root", prop).returncode != 0, f"{prop} cannot be read back")
            r = h.busctl("root", "set-property", NAME, PATH, NAME, prop, "s", "x")
            check(r.returncode != 0 and "set it with Change()" in r.stderr, f"{prop} is no property to set either")
        r = h.busctl("root", "set-property", NAME, PATH, NAME, "LoadError", "s", "")
        check(r.returncode != 0 and "read-only" in r.stderr, "LoadError is read-only")
        recs = policy_records(audit_dir)
        dump = json.dumps(recs) + everything + p.output() + auditd.output()
        check(SECRET_USER not in dump and SECRET_PASSWORD not in dump,
              "the credentials appear in no reply, log line or audit record")
        check({"setting": "ProxyPassword", "old": "(none)", "new": "(set)"} in recs[-1]["body"]["changes"],
              "the record masks them")

        # Preview: what would leave now, a field not on the allowlist dropped and listed.
        r = call(h, TEST_ADMIN, "Change", "a{sv}", "1", "Allowlist", "as", "3", "meter.TotalImpressions",
                 "meter.prtMarkerLifeCount.*", "supply.*")
        check(r.returncode == 0, "the admin narrows the allowlist")
        r = h.busctl(TEST_ADMIN, "--json=short", "call", NAME, PATH, NAME, "Preview", "s", "meter-reads")
        check(r.returncode == 0, f"Preview answers ({r.stderr.strip()})")
        payload, dropped = json.loads(r.stdout)["data"]
        xml = bytes(payload).decode()
        check("<Name>TotalImpressions</Name>" in xml, "the allowed counter is in the payload")
        check("TotalSheets" not in xml, "a counter not on the allowlist is not")
        check(["meter.TotalSheets", "not in the allowlist"] in dropped, "and it is listed as dropped")
        check_protocol_shape(h, xml, "SubmitMeterReads")

        r = h.busctl("root", "--json=short", "call", NAME, PATH, NAME, "Preview", "s", "supplies")
        check(r.returncode == 0, f"Preview of the supplies answers ({r.stderr.strip()})")
        check_protocol_shape(h, bytes(json.loads(r.stdout)["data"][0]).decode(), "SubmitSupplies")

        check(h.signals_so_far(ears[TEST_OTHER]) == ([], []), "another user hears no signal of the policy")

        # A change the file cannot take is not made, and the log says so.
        os.chmod(state, 0o500)
        try:
            r = h.busctl("root", "set-property", NAME, PATH, NAME, "SuppliesInterval", "u", "7200")
        finally:
            os.chmod(state, 0o700)
        check(r.returncode != 0 and "policy file could not be written" in r.stderr, "an unwritable policy file refuses the change")
        check(get(h, "root", "SuppliesInterval").stdout.strip() == "u 86400", "which is not in force")
        failed = policy_records(audit_dir, "policy.change-failed")
        changes = policy_records(audit_dir)
        check(len(failed) == 1 and failed[0]["body"]["change_seq"] == changes[-1]["seq"] and
              failed[0]["body"]["uid"] == 0, "the log records that the audited change was not made")

        # CounterAnomaly: taken from the collector's unique name only.
        forge = ("import dbus, sys; b = dbus.bus.BusConnection(sys.argv[1]); "
                 "m = dbus.lowlevel.SignalMessage('/org/callhome/Collector1', 'org.callhome.Collector1', 'CounterAnomaly'); "
                 "m.append('TotalSheets', dbus.UInt64(5), dbus.UInt64(1), 'decrease', signature='stts'); "
                 "b.send_message(m); b.flush()")
        h.run(["/usr/bin/python3", "-c", forge, h.address], check_rc=0)
        h.wait_for(lambda: "does not own org.callhome.Collector1: ignored" in p.output(), "the forged signal to be refused")
        check(True, "a CounterAnomaly from another peer is ignored")
        check(h.busctl("root", "call", "org.callhome.Collector1", "/org/callhome/Collector1", "org.callhome.Collector1",
                       "SimulatorResetCounter", "s", "TotalImpressions").returncode == 0, "the simulator resets a counter")
        r = h.busctl("root", "--json=short", "call", NAME, PATH, NAME, "Preview", "s", "meter-reads")
        xml = bytes(json.loads(r.stdout)["data"][0]).decode()
        check("<Name>TotalImpressions</Name><Value>0</Value><Unit>impressions</Unit><Anomaly>Decreased</Anomaly>" in xml,
              "the decrease is previewed as the new reading, marked Decreased")
        h.wait_for(lambda: "Counter anomaly: TotalImpressions decrease" in p.output(), "the collector's own CounterAnomaly")
        h.wait_for(lambda: [x for x in policy_records(audit_dir, "counter.anomaly")], "the anomaly's audit record")
        anomalies = policy_records(audit_dir, "counter.anomaly")
        check(len(anomalies) == 1 and anomalies[0]["body"]["counter"] == "TotalImpressions",
              "the collector's own CounterAnomaly is taken and audited, the forged one is not")

        # No audit, no change.
        chtest.Harness.stop(h, auditd)
        r = h.busctl("root", "set-property", NAME, PATH, NAME, "Supplies", "s", "ask")
        check(r.returncode != 0 and "not made" in r.stderr, "with auditd gone a change is refused")
        check(get(h, "root", "Supplies").stdout.strip() == 's "off"', "and nothing changed")
        rc = h.stop(p)
        check(rc == 0, f"policyd stops cleanly on SIGTERM (exit status {rc})")

        # A bad file never replaces the last good policy; the daemon says where it is wrong.
        with open(os.path.join(state, "policy.xml")) as f:
            good = f.read()
        with open(os.path.join(state, "policy.xml"), "w") as f:
            f.write(good.replace("<Mode>automatic</Mode>", "<Mode>always</Mode>"))
        p = start_policyd(h, state)
        err = get(h, "root", "LoadError").stdout
        check("policy.xml:5: element Mode:" in err and "always" in err, f"LoadError names file, line and element: {err.strip()}")
        check("policy.xml:5: element Mode:" in p.output(), "and so does the log")
        check(get(h, "root", "MeterReads").stdout.strip() == 's "automatic"', "the last good policy is in force")
        check(get(h, "root", "ProxyAuthentication").stdout.strip() == "b true", "its credentials too")
        check(SECRET_PASSWORD not in p.output(), "which are not logged")

    # The daemon's own check, on a bus that lets everyone call everything; a
    # counter planted in a real collector's source is dropped by the default allowlist.
    with Harness("policy-open", open_bus=True) as h:
        tree = os.path.join(h.tmp, "sysfs")
        shutil.copytree(h.src("tests/collector/sysfs-example"), tree)
        with open(os.path.join(tree, "billing", "CustomerJobPages"), "w") as f:
            f.write("42\n")
        col = h.spawn([COLLECTOR, f"--source=sysfs:{tree}", f"--state-dir={os.path.join(h.tmp, 'collector')}"],
                      name="collector")
        h.wait_for_name("org.callhome.Collector1")
        state = os.path.join(h.tmp, "policy")
        p = start_policyd(h, state)
        access_checks(h, "open bus")
        r = h.busctl("root", "--json=short", "call", NAME, PATH, NAME, "Preview", "s", "meter-reads")
        check(r.returncode == 0, f"Preview of the sysfs source answers ({r.stderr.strip()})")
        payload, dropped = json.loads(r.stdout)["data"]
        xml = bytes(payload).decode()
        check("CustomerJobPages" not in xml and ["meter.CustomerJobPages", "not in the allowlist"] in dropped,
              "the planted counter is dropped by the default allowlist, and listed")
        check("<Name>TotalImpressions</Name>" in xml, "the standard counters go")
        check_protocol_shape(h, xml, "SubmitMeterReads")

        # The work a caller can cause is bounded: 8 previews wait for a stopped collector, a 9th is refused.
        os.kill(col.pid, signal.SIGSTOP)
        try:
            waiting = [h.spawn(["busctl", f"--address={h.address}", "--timeout=60", "call", NAME, PATH, NAME,
                                "Preview", "s", "supplies"], name=f"preview-{i}") for i in range(8)]
            h.wait_for(lambda: "(8 waiting)" in p.output(), "eight previews waiting for the collector")
            r = call(h, "root", "Preview", "s", "supplies")
            check(r.returncode != 0 and "already waiting" in r.stderr, "a ninth preview is refused (LimitsExceeded)")
        finally:
            os.kill(col.pid, signal.SIGCONT)
        check(all(w.wait(timeout=60) == 0 for w in waiting), "the eight are answered once the collector runs again")
        check(call(h, "root", "Preview", "s", "supplies").returncode == 0, "and previews are taken again")


if __name__ == "__main__":
    main()
