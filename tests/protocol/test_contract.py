#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The contract in ipc/soap is well formed, WS-I style, served verbatim; zeep,
an independent client stack loading that WSDL, calls every operation against
the reference server; every message the server sent validates with
`xmllint --schema` against the XSD."""

import hashlib
import os
import subprocess
import unittest

import protocol_common as pc
from lxml import etree

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
OPERATIONS = ["CheckIn", "SubmitMeterReads", "SubmitSupplies", "SubmitDiagnostics",
              "GetSoftware", "ReportResult"]


class ContractFiles(unittest.TestCase):

    def test_files_are_well_formed_and_schemas_compile(self):
        for path in (pc.WSDL, pc.XSD, pc.ENVELOPE_XSD):
            r = subprocess.run(["xmllint", "--noout", "--nonet", path], capture_output=True)
            self.assertEqual(r.returncode, 0, r.stderr)
        # Both schemas compile and accept the documented idle CheckIn.
        ok, diag = pc.xmllint_validate(pc.idle_checkin())
        self.assertTrue(ok, diag)
        ok, diag = pc.xmllint_validate(pc.body_child(pc.idle_checkin()), pc.XSD)
        self.assertTrue(ok, diag)

    def test_wsdl_is_document_literal_wrapped(self):
        w = etree.parse(pc.WSDL).getroot()
        ns = {"w": WSDL_NS, "s": WSDL_SOAP}
        self.assertEqual(w.get("targetNamespace"), pc.TNS)
        self.assertEqual(w.xpath("w:binding/s:binding/@style", namespaces=ns), ["document"])
        self.assertEqual(w.xpath("w:binding/s:binding/@transport", namespaces=ns),
                         ["http://schemas.xmlsoap.org/soap/http"])
        ops = w.xpath("w:portType/w:operation/@name", namespaces=ns)
        self.assertEqual(sorted(ops), sorted(OPERATIONS))
        self.assertEqual(sorted(w.xpath("w:binding/w:operation/@name", namespaces=ns)), sorted(OPERATIONS))
        for use in w.xpath("//s:body/@use | //s:fault/@use", namespaces=ns):
            self.assertEqual(use, "literal")
        self.assertFalse(w.xpath("//@encodingStyle"))
        xsd = etree.parse(pc.XSD).getroot()
        elements = set(xsd.xpath("xs:element/@name", namespaces={"xs": "http://www.w3.org/2001/XMLSchema"}))
        for op in OPERATIONS:
            # wrapped: one part named "parameters", element named like the operation
            for msg, el in ((op + "Request", op), (op + "Response", op + "Response")):
                parts = w.xpath("w:message[@name=$m]/w:part", m=msg, namespaces=ns)
                self.assertEqual(len(parts), 1, msg)
                self.assertEqual(parts[0].get("name"), "parameters")
                self.assertEqual(parts[0].get("element"), "c:" + el)
                self.assertIn(el, elements)
            self.assertEqual(w.xpath("w:binding/w:operation[@name=$o]/s:operation/@soapAction",
                                     o=op, namespaces=ns), [""])
            faults = w.xpath("w:portType/w:operation[@name=$o]/w:fault/@name", o=op, namespaces=ns)
            self.assertTrue({"RetryAfter", "NotAuthorized", "BadRequest"} <= set(faults), op)
        self.assertIn("LogFork", w.xpath("w:portType/w:operation[@name='CheckIn']/w:fault/@name", namespaces=ns))


class ZeepAgainstServer(pc.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = pc.pki()
        cls.workdir = pc.make_tmpdir(cls.__name__)
        cls.repo = os.path.join(cls.workdir, "repo")
        cls.package = os.urandom(150_000)
        pc.sign_package(cls.pki, cls.repo, "fw-main", cls.package, version="3.1.4")
        cls.server = pc.CommServer(cls.pki, cls.workdir,
                                   ["--software-dir", cls.repo, "--witness-tofu"])
        try:
            cls.server.start()
        except BaseException:
            cls.server.stop()
            raise

    def zeep_service(self, device=pc.DEV1):
        import requests
        import zeep
        import zeep.plugins
        from zeep.transports import Transport
        session = requests.Session()
        session.trust_env = False   # no proxies or CA bundles from the environment
        session.verify = os.path.join(self.pki, "ca.crt")
        session.cert = (os.path.join(self.pki, "device-%s.crt" % device),
                        os.path.join(self.pki, "device-%s.key" % device))
        self.addCleanup(session.close)
        self.history = zeep.plugins.HistoryPlugin()
        client = zeep.Client(pc.WSDL, transport=Transport(session=session, timeout=20),
                             settings=zeep.Settings(strict=True, xml_huge_tree=False),
                             plugins=[self.history])
        return client, client.create_service("{%s}CallHomeBinding" % pc.TNS, self.server.url())

    def test_served_contract_is_verbatim(self):
        with open(pc.WSDL, "rb") as f:
            self.assertEqual(self.server.get("/callhome?wsdl"), (200, f.read()))
        with open(pc.XSD, "rb") as f:
            self.assertEqual(self.server.get("/callhome.xsd"), (200, f.read()))

    def test_every_operation_through_zeep(self):
        import zeep.exceptions
        s = self.server
        dev = pc.DEV1
        client, svc = self.zeep_service(dev)
        log_start = len(s.messages())
        ids = {
            "SendMeterReads": s.enqueue(dev, {"type": "SendMeterReads"}),
            "SendSupplies": s.enqueue(dev, {"type": "SendSupplies"}),
            "SetCheckInInterval": s.enqueue(dev, {"type": "SetCheckInInterval", "seconds": 3600}),
            "SoftwareAvailable": s.enqueue(dev, {"type": "SoftwareAvailable", "package": "fw-main"}),
            "DiagnosticsRequested": s.enqueue(dev, {"type": "DiagnosticsRequested", "reason": "paper jams",
                                                    "items": ["jam.log", "fuser.temp"]}),
        }

        # CheckIn: the five typed instructions come back in order.  (zeep
        # maps an empty element such as <SendMeterReads/> to None, so the
        # kind is read from the received envelope.)
        r = svc.CheckIn(DeviceId=dev, AgentVersion="0.1.0", LastInstruction=0)
        received = self.history.last_received["envelope"]
        kinds = [etree.QName(el[1]).localname
                 for el in received.iter("{%s}Instruction" % pc.TNS)]
        self.assertEqual(kinds, list(ids))
        got = dict(zip(kinds, r.Instruction))
        self.assertEqual({k: v.Id for k, v in got.items()}, ids)
        self.assertEqual(got["SetCheckInInterval"].SetCheckInInterval.Seconds, 3600)
        sa = got["SoftwareAvailable"].SoftwareAvailable
        self.assertEqual((sa.PackageId, sa.Version, sa.Size, sa.Sha256),
                         ("fw-main", "3.1.4", len(self.package), hashlib.sha256(self.package).hexdigest()))
        dr = got["DiagnosticsRequested"].DiagnosticsRequested
        self.assertEqual((dr.Reason, dr.Item), ("paper jams", ["jam.log", "fuser.temp"]))
        self.assertIsNone(r.Witness)

        # Acknowledged instructions are not sent again.
        r = svc.CheckIn(DeviceId=dev, AgentVersion="0.1.0", LastInstruction=max(ids.values()))
        self.assertEqual(r.Instruction, [])

        # Submissions, each acknowledged by its transaction id.
        r = svc.SubmitMeterReads(DeviceId=dev, TransactionId=dev + "-1", Time="2026-01-02T03:04:05Z",
                                 Meter=[{"Name": "prtMarkerLifeCount.1", "Value": 123456, "Unit": "impressions"},
                                        {"Name": "impressions.color", "Value": 42}])
        self.assertEqual((r.TransactionId, r.Status), (dev + "-1", "Accepted"))
        r = svc.SubmitSupplies(DeviceId=dev, TransactionId=dev + "-2", Time="2026-01-02T03:04:05Z",
                               Supply=[{"Name": "toner.black", "Type": "toner", "Level": 40, "MaxCapacity": 100,
                                        "Unit": "percent"},
                                       {"Name": "drum.1", "Level": -3, "MaxCapacity": -2}])
        self.assertEqual(r.Status, "Accepted")
        r = svc.SubmitDiagnostics(DeviceId=dev, TransactionId=dev + "-3", InstructionId=ids["DiagnosticsRequested"],
                                  Time="2026-01-02T03:04:05Z",
                                  Entry=[{"Name": "jam.log", "Value": "tray 2: 3 jams"}])
        self.assertEqual(r.Status, "Accepted")
        r = svc.ReportResult(DeviceId=dev, TransactionId=dev + "-4", InstructionId=ids["SetCheckInInterval"],
                             Outcome="Done")
        self.assertEqual(r.Status, "Accepted")

        # GetSoftware: manifest first, then the package in ranges.
        r = svc.GetSoftware(DeviceId=dev, PackageId="fw-main", Offset=0, Length=0)
        self.assertEqual((r.TotalSize, r.Data or b""), (len(self.package), b""))
        manifest, sig, signer = r.Manifest, r.ManifestSignature, r.SignerCertificate
        from cryptography import x509
        from commserver import software
        with open(os.path.join(self.pki, "codesign-ca.crt"), "rb") as f:
            anchor = x509.load_pem_x509_certificate(f.read())
        m = software.verify_manifest(manifest, sig, x509.load_der_x509_certificate(signer), anchor)
        self.assertEqual((m["package"], m["version"], m["size"]), ("fw-main", "3.1.4", len(self.package)))
        data, off = b"", 0
        while off < r.TotalSize:
            part = svc.GetSoftware(DeviceId=dev, PackageId="fw-main", Offset=off, Length=65536)
            self.assertEqual(part.Offset, off)
            self.assertTrue(part.Data)
            data += part.Data
            off += len(part.Data)
        self.assertEqual(hashlib.sha256(data).hexdigest(), m["sha256"])

        # CheckIn carrying a witness checkpoint (trust on first use of its key).
        log = pc.DeviceLog(dev)
        log.append(5)
        r = svc.CheckIn(DeviceId=dev, AgentVersion="0.1.0", LastInstruction=max(ids.values()),
                        Witness={"Checkpoint": log.checkpoint(), "LogKey": log.vkey, "ProofFrom": 0})
        self.assertEqual(r.Witness.AckedSize, 5)
        self.assertTrue(r.Witness.Cosignature.startswith("\u2014 commserver.test/witness "))

        # A fault, as zeep sees it: typed detail.
        with self.assertRaises(zeep.exceptions.Fault) as cm:
            svc.CheckIn(DeviceId=pc.DEV2, AgentVersion="0.1.0", LastInstruction=0)
        detail = cm.exception.detail
        self.assertEqual(etree.QName(detail[0]).localname, "NotAuthorized")
        self.assertEqual(etree.QName(detail[0]).namespace, pc.TNS)

        counts = s.device_state(dev)["counts"]
        for op in ("SubmitMeterReads", "SubmitSupplies", "SubmitDiagnostics", "ReportResult"):
            self.assertEqual(counts[op], 1, op)

        # Every message zeep sent followed the contract; every message the
        # server sent validates with xmllint against the XSD.
        msgs = [m for m in s.messages()[log_start:] if m.get("type") == "message"]
        incoming = [m for m in msgs if m["dir"] == "in"]
        outgoing = [m for m in msgs if m["dir"] == "out"]
        for op in OPERATIONS:
            self.assertIn(op, {m["op"] for m in incoming}, "no incoming %s logged" % op)
            self.assertIn(op, {m["op"] for m in outgoing}, "no outgoing %s logged" % op)
        # Every request logged has its reply logged, in order, on its connection.
        self.assertEqual([(m["conn"], m["op"]) for m in incoming], [(m["conn"], m["op"]) for m in outgoing])
        for m in incoming:
            self.assertTrue(m["valid"], m)
        validated = 0
        for m in outgoing:
            self.assertTrue(m["valid"], m)
            self.assertEqual(m["bytes"], len(m["body"].encode()))
            self.assertValidOut(m["body"].encode())
            validated += 1
        self.assertEqual(validated, len(incoming))
        self.assertGreaterEqual(validated, len(OPERATIONS) + 4)

    def test_bad_requests_get_typed_faults(self):
        s = self.server
        too_long = "X" * 65
        cases = [
            ("not xml", b"hello"),
            ("doctype", b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY e "x">]>' + pc.idle_checkin()),
            ("unknown operation", pc.envelope('<Reboot xmlns="%s"/>' % pc.TNS)),
            ("missing element", pc.envelope('<CheckIn xmlns="%s"><DeviceId>%s</DeviceId>'
                                            '<LastInstruction>0</LastInstruction></CheckIn>' % (pc.TNS, pc.DEV1))),
            ("too long id", pc.idle_checkin(device=too_long)),
            ("not a number", pc.idle_checkin().replace(b"<LastInstruction>0<", b"<LastInstruction>x<")),
            ("wrong namespace", pc.idle_checkin().replace(pc.TNS.encode(), b"urn:other")),
            ("rpc/encoded style", pc.idle_checkin().replace(b"<s:Body>", b'<s:Body s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">')),
            ("header block", pc.idle_checkin().replace(b"<s:Body>", b'<s:Header><t:Trace xmlns:t="urn:x">1</t:Trace></s:Header><s:Body>')),
            ("mustUnderstand header", pc.idle_checkin().replace(
                b"<s:Body>", b'<s:Header><t:Tx xmlns:t="urn:x" s:mustUnderstand="1">1</t:Tx></s:Header><s:Body>')),
            ("text in header", pc.idle_checkin().replace(b"<s:Body>", b'<s:Header>x</s:Header><s:Body>')),
        ]
        for name, body in cases:
            with self.subTest(name):
                status, out = s.post(body)
                self.assertEqual(status, 500, out)
                self.assertEqual(pc.fault_detail(out)[0], "BadRequest", out)
                self.assertValidOut(out)

    def test_empty_header_is_tolerated(self):
        for header in (b"<s:Header/>", b"<s:Header></s:Header>"):
            with self.subTest(header):
                req = pc.idle_checkin().replace(b"<s:Body>", header + b"<s:Body>")
                ok, diag = pc.xmllint_validate(req)
                self.assertTrue(ok, diag)
                status, out = self.server.post(req)
                self.assertEqual(status, 200, out)
                self.assertValidOut(out)

    def test_scripted_faults(self):
        s = self.server
        st, res = s.admin("POST", "/v1/devices/%s/faults" % pc.DEV2,
                          {"fault": "RetryAfter", "seconds": 30, "operation": "CheckIn", "count": 2})
        self.assertEqual(st, 200, res)
        for _ in range(2):
            status, out = s.post(pc.idle_checkin(pc.DEV2), device=pc.DEV2)
            self.assertEqual(status, 500)
            self.assertEqual(pc.fault_detail(out), ("RetryAfter", {"Seconds": "30"}))
            self.assertIn(b"<faultcode>s:Server</faultcode>", out)
            self.assertValidOut(out)
        self.assertEqual(s.post(pc.idle_checkin(pc.DEV2), device=pc.DEV2)[0], 200)
        st, res = s.admin("POST", "/v1/devices/%s/faults" % pc.DEV2, {"fault": "Explode"})
        self.assertEqual(st, 400)
        st, res = s.admin("POST", "/v1/devices/%s/instructions" % pc.DEV2, {"type": "Reboot"})
        self.assertEqual(st, 400)

    def test_size_limit_and_methods(self):
        s = self.server
        big = pc.envelope('<CheckIn xmlns="%s"><DeviceId>%s</DeviceId><AgentVersion>%s</AgentVersion>'
                          '<LastInstruction>0</LastInstruction></CheckIn>' % (pc.TNS, pc.DEV1, "1" * (1 << 20)))
        status, _ = s.post(big)
        self.assertEqual(status, 413)
        self.assertEqual(s.post(pc.idle_checkin(), path="/elsewhere")[0], 404)
        self.assertEqual(s.get("/nothing")[0], 404)


if __name__ == "__main__":
    pc.run_tests()
