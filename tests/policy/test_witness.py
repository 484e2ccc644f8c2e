#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The witness, against the whole system (tests/harness/system.py):

  cosign   each check-in carries auditd's latest checkpoint (and its log key the
           first time, to a server that trusts on first use), later ones the
           consistency proof from the size the server acknowledged; the server
           cosigns, policyd audits the cosignature and hands it to auditd
           (Audit1 then holds a witness record), LastWitnessedCheckpoint shows
           it; auditd's retention (small --retention-size) then removes the
           segments the cosigned checkpoint covers and `callhome-audit verify`
           passes.
  fork     the server holds the device to a head from a different log: its
           LogFork fault is raised (ForkFault, the ForkDetected signal heard by
           an admin, a witness.fork audit record, the journal), kept across a
           restart of policyd; scheduled pushes stop while it stands;
           ClearForkFault by an admin (not by anyone else, and not unless
           the audit log records it) clears it, audited with the uid, and they
           resume.
"""
import base64
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from chtest import TEST_ADMIN, TEST_OTHER, Harness, check, skip_unless_root, uid_of  # noqa: E402
from system import AUDIT_NAME, POLICY_PATH, System  # noqa: E402
from auditlib import cli, parse_note  # noqa: E402
from commserver import state as server_state  # noqa: E402
from checkinlib import AUDIT, checkins_received, exported, payloads  # noqa: E402

def audit_call(s, member, *args):
    return s.busctl_json("root", "call", *AUDIT, member, *args)


def segments(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".seg"))


def append(s, n, size=1000):
    """n filler records of `size` bytes, appended as root."""
    bad = [r.stderr.strip() for r in (s.h.busctl("root", "call", *AUDIT, "Append", "sssaya{ss}", "test.filler",
                                                 "internal", "", str(size), *(["0"] * size), "0") for _ in range(n))
           if r.returncode != 0]
    check(not bad, f"{n} filler records appended {bad[:1]}")


def start(h, server_args=(), auditd_args=(), server_state_fn=None, policyd_env=None):
    """The system with the server first, so auditd can be given its witness key."""
    s = System(h, start=False, server_args=["--witness-tofu"] + list(server_args),
               auditd_args=["--epoch-length=2s", "--checkpoint-interval=1s"] + list(auditd_args),
               policyd_env=policyd_env)
    s.__enter__()
    s.start("collector")
    if server_state_fn:
        server_state_fn(s)
    s.start("server")
    wkey = os.path.join(h.tmp, "witness.vkey")
    with open(wkey, "w") as f:
        f.write(s.server.witness_vkey + "\n")
    os.chmod(wkey, 0o644)
    s.auditd_args.append(f"--witness-key={wkey}")
    s.start("auditd")
    s.start("net")
    s.start("policyd")
    s.enable(CheckInIntervalMin=3600, CheckInIntervalMax=7200)
    return s, wkey


def checkpoint_covering(s, size):
    """Waits for auditd's periodic checkpoint to cover `size` records; returns (size, root)."""
    got = []

    def ok():
        _, n, root, _, _ = parse_note(audit_call(s, "GetCheckpoint")[0])
        got[:] = [n, root]
        return n >= size
    s.h.wait_for(ok, f"a checkpoint covering {size} records", timeout=20)
    return got


def test_cosign(h):
    s, wkey = start(h, auditd_args=["--segment-size=8K", "--retention-size=32K"])
    try:
        adir = s.dirs["audit"]
        check(s.policy_property("LastWitnessedCheckpoint") == [0, ""], "nothing witnessed yet")

        # First contact: checkpoint and log key, no proof; the server pins the key and cosigns.
        r = s.call_policy("root", "CheckInNow")
        check(r.returncode == 0, f"first check-in ({r.stderr.strip()})")
        first = checkins_received(s)[-1]
        check("<Checkpoint>" in first and "<LogKey>" in first and "<ProofFrom>0</ProofFrom>" in first,
              "the first check-in carries the checkpoint and the log key")
        w = s.device_state()["witness"]
        check(w["size"] and w["log_key"], f"the server acknowledged a checkpoint ({w['size']})")
        s.h.wait_for(lambda: payloads(s, "witness.cosigned"), "the cosignature's audit record")
        rec = payloads(s, "witness.cosigned")[-1]
        check(rec["size"] == w["size"] and "witness_seq" in rec and rec["cosignature"].startswith("— "),
              f"the cosignature is audited, and auditd took it ({rec})")
        wrec = [r for r in exported(s) if r.get("kind") == "witness"]
        check(wrec and wrec[-1]["seq"] == rec["witness_seq"], "Audit1 holds the cosigned checkpoint (a witness record)")
        check(s.policy_property("LastWitnessedCheckpoint") == [w["size"], w["root"]],
              "LastWitnessedCheckpoint shows the cosigned size and root")

        # Enough records for retention to want to remove some, a checkpoint over them, a check-in with a proof.
        append(s, 36)
        check(segments(adir)[0] == "0000000000000001.seg", "without a newer cosignature nothing is removed")
        n = len(s.audit_records())
        size, root = checkpoint_covering(s, n)
        r = s.call_policy(TEST_ADMIN, "CheckInNow")
        check(r.returncode == 0, f"second check-in ({r.stderr.strip()})")
        second = checkins_received(s)[-1]
        check(f"<ProofFrom>{w['size']}</ProofFrom>" in second and "<ProofHash>" in second and "<LogKey>" not in second,
              "the second check-in proves from the acknowledged size, without the key")
        w2 = s.device_state()["witness"]
        check(w2["size"] == size and base64.b64decode(w2["root"]) == root, f"the server moved its head to {size}")
        s.h.wait_for(lambda: any(p["size"] == size for p in payloads(s, "witness.cosigned")),
                     "the second cosignature's audit record")
        check(s.policy_property("LastWitnessedCheckpoint")[0] == size, "LastWitnessedCheckpoint follows")

        # Retention may now remove what the cosigned checkpoint covers.
        append(s, 8)
        check(segments(adir)[0] != "0000000000000001.seg",
              f"retention removed the oldest segments ({segments(adir)[0]})")
        s.stop("policyd")
        s.stop("auditd")
        r = cli("verify", f"--dir={adir}", f"--key={s.audit_key}", f"--witness-key={wkey}", "--no-progress")
        check(r.returncode == 0 and "cosign" in r.stdout,
              f"callhome-audit verify passes with the sealing key and the witness key, the cosignature checked ({r.stdout.strip()[-300:]})")
    finally:
        s.__exit__(None, None, None)


def test_fork(h):
    other_root = hashlib.sha256(b"the head of another log").digest()

    def forked_server(s):
        # The server's state for this device: a head of size 1 from a different log, under this log's key.
        dev = server_state._new_device()
        dev["witness"] = {"log_key": None, "size": 1, "root": base64.b64encode(other_root).decode(),
                          "checkpoint": None}
        path = os.path.join(s.dirs["server"], "state")
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "state.json"), "w") as f:
            json.dump({"version": 1, "devices": {s.serial: dev}}, f)

    # Scheduled meter reads every second or so (60 s, the least interval, made 60 times shorter for the test).
    s, _ = start(h, server_state_fn=forked_server, policyd_env={"CALLHOME_POLICYD_TIME_DIVISOR": "60"})
    try:
        key = s.busctl_json("root", "get-property", *AUDIT, "CheckpointKey")
        st, res = s.server.admin("POST", f"/v1/devices/{s.serial}/log-key", {"vkey": key})
        check(st == 200, f"the server holds this log's key ({res})")
        s.set_policy(MeterReads="automatic", MeterReadsInterval=60)
        s.wait_server(lambda d: d["counts"].get("SubmitMeterReads", 0) >= 1, "a scheduled meter-read push")
        ears = h.listen_signals([TEST_ADMIN], POLICY_PATH)
        # The first check-in learns the server's head (it has no proof from there); the next is judged.
        for _ in range(2):
            r = s.call_policy("root", "CheckInNow")
            if s.policy_property("ForkFault"):
                break
        fault = s.policy_property("ForkFault")
        check(r.returncode != 0 and "truncated, rewritten or forked" in r.stderr, f"the check-in fails with LogFork ({r.stderr.strip()})")
        check("does not extend" in fault and "ClearForkFault" in fault, f"ForkFault says what happened ({fault})")
        check("truncated, rewritten or forked" in s.policy_property("LastError"), "LastError says it in words")
        h.wait_for(lambda: any(m == "ForkDetected" for m, _ in h.signals_so_far(ears[TEST_ADMIN])[0]),
                   "ForkDetected heard by an admin")
        sig = [a for m, a in h.signals_so_far(ears[TEST_ADMIN])[0] if m == "ForkDetected"][-1]
        check(sig[1] == 1 and base64.b64decode(sig[2]) == other_root, f"the signal names the server's head ({sig[1:]})")
        h.wait_for(lambda: payloads(s, "witness.fork"), "the witness.fork audit record")
        rec = payloads(s, "witness.fork")[-1]
        check(rec["acked_size"] == 1 and rec["checkpoint_size"] >= 1, f"the fork is audited ({rec})")
        s.wait_log("policyd", r"does not extend the one it witnessed")

        # Automatic sending stops: the scheduled pushes come and go, nothing is sent.
        mark = s.log_size("policyd")
        s.wait_log("policyd", r"scheduled time; not sent: automatic sending is stopped", after=mark)
        pushed = s.counts().get("SubmitMeterReads", 0)
        mark = s.log_size("policyd")
        s.wait_log("policyd", r"scheduled time; not sent: automatic sending is stopped", after=mark, count=2)
        check(s.counts().get("SubmitMeterReads", 0) == pushed, f"no meter reads sent while the fault stands ({pushed})")

        # Kept across a restart.
        s.restart("policyd")
        check(s.policy_property("ForkFault") == fault, "the fault survives a restart of policyd")

        # Only an admin clears it; audited with the uid.
        r = s.call_policy(TEST_OTHER, "ClearForkFault")
        check(r.returncode != 0 and s.policy_property("ForkFault") == fault, "another user cannot clear it")
        s.stop("auditd")
        r = s.call_policy(TEST_ADMIN, "ClearForkFault")
        check(r.returncode != 0 and "could not record" in r.stderr and s.policy_property("ForkFault") == fault,
              f"with the audit log away it is not cleared ({r.stderr.strip()})")
        s.start("auditd")
        r = s.call_policy(TEST_ADMIN, "ClearForkFault")
        check(r.returncode == 0 and s.policy_property("ForkFault") == "", f"an admin clears it ({r.stderr.strip()})")
        h.wait_for(lambda: any(m == "PropertiesChanged" and '"ForkFault": ""' in json.dumps(a)
                               for m, a in h.signals_so_far(ears[TEST_ADMIN])[0]), "PropertiesChanged of ForkFault")
        h.wait_for(lambda: payloads(s, "witness.fork-cleared"), "the witness.fork-cleared audit record")
        check(payloads(s, "witness.fork-cleared")[-1]["uid"] == uid_of(TEST_ADMIN), "audited with the admin's uid")
        pushed = s.counts().get("SubmitMeterReads", 0)
        s.wait_server(lambda d: d["counts"].get("SubmitMeterReads", 0) > pushed, "automatic sending resumed")
        r = s.call_policy(TEST_ADMIN, "ClearForkFault")
        check(r.returncode != 0 and "no fork fault" in r.stderr, "clearing again: there is none")
    finally:
        s.__exit__(None, None, None)


def main():
    skip_unless_root("the witness test")
    which = sys.argv[1] if len(sys.argv) > 1 else "cosign"
    with Harness(f"witness-{which}") as h:
        {"cosign": test_cosign, "fork": test_fork}[which](h)


if __name__ == "__main__":
    main()
