# SPDX-License-Identifier: Apache-2.0
"""Helpers of the check-in and witness tests (test_checkin.py, test_witness.py), on top of
tests/harness/system.py."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from chtest import check  # noqa: E402
from system import AUDIT_NAME  # noqa: E402
import auditlib  # noqa: E402

AUDIT = [AUDIT_NAME, "/org/callhome/Audit1", AUDIT_NAME]


def exported(s):
    """Every record of the log with its payload (`callhome-audit export --json`)."""
    r = auditlib.cli("export", f"--dir={s.dirs['audit']}", "--json", check=0)
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip().startswith("{")]


def payloads(s, type):
    """The JSON payloads of the records of `type`, oldest first."""
    return [json.loads(r["payload"]) for r in exported(s) if r.get("type") == type]


def checkins_received(s):
    """The CheckIn requests the server received, oldest first (their SOAP bodies)."""
    return [m["body"] for m in s.server_messages() if m.get("op") == "CheckIn" and m.get("dir") == "in"]
