# SPDX-License-Identifier: Apache-2.0
"""The contract files in ipc/soap, validation against them, and the compact
wire form of outgoing envelopes."""

import os
import threading

from lxml import etree

TNS = "urn:callhome:soap:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
FAULT_DETAILS = ("RetryAfter", "NotAuthorized", "BadRequest", "LogFork")


def default_contract_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "ipc", "soap"))


def hardened_parser():
    # No DTDs, no entities, no network, default libxml2 depth and size limits.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, collect_ids=False,
                           remove_pis=True)


class ContractError(ValueError):
    pass


class Contract:
    def __init__(self, directory=None):
        self.dir = directory or default_contract_dir()
        self.wsdl_path = os.path.join(self.dir, "callhome.wsdl")
        self.xsd_path = os.path.join(self.dir, "callhome.xsd")
        self.envelope_xsd_path = os.path.join(self.dir, "callhome-envelope.xsd")
        with open(self.wsdl_path, "rb") as f:
            self.wsdl_bytes = f.read()
        with open(self.xsd_path, "rb") as f:
            self.xsd_bytes = f.read()
        self._envelope_schema = etree.XMLSchema(etree.parse(self.envelope_xsd_path))
        self._lock = threading.Lock()

    def parse(self, data: bytes):
        """Parse a message with the hardened parser; reject DTDs."""
        try:
            doc = etree.fromstring(data, hardened_parser()).getroottree()
        except etree.XMLSyntaxError as e:
            raise ContractError("not well-formed XML: %s" % e) from None
        if doc.docinfo.doctype:
            raise ContractError("DOCTYPE is not allowed")
        return doc

    def validate_envelope(self, doc):
        """Raise ContractError unless `doc` is a SOAP 1.1 envelope whose body
        validates against callhome.xsd (requests, responses and faults)."""
        # One validator, serialised: its error log is per object.
        with self._lock:
            schema = self._envelope_schema
            if schema.validate(doc):
                return
            err = schema.error_log.last_error
            msg = ("message does not follow the contract: %s" % err.message) if err \
                else "message does not follow the contract"
        raise ContractError(msg)


def _copy_into(src, parent):
    el = etree.SubElement(parent, src.tag)
    el.text = src.text
    for child in src:
        if isinstance(child.tag, str):
            _copy_into(child, el)
    return el


def compact_envelope(doc):
    """Rebuild an envelope in callhome's wire form: prefix "s" for SOAP, the
    payload in the default namespace declared on the Body's child, no other
    namespace declarations, no whitespace, no empty faultactor."""
    root = doc.getroot() if hasattr(doc, "getroot") else doc
    env = etree.Element("{%s}Envelope" % SOAP_ENV, nsmap={"s": SOAP_ENV})
    body = etree.SubElement(env, "{%s}Body" % SOAP_ENV)
    src_body = root.find("{%s}Body" % SOAP_ENV)
    for child in src_body if src_body is not None else ():
        if not isinstance(child.tag, str):
            continue
        if child.tag == "{%s}Fault" % SOAP_ENV:
            fault = etree.SubElement(body, child.tag)
            for part in child:
                if part.tag == "faultcode":
                    code = (part.text or "Server").split(":")[-1]
                    etree.SubElement(fault, "faultcode").text = "s:" + code
                elif part.tag == "faultstring":
                    etree.SubElement(fault, "faultstring").text = part.text or ""
                elif part.tag == "faultactor" and part.text:
                    etree.SubElement(fault, "faultactor").text = part.text
                elif part.tag == "detail":
                    detail = etree.SubElement(fault, "detail")
                    for d in part:
                        if isinstance(d.tag, str):
                            el = etree.SubElement(detail, d.tag, nsmap={None: TNS})
                            el.text = d.text
                            for c in d:
                                if isinstance(c.tag, str):
                                    _copy_into(c, el)
        else:
            el = etree.SubElement(body, child.tag, nsmap={None: TNS})
            el.text = child.text
            for c in child:
                if isinstance(c.tag, str):
                    _copy_into(c, el)
    return env.getroottree()
