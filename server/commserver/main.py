# SPDX-License-Identifier: Apache-2.0
"""callhome-commserver command line."""

import argparse
import logging
import os
import signal
import sys
import threading

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import admin, contract, httpd, note, service, software, state, witness


class ServerContext:
    """What the SOAP service and the admin interface share."""

    def __init__(self, state, repository, witness, cosigner):
        self.state = state
        self.repository = repository
        self.witness = witness
        self.cosigner = cosigner


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="callhome-commserver",
        description="Reference Communication Server for callhome: SOAP 1.1 over mutual TLS, "
                    "serving exactly the contract in ipc/soap.")
    p.add_argument("--listen", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default 0)")
    p.add_argument("--port-file", help="write the chosen SOAP port here once listening")
    p.add_argument("--cert", required=True, help="server certificate (PEM)")
    p.add_argument("--key", required=True, help="server private key (PEM)")
    p.add_argument("--client-ca", required=True, help="CA that issues device certificates (PEM)")
    p.add_argument("--state-dir", required=True,
                   help="directory for state.json, messages.jsonl and a generated witness key")
    p.add_argument("--message-log", help="JSON-lines message log (default STATE_DIR/messages.jsonl)")
    p.add_argument("--software-dir", help="software repository (see SOFTWARE-MANIFEST.md)")
    p.add_argument("--witness-key", help="Ed25519 private key (PEM) to cosign checkpoints with "
                                         "(default: STATE_DIR/witness.key, created if missing)")
    p.add_argument("--witness-name", default="commserver.test/witness", help="cosigner key name")
    p.add_argument("--log-keys", help="directory of device audit log keys, DEVICE.vkey each")
    p.add_argument("--witness-tofu", action="store_true",
                   help="trust a device's LogKey on first use when none is configured")
    p.add_argument("--admin-port", type=int, default=0,
                   help="loopback control port; 0 picks a free one (default 0)")
    p.add_argument("--admin-listen", default="127.0.0.1", help="loopback address for the control port")
    p.add_argument("--admin-port-file", help="write the chosen control port here")
    p.add_argument("--no-admin", action="store_true", help="no control interface")
    p.add_argument("--contract-dir", help="directory holding callhome.wsdl and the XSDs "
                                          "(default: ipc/soap of this source tree)")
    p.add_argument("--path", default="/callhome", help="SOAP endpoint path (default /callhome)")
    p.add_argument("--max-request-bytes", type=int, default=1 << 20,
                   help="largest accepted request body (default 1 MiB)")
    p.add_argument("--io-timeout", type=float, default=30.0,
                   help="seconds a connection may stay idle (default 30)")
    p.add_argument("-v", "--verbose", action="store_true", help="log spyne's diagnostics to stderr")
    return p.parse_args(argv)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_witness_key(path):
    if os.path.exists(path):
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SystemExit("callhome-commserver: %s is not an Ed25519 key" % path)
        return key
    key = Ed25519PrivateKey.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return key


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.CRITICAL,
                        format="callhome-commserver: %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("spyne").setLevel(logging.CRITICAL)

    os.makedirs(args.state_dir, exist_ok=True)
    try:
        the_contract = contract.Contract(args.contract_dir)
        tls = httpd.make_tls_context(args.cert, args.key, args.client_ca)
        cosigner = note.Cosigner(args.witness_name, load_witness_key(
            args.witness_key or os.path.join(args.state_dir, "witness.key")))
    except (OSError, ValueError) as e:
        print("callhome-commserver: %s" % e, file=sys.stderr)
        return 2

    st = state.State(os.path.join(args.state_dir, "state.json"))
    wit = witness.Witness(st, cosigner, args.log_keys, args.witness_tofu)
    ctx = ServerContext(st, software.Repository(args.software_dir), wit, cosigner)
    msglog = httpd.MessageLog(args.message_log or os.path.join(args.state_dir, "messages.jsonl"))

    try:
        soap = httpd.ThreadingTLSServer(
            (args.listen, args.port), tls, contract=the_contract, msglog=msglog,
            wsgi_app=service.make_wsgi_app(ctx), soap_path=args.path,
            max_request=args.max_request_bytes, io_timeout=args.io_timeout)
        adm = None if args.no_admin else admin.start_admin(args.admin_listen, args.admin_port, ctx)
    except (OSError, ValueError) as e:
        print("callhome-commserver: cannot listen: %s" % e, file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=soap.serve_forever, name="soap", daemon=True)
    t.start()

    port = soap.server_address[1]
    if args.port_file:
        write_atomic(args.port_file, "%d\n" % port)
    if adm and args.admin_port_file:
        write_atomic(args.admin_port_file, "%d\n" % adm.server_address[1])
    print("LISTENING %d" % port)
    if adm:
        print("ADMIN %d" % adm.server_address[1])
    print("WITNESS %s" % cosigner.vkey(), flush=True)

    while not stop.wait(3600):
        pass

    soap.shutdown()
    soap.server_close()
    if adm:
        adm.shutdown()
        adm.server_close()
    msglog.close()
    return 0
