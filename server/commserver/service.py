# SPDX-License-Identifier: Apache-2.0
"""The callhome SOAP service on spyne.

spyne parses requests and builds responses; the contract in ipc/soap is the
authority: every request has already been validated against it by the HTTP
layer (the result arrives in the WSGI environ) and every response is
rebuilt in the compact wire form and checked against it again.
"""

import base64
import hashlib
import json
import logging

from lxml import etree
from spyne import Application, ComplexModel, Integer, ServiceBase, Unicode, rpc
from spyne.model.fault import Fault
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from .contract import TNS, compact_envelope
from .state import StateError
from .software import ManifestError
from .witness import WitnessFault

log = logging.getLogger("callhome.commserver")

MAX_INSTRUCTIONS = 16
MAX_CHUNK = 262144


# ---------------------------------------------------------------- faults

class CallhomeFault(Fault):
    """A SOAP Fault whose detail is one callhome fault-detail element."""

    def __init__(self, code, kind, faultstring, **fields):
        detail = etree.Element("{%s}%s" % (TNS, kind))
        for k, v in fields.items():
            etree.SubElement(detail, "{%s}%s" % (TNS, k)).text = str(v)
        super().__init__(faultcode=code, faultstring=faultstring, detail=detail)
        self.kind = kind


def bad_request(reason):
    reason = str(reason)[:256]
    return CallhomeFault("Client", "BadRequest", reason, Reason=reason)


def not_authorized(reason):
    reason = str(reason)[:256]
    return CallhomeFault("Client", "NotAuthorized", reason, Reason=reason)


def retry_after(seconds, reason="try again later"):
    return CallhomeFault("Server", "RetryAfter", reason, Seconds=int(seconds))


def log_fork(reason, acked_size, acked_root):
    reason = str(reason)[:256]
    return CallhomeFault("Client", "LogFork", reason, AckedSize=acked_size,
                         AckedRoot=base64.b64encode(acked_root).decode(), Reason=reason)


# ---------------------------------------------------------------- types
# Loose spyne types: the XSD does the exact validation; field order follows it.

def _model(name, fields):
    return type(name, (ComplexModel,), {"__namespace__": TNS, "_type_info": fields})


Empty = _model("Empty", [])
SetCheckInIntervalT = _model("SetCheckInInterval", [("Seconds", Integer)])
SoftwareAvailableT = _model("SoftwareAvailable", [
    ("PackageId", Unicode), ("Version", Unicode), ("Size", Integer), ("Sha256", Unicode)])
DiagnosticsRequestedT = _model("DiagnosticsRequested", [
    ("Reason", Unicode), ("Item", Unicode(max_occurs=64))])
InstructionT = _model("Instruction", [
    ("Id", Integer),
    ("SendMeterReads", Empty), ("SendSupplies", Empty),
    ("SetCheckInInterval", SetCheckInIntervalT),
    ("SoftwareAvailable", SoftwareAvailableT),
    ("DiagnosticsRequested", DiagnosticsRequestedT)])
WitnessRequestT = _model("WitnessRequest", [
    ("Checkpoint", Unicode), ("LogKey", Unicode), ("ProofFrom", Integer),
    ("ProofHash", Unicode(max_occurs=64))])
WitnessReplyT = _model("WitnessReply", [
    ("AckedSize", Integer), ("AckedRoot", Unicode), ("Cosignature", Unicode)])
MeterT = _model("Meter", [("Name", Unicode), ("Value", Integer), ("Unit", Unicode),
                          ("Anomaly", Unicode)])
SupplyT = _model("Supply", [("Name", Unicode), ("Type", Unicode), ("Level", Integer),
                            ("MaxCapacity", Integer), ("Unit", Unicode)])
EntryT = _model("DiagnosticEntry", [("Name", Unicode), ("Value", Unicode)])


def instruction_to_model(item):
    t = item["type"]
    ins = InstructionT(Id=item["id"])
    if t == "SendMeterReads":
        ins.SendMeterReads = Empty()
    elif t == "SendSupplies":
        ins.SendSupplies = Empty()
    elif t == "SetCheckInInterval":
        ins.SetCheckInInterval = SetCheckInIntervalT(Seconds=item["seconds"])
    elif t == "SoftwareAvailable":
        ins.SoftwareAvailable = SoftwareAvailableT(
            PackageId=item["package"], Version=item["version"], Size=item["size"],
            Sha256=item["sha256"])
    elif t == "DiagnosticsRequested":
        ins.DiagnosticsRequested = DiagnosticsRequestedT(
            Reason=item.get("reason", ""), Item=item.get("items") or None)
    return ins


# ---------------------------------------------------------------- helpers

REPEATED = {"Meter", "Supply", "Entry", "ProofHash", "Item", "Instruction"}


def xml_to_obj(el):
    """Plain JSON-able view of a request element (for the admin API)."""
    children = [c for c in el if isinstance(c.tag, str)]
    if not children:
        return el.text or ""
    out = {}
    for c in children:
        name = etree.QName(c).localname
        v = xml_to_obj(c)
        if name in REPEATED:
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out


def content_digest(el):
    """Digest of a request's content, insensitive to prefixes and layout, so
    a retransmission matches however it was serialised."""
    return hashlib.sha256(json.dumps(xml_to_obj(el), sort_keys=True).encode()).hexdigest()


def begin(ctx, op, device_id):
    """Common checks of every operation; returns the server context."""
    env = ctx.transport.req_env
    srv = ctx.app.callhome
    err = env.get("callhome.contract_error")
    if err:
        raise bad_request(err)
    cert_id = env.get("callhome.device")
    if not cert_id:
        raise not_authorized("no client certificate identity")
    if device_id != cert_id:
        raise not_authorized("DeviceId %s does not match the client certificate (%s)"
                             % (device_id, cert_id))
    env["callhome.device_ok"] = True
    f = srv.state.take_fault(device_id, op)
    if f:
        kind = f.get("fault")
        if kind == "RetryAfter":
            raise retry_after(f.get("seconds", 60), f.get("reason", "scripted RetryAfter"))
        if kind == "NotAuthorized":
            raise not_authorized(f.get("reason", "scripted NotAuthorized"))
        raise bad_request(f.get("reason", "scripted BadRequest"))
    return srv


def submit(ctx, op, device_id, txid, check=None):
    """begin(), then `check(srv)` (operation-specific refusals), then record."""
    srv = begin(ctx, op, device_id)
    if check:
        check(srv)
    el = ctx.in_body_doc
    try:
        status = srv.state.record_submission(device_id, op, txid, content_digest(el), xml_to_obj(el))
    except StateError as e:
        raise bad_request(e) from None
    return srv, status


# ---------------------------------------------------------------- service

class CallHomeService(ServiceBase):

    @rpc(Unicode, Unicode, Integer, WitnessRequestT,
         _returns=(InstructionT.customize(max_occurs=MAX_INSTRUCTIONS), WitnessReplyT),
         _out_variable_names=("Instruction", "Witness"))
    def CheckIn(ctx, DeviceId, AgentVersion, LastInstruction, Witness):
        srv = begin(ctx, "CheckIn", DeviceId)
        witness_reply = None
        if Witness is not None:
            try:
                proof = [base64.b64decode(h) for h in (Witness.ProofHash or [])]
                size, root, cosig = srv.witness.check_in(
                    DeviceId, Witness.Checkpoint or "", Witness.LogKey, Witness.ProofFrom or 0, proof)
            except WitnessFault as e:
                if e.kind == "LogFork":
                    raise log_fork(e.reason, e.acked_size, e.acked_root) from None
                if e.kind == "NotAuthorized":
                    raise not_authorized(e.reason) from None
                raise bad_request(e.reason) from None
            witness_reply = WitnessReplyT(
                AckedSize=size, AckedRoot=base64.b64encode(root).decode() if root else None,
                Cosignature=cosig)
        pending = srv.state.pending(DeviceId, LastInstruction or 0, MAX_INSTRUCTIONS)
        srv.state.count_call(DeviceId, "CheckIn")
        return [instruction_to_model(i) for i in pending] or None, witness_reply

    @rpc(Unicode, Unicode, Unicode, MeterT.customize(max_occurs=256),
         _returns=(Unicode, Unicode), _out_variable_names=("TransactionId", "Status"))
    def SubmitMeterReads(ctx, DeviceId, TransactionId, Time, Meter):
        _, status = submit(ctx, "SubmitMeterReads", DeviceId, TransactionId)
        return TransactionId, status

    @rpc(Unicode, Unicode, Unicode, SupplyT.customize(max_occurs=64),
         _returns=(Unicode, Unicode), _out_variable_names=("TransactionId", "Status"))
    def SubmitSupplies(ctx, DeviceId, TransactionId, Time, Supply):
        _, status = submit(ctx, "SubmitSupplies", DeviceId, TransactionId)
        return TransactionId, status

    @rpc(Unicode, Unicode, Integer, Unicode, EntryT.customize(max_occurs=256),
         _returns=(Unicode, Unicode), _out_variable_names=("TransactionId", "Status"))
    def SubmitDiagnostics(ctx, DeviceId, TransactionId, InstructionId, Time, Entry):
        def asked_for(srv):
            if srv.state.issued_type(DeviceId, InstructionId) != "DiagnosticsRequested":
                raise bad_request("instruction %s was not a DiagnosticsRequested for this device"
                                  % InstructionId)
        _, status = submit(ctx, "SubmitDiagnostics", DeviceId, TransactionId, asked_for)
        return TransactionId, status

    @rpc(Unicode, Unicode, Integer, Unicode, Unicode,
         _returns=(Unicode, Unicode), _out_variable_names=("TransactionId", "Status"))
    def ReportResult(ctx, DeviceId, TransactionId, InstructionId, Outcome, Detail):
        def was_issued(srv):
            if srv.state.issued_type(DeviceId, InstructionId) is None:
                raise bad_request("instruction %s was never issued to this device" % InstructionId)
        _, status = submit(ctx, "ReportResult", DeviceId, TransactionId, was_issued)
        return TransactionId, status

    @rpc(Unicode, Unicode, Integer, Integer,
         _returns=(Unicode, Integer, Integer, Unicode, Unicode, Unicode, Unicode),
         _out_variable_names=("PackageId", "TotalSize", "Offset", "Data", "Manifest",
                              "ManifestSignature", "SignerCertificate"))
    def GetSoftware(ctx, DeviceId, PackageId, Offset, Length):
        srv = begin(ctx, "GetSoftware", DeviceId)
        try:
            pkg = srv.repository.get(PackageId)
        except (OSError, ManifestError) as e:
            log.error("package %s is broken: %s", PackageId, e)
            raise retry_after(300, "package temporarily unavailable") from None
        if pkg is None:
            raise bad_request("no such package: %s" % PackageId)
        with pkg:
            if Offset > pkg.size:
                raise bad_request("offset %d beyond the package size %d" % (Offset, pkg.size))
            data = pkg.read(Offset, min(Length, MAX_CHUNK)) if Length else b""
        srv.state.count_call(DeviceId, "GetSoftware")
        b64 = lambda b: base64.b64encode(b).decode()
        if Offset == 0:
            return (PackageId, pkg.size, Offset, b64(data), b64(pkg.manifest_bytes),
                    b64(pkg.signature), b64(pkg.signer_der))
        return PackageId, pkg.size, Offset, b64(data), None, None, None


# ---------------------------------------------------------------- protocol glue

class CompactSoap11(Soap11):
    """spyne's SOAP 1.1, emitting callhome's compact wire form."""
    soap_env = "s"

    def serialize(self, ctx, message):
        super().serialize(ctx, message)
        ctx.out_document = compact_envelope(ctx.out_document)


class CallhomeWsgi(WsgiApplication):
    """Every fault carries a typed detail: map spyne's own errors to BadRequest
    (client errors) or RetryAfter (server errors)."""

    def handle_error(self, p_ctx, others, error, start_response):
        if not isinstance(error, CallhomeFault):
            code = getattr(error, "faultcode", "Server") or "Server"
            text = getattr(error, "faultstring", None) or str(error) or "error"
            if code.startswith("Client") or code.startswith("Soap"):
                error = bad_request(text)
            else:
                log.error("internal error: %s", text)
                error = retry_after(60, "internal server error")
            p_ctx.out_error = error
            p_ctx.transport.resp_code = None
        return super().handle_error(p_ctx, others, error, start_response)


def make_wsgi_app(server_context):
    app = Application([CallHomeService], tns=TNS, name="CallHome",
                      in_protocol=CompactSoap11(validator=None),
                      out_protocol=CompactSoap11(xml_declaration=False, cleanup_namespaces=False))
    app.callhome = server_context
    return CallhomeWsgi(app)
