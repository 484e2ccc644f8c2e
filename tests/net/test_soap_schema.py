# SPDX-License-Identifier: Apache-2.0
"""The six requests the net-worker builds validate against the contract:
net-worker/test-soap --write-dir writes them (with text that needs escaping),
and xmllint --schema ipc/soap/callhome-envelope.xsd checks every one."""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol"))
import protocol_common as pc  # noqa: E402

OPERATIONS = ["CheckIn", "SubmitMeterReads", "SubmitSupplies", "SubmitDiagnostics", "GetSoftware", "ReportResult"]


def main():
    exe = os.path.join(pc.BUILD_ROOT, "net-worker", "test-soap")
    with tempfile.TemporaryDirectory(prefix="net-schema-", dir=pc.tests_tmp()) as d:
        subprocess.run([exe, "--write-dir", d], check=True, timeout=120)
        for op in OPERATIONS:
            path = os.path.join(d, op + ".xml")
            with open(path, "rb") as f:
                data = f.read()
            ok, diag = pc.xmllint_validate(data, workdir=d)
            assert ok, "%s does not validate: %s" % (op, diag)
            print("ok - %s (%d bytes) validates" % (op, len(data)))


if __name__ == "__main__":
    main()
