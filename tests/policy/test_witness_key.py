#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The policy's WitnessKey, against the whole system (tests/harness/system.py, started
as test_witness.py does: auditd checks cosignatures with the server's real key):

  - a WitnessKey that is not a witness verifier key (a wrong key id, a signed-note key
    of type 0x01 instead of a cosignature/v1 key of type 0x04, no key at all) is refused
    by Change with a clear error, and the setting stays as it was;
  - with another Ed25519 key under the server's witness name, and with a key of another
    name, the server's cosignature is refused: the check-in itself goes through, a
    "witness.refused" record says why, no "witness.cosigned" record is written and auditd
    gets nothing (no witness record in the log, LastWitnessedCheckpoint stays (0, "")),
    LastError and the journal say it in words;
  - with the server's own key the cosignature is accepted as without one: audited
    ("witness.cosigned", naming the key it was checked with), Audit1 holds the witness
    record, LastWitnessedCheckpoint follows, LastError is empty again.
"""
import importlib.util
import os
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from chtest import Harness, check, skip_unless_root, wait_for_change  # noqa: E402
from system import POLICY_NAME, POLICY_PATH  # noqa: E402
from commserver import note  # noqa: E402
from checkinlib import exported, payloads  # noqa: E402

# The system as test_witness.py starts it (by path: tests/protocol has a test_witness.py too).
_spec = importlib.util.spec_from_file_location("policy_test_witness", os.path.join(HERE, "test_witness.py"))
_witness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_witness)
start = _witness.start


def change_witness_key(s, value):
    return s.h.busctl("root", "call", POLICY_NAME, POLICY_PATH, POLICY_NAME, "Change", "a{sv}", "1",
                      "WitnessKey", "s", value)


def wait_record(s, type, predicate=lambda p: True):
    """Waits for an audit record of `type` whose payload satisfies predicate (woken by writes to the log)."""
    def found():
        return next((p for p in reversed(payloads(s, type)) if predicate(p)), None)
    return wait_for_change([s.dirs["audit"]], found, f"a {type} audit record")


def witness_records(s):
    return [r for r in exported(s) if r.get("kind") == "witness"]


def test(h):
    s, _ = start(h)
    try:
        right = s.server.witness_vkey
        name, key_id, key = right.split("+", 2)

        # Malformed keys: refused by Change, with a clear error; nothing changes.
        wrong_id = "%s+%08x+%s" % (name, int(key_id, 16) ^ 1, key)
        note_key = note.verifier_for(name, Ed25519PrivateKey.generate()).vkey()
        for bad, what in ((wrong_id, "a wrong key id"), (note_key, "a signed-note key, not a witness key"),
                          (f"{name}+{key_id}+AAAA", "no Ed25519 key"), (right + "\n", "a trailing newline")):
            r = change_witness_key(s, bad)
            check(r.returncode != 0 and "WitnessKey is not a witness verifier key" in r.stderr,
                  f"Change refuses a WitnessKey with {what} ({r.stderr.strip()})")
            check(s.policy_property("WitnessKey") == "", f"... and WitnessKey stays empty ({what})")
        r = s.call_policy_typed("root", "Change", "{'WitnessKey': <'%s'>}" % wrong_id)
        check(r["error"] == "org.freedesktop.DBus.Error.InvalidArgs", f"... with InvalidArgs ({r})")

        # Another key under the server's witness name, then a key of another name: refused.
        other_key = note.Cosigner(name, Ed25519PrivateKey.generate()).vkey()
        other_name = note.Cosigner("other.test/witness", Ed25519PrivateKey.generate()).vkey()
        for wkey, reason in ((other_key, "does not verify with the policy's WitnessKey"),
                             (other_name, 'not by "other.test/witness"')):
            s.set_policy(WitnessKey=wkey)
            check(s.policy_property("WitnessKey") == wkey, "a well-formed WitnessKey is taken")
            mark = s.log_size("policyd")
            r = s.call_policy("root", "CheckInNow")
            check(r.returncode == 0, f"the check-in itself goes through ({r.stderr.strip()})")
            rec = wait_record(s, "witness.refused", lambda p, k=wkey: p["witness_key"] == k)
            check(reason in rec["reason"] and rec["cosignature"].startswith("— ") and rec["size"] > 0 and rec["root"],
                  f"the refusal is audited with its reason ({rec})")
            s.wait_log("policyd", r"Witness: The Communication Server's cosignature of the audit log's checkpoint of "
                       r"\d+ records was refused: .*" + reason, after=mark)
            err = s.policy_property("LastError")
            check("cosignature" in err and "was refused" in err and reason in err and "WitnessKey" in err,
                  f"LastError says it in words ({err})")
            check(not payloads(s, "witness.cosigned"), "no witness.cosigned record")
            check(not witness_records(s), "auditd got nothing: no witness record in the log")
            check(s.policy_property("LastWitnessedCheckpoint") == [0, ""], "LastWitnessedCheckpoint stays (0, \"\")")

        # The server's own key: accepted as without one.
        s.set_policy(WitnessKey=right)
        r = s.call_policy("root", "CheckInNow")
        check(r.returncode == 0, f"check-in with the right key ({r.stderr.strip()})")
        rec = wait_record(s, "witness.cosigned")
        check("witness_seq" in rec and rec["witness_key"] == right, f"the cosignature is audited, auditd took it ({rec})")
        wrec = witness_records(s)
        check(wrec and wrec[-1]["seq"] == rec["witness_seq"], "Audit1 holds the cosigned checkpoint (a witness record)")
        check(s.policy_property("LastWitnessedCheckpoint") == [rec["size"], rec["root"]],
              "LastWitnessedCheckpoint shows it")
        check(s.policy_property("LastError") == "", "LastError is empty again")
    finally:
        s.__exit__(None, None, None)


def main():
    skip_unless_root("the witness key test")
    with Harness("witness-key") as h:
        test(h)


if __name__ == "__main__":
    main()
