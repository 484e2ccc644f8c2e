#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A push, end to end on the whole system (tests/harness/system.py), the
collector reading a sysfs tree with a counter planted in it that no allowlist
names (billing/CustomerJobPages):

  - SendMeterReadsNow answers a transaction id once the outbound record is
    synced; the server counts that id exactly once; the audit log holds the
    dropped fields (payload.dropped), then the outbound record (the exact
    request element, as Preview shows it), then the server's reply, then the
    delivery, in that order;
  - the planted counter never reaches the server: not in what it parsed, not
    anywhere in the bytes it received; its drop is audited;
  - SendSuppliesNow likewise; a second push gets a new id, and a restarted
    policyd a new epoch: no id is ever used twice;
  - through the customer's proxy with credentials once the policy names it
    (SetServer/SetProxy handed over again), the password in no log nor record;
  - the status (LastMeterReads, PendingPushes, LastPushError) follows, with
    PropertiesChanged heard by a member of callhome-admin;
  - callhome-audit verify passes.
It waits for replies, log lines and the server's state, never for time."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from chtest import TEST_ADMIN, Harness, check, skip_unless_root  # noqa: E402
from system import POLICY_PATH, System  # noqa: E402

skip_unless_root("the push tests")

PLANTED = "CustomerJobPages"
PROXY_USER, PROXY_PASSWORD = "device-9", "pr0xy-Secret-81"


def txn_of(r):
    check(r.returncode == 0, f"the push is recorded ({r.stderr.strip()})")
    return json.loads(r.stdout)["data"][0]


def order_of(s, txn):
    """(kind, direction, type) of the records of one transaction, in log order."""
    return [(x["kind"], x["direction"], x["type"]) for x in s.audit_export(txn=txn)]


def main():
    with Harness("flow-send") as h, System(h, plant={f"billing/{PLANTED}": 4242}) as s:
        s.enable(MeterReads="ask", Supplies="ask")
        ears = h.listen_signals([TEST_ADMIN], POLICY_PATH)

        txn = txn_of(s.call_policy("root", "SendMeterReadsNow"))
        check(txn.startswith(s.serial + "-"), f"SendMeterReadsNow answers the transaction id {txn}")
        st = s.wait_server(lambda d: d["counts"]["SubmitMeterReads"] == 1, "the server to count the meter reads")
        s.wait_log("policyd", rf"Meter reads {txn}: delivered")
        subs = [x for x in st["submissions"] if x["transaction_id"] == txn]
        check(len(subs) == 1 and st["duplicates"]["SubmitMeterReads"] == 0,
              "the server has the transaction exactly once, no duplicate")
        check(PLANTED not in json.dumps(subs) and "TotalImpressions" in json.dumps(subs),
              "what it parsed has the standard counters, not the planted one")
        wire = [m for m in s.server_messages() if m.get("type") == "message" and m.get("dir") == "in"]
        check(wire and all(PLANTED not in json.dumps(m) for m in wire),
              f"the planted counter is nowhere in the {len(wire)} message(s) the server received")

        order = order_of(s, txn)
        check(order == [("data", "outbound", "meter-reads"), ("data", "inbound", "meter-reads"),
                        ("delivery", "internal", "audit.delivery")],
              f"the audit log: outbound record, then the reply, then the delivery {order}")
        out = s.audit_export(txn=txn)[0]
        check(out["payload"].startswith('<SubmitMeterReads xmlns="urn:callhome:soap:v1">') and
              f"<TransactionId>{txn}</TransactionId>" in out["payload"] and PLANTED not in out["payload"],
              "the outbound record holds the request element sent, without the planted counter")
        check(out["metadata"].get("why") == "customer", "and says who asked for it")
        reply = json.loads(s.audit_export(txn=txn)[1]["payload"])
        check(reply == {"transaction_id": txn, "status": "Accepted"}, f"the reply record: {reply}")
        dropped = [x for x in s.audit_export(type="payload.dropped") if json.loads(x["payload"])["txn"] == txn]
        check(len(dropped) == 1 and {"field": f"meter.{PLANTED}", "reason": "not in the allowlist"}
              in json.loads(dropped[0]["payload"])["dropped"], "the planted counter's drop is audited")
        check(dropped[0]["seq"] < out["seq"], "before the outbound record")

        check(s.policy_property("LastMeterReads") > 0 and s.policy_property("PendingPushes") == 0 and
              s.policy_property("LastPushError") == "" and s.policy_property("PushRetry") == 0,
              "status: LastMeterReads set, nothing pending, no error")
        h.wait_for(lambda: any(m == "PropertiesChanged" and "LastMeterReads" in json.dumps(a)
                               for m, a in h.signals_so_far(ears[TEST_ADMIN])[0]),
                   "PropertiesChanged of LastMeterReads")
        check(True, "PropertiesChanged of LastMeterReads reached the admin")

        sup = txn_of(s.call_policy(TEST_ADMIN, "SendSuppliesNow"))
        s.wait_server(lambda d: d["counts"]["SubmitSupplies"] == 1, "the server to count the supplies")
        s.wait_log("policyd", rf"Supplies {sup}: delivered")
        check(order_of(s, sup)[0] == ("data", "outbound", "supplies") and s.policy_property("LastSupplies") > 0,
              f"supplies {sup}: recorded, sent, delivered")

        again = txn_of(s.call_policy("root", "SendMeterReadsNow"))
        check(again not in (txn, sup), f"a second push has its own id {again}")
        s.wait_server(lambda d: d["counts"]["SubmitMeterReads"] == 2, "the second push to be counted")
        s.wait_log("policyd", rf"Meter reads {again}: delivered")

        s.restart("policyd")
        third = txn_of(s.call_policy("root", "SendMeterReadsNow"))
        epochs = [int(t.rsplit("-", 1)[1].split(".")[0]) for t in (txn, third)]
        check(epochs[1] > epochs[0], f"after a restart a new epoch: {txn} then {third}")
        st = s.wait_server(lambda d: d["counts"]["SubmitMeterReads"] == 3, "the third push to be counted")
        check(sum(d for d in st["duplicates"].values()) == 0, "nothing was sent twice")
        s.wait_log("policyd", rf"Meter reads {third}: delivered")

        # Through the customer's proxy, with credentials: handed to the net-worker when the policy
        # changes, before the next submission; never logged, never in the audit log.
        proxy = s.start_proxy(user=PROXY_USER, password=PROXY_PASSWORD)
        s.set_policy(ProxyURL=proxy.url(), ProxyUser=PROXY_USER, ProxyPassword=PROXY_PASSWORD)
        via = txn_of(s.call_policy("root", "SendSuppliesNow"))
        s.wait_log("policyd", rf"Supplies {via}: delivered")
        check(f"CONNECT localhost:{s.server.port}" in s.proxy_log(), f"{via} went through the proxy's CONNECT tunnel")
        check(all(PROXY_PASSWORD not in s.output(d) for d in ("policyd", "net")),
              "the proxy password is in no log of policyd or the net-worker")
        check(PROXY_PASSWORD not in json.dumps(s.audit_export()), "nor in the audit log")

        s.stop("auditd")
        r = s.verify()
        check(r.returncode == 0, f"callhome-audit verify passes ({r.stdout.strip().splitlines()[-1:]})")


if __name__ == "__main__":
    main()
