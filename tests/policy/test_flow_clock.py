#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A wall clock before the build date, as a printer without a battery-backed
clock has at boot, on the whole system (tests/harness/system.py). policyd alone
sees 1970 through tests/policy/flow-clock-shim.c (LD_PRELOAD; the time is "set"
by removing its file); the other daemons and the server keep the real clock.

  - SendMeterReadsNow answers ClockNotSet, in words saying the clock is not
    set, never "certificate not yet valid"; nothing is recorded or sent;
  - a push recorded while the clock was right and not yet delivered is not
    sent while the clock reads 1970: the status says the clock is not set,
    and the server (up again) receives nothing;
  - once the clock is set the same transaction is sent and counted once.
It waits for policyd's log lines and the server's state, never for time."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
import chtest  # noqa: E402
from chtest import Harness, check, skip_unless_root  # noqa: E402
from system import System  # noqa: E402

skip_unless_root("the push tests")
chtest.skip_if_sanitized("the clock shim is preloaded into policyd, ahead of the sanitizer runtime")

SHIM = os.path.join(chtest.BUILD_ROOT, "tests", "policy", "libflow-clock-shim.so")
JAN_2_1970 = 86400


def main():
    with Harness("flow-clock") as h:
        clock = os.path.join(h.tmp, "clock")
        env = {"CALLHOME_POLICYD_TIME_DIVISOR": "100", "LD_PRELOAD": SHIM, "CALLHOME_TEST_CLOCK_FILE": clock}

        def set_1970():
            with open(clock, "w") as f:
                f.write(f"{JAN_2_1970}\n")
            os.chmod(clock, 0o644)

        with System(h, policyd_env=env) as s:
            s.enable(MeterReads="ask", RetryMinimumWait=5, RetryIntervalMultiplier=2000)
            set_1970()
            a = s.call_policy_typed("root", "SendMeterReadsNow")
            check(a["error"] == "org.callhome.Policy1.Error.ClockNotSet" and "the wall clock is not set" in a["message"]
                  and "1970" in a["message"] and "certificate" not in a["message"],
                  f"a push with the clock at 1970: ClockNotSet ({a['message']})")
            check([x for x in s.audit_records() if x["direction"] == "outbound"] == [], "nothing was recorded")

            os.unlink(clock)
            s.stop_server()
            r = s.call_policy("root", "SendMeterReadsNow")
            check(r.returncode == 0, "with the clock right again a push is recorded (the server is away)")
            txn = json.loads(r.stdout)["data"][0]
            s.wait_log("policyd", rf"Meter reads {txn} not delivered: Unreachable")
            set_1970()
            s.start("server")
            at = s.log_size("policyd")
            s.wait_log("policyd", rf"Meter reads {txn} not sent: the wall clock is not set: it reads 1970-", after=at,
                       count=2)
            err = s.policy_property("LastPushError")
            check("the wall clock is not set" in err and "certificate" not in err,
                  f"while the clock reads 1970 the push waits, saying why: {err!r}")
            check(s.counts()["SubmitMeterReads"] == 0 and s.server_messages() == [],
                  "and the server, up again, received nothing")

            os.unlink(clock)
            s.wait_log("policyd", rf"Meter reads {txn}: delivered", after=at)
            st = s.device_state()
            check([x["transaction_id"] for x in st["submissions"]] == [txn] and sum(st["duplicates"].values()) == 0,
                  f"once the clock is set, {txn} is sent and counted once")
            check(s.policy_property("LastPushError") == "", "and the error is cleared")


if __name__ == "__main__":
    main()
