# SPDX-License-Identifier: Apache-2.0
"""Software repository and the signed manifest format (see
ipc/soap/SOFTWARE-MANIFEST.md).  Parsing and verification have no side
effects so that the signing tool and the tests share them."""

import datetime
import hashlib
import os
import re
import threading

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MAGIC = "callhome-manifest-v1"
KEYS = ("package", "version", "size", "sha256", "model", "expires")
MAX_MANIFEST_BYTES = 1024
MAX_SIGNATURE_BYTES = 80   # DER ECDSA P-256 signature is at most 72 bytes

VALUE_RE = {
    "package": r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
    "version": r"(0|[1-9][0-9]{0,5})(\.(0|[1-9][0-9]{0,5})){0,3}",
    "size": r"0|[1-9][0-9]{0,15}",
    "sha256": r"[0-9a-f]{64}",
    "model": r"[A-Za-z0-9._+/-]{1,64}",
    "expires": r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z",
}


class ManifestError(ValueError):
    pass


def format_manifest(fields) -> bytes:
    lines = [MAGIC] + ["%s=%s" % (k, fields[k]) for k in KEYS]
    data = ("\n".join(lines) + "\n").encode("ascii")
    parse_manifest(data)   # never emit what we would not accept
    return data


def parse_manifest(data: bytes) -> dict:
    """Strict parse: magic line, then exactly KEYS in order, ASCII, LF only."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError("manifest larger than %d bytes" % MAX_MANIFEST_BYTES)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ManifestError("manifest is not ASCII") from None
    if "\r" in text or not text.endswith("\n"):
        raise ManifestError("manifest lines must end in LF, no CR")
    lines = text[:-1].split("\n")
    if lines[0] != MAGIC:
        raise ManifestError("manifest does not start with %s" % MAGIC)
    if len(lines) != 1 + len(KEYS):
        raise ManifestError("manifest must have exactly %d lines" % (1 + len(KEYS)))
    out = {}
    for key, line in zip(KEYS, lines[1:]):
        if not line.startswith(key + "="):
            raise ManifestError("expected key %r" % key)
        value = line[len(key) + 1:]
        if not re.fullmatch(VALUE_RE[key], value):
            raise ManifestError("bad value for %r" % key)
        out[key] = value
    out["size"] = int(out["size"])
    try:
        datetime.datetime.strptime(out["expires"], "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise ManifestError("bad expiry time") from None
    return out


def version_tuple(v: str):
    return tuple(int(x) for x in v.split("."))


def sign_manifest(data: bytes, key) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _has_eku(cert, oid):
    try:
        return oid in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False


def check_code_signing_cert(cert, anchor, now=None):
    """Raise ManifestError unless `cert` may sign software under `anchor`.

    anchor is either the signer certificate itself (pinned) or the CA that
    issued it (one level; the test PKI has no intermediates)."""
    now = now or datetime.datetime.utcnow()
    if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey) or \
            cert.public_key().curve.name != "secp256r1":
        raise ManifestError("signer key is not ECDSA P-256")
    if not _has_eku(cert, x509.oid.ExtendedKeyUsageOID.CODE_SIGNING):
        raise ManifestError("signer certificate lacks extendedKeyUsage codeSigning")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.digital_signature:
            raise ManifestError("signer certificate lacks keyUsage digitalSignature")
    except x509.ExtensionNotFound:
        pass
    if not cert.not_valid_before <= now <= cert.not_valid_after:
        raise ManifestError("signer certificate is not valid now")
    if anchor is None:
        return
    if cert.public_bytes(serialization.Encoding.DER) == anchor.public_bytes(serialization.Encoding.DER):
        return
    if cert.issuer != anchor.subject:
        raise ManifestError("signer certificate not issued by the code-signing anchor")
    if not anchor.not_valid_before <= now <= anchor.not_valid_after:
        raise ManifestError("code-signing anchor is not valid now")
    try:
        anchor.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                   ec.ECDSA(cert.signature_hash_algorithm))
    except (InvalidSignature, TypeError, AttributeError):
        raise ManifestError("signer certificate signature does not verify under the anchor") from None


def verify_manifest(data: bytes, signature: bytes, cert, anchor=None, now=None) -> dict:
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise ManifestError("signature too large")
    check_code_signing_cert(cert, anchor, now)
    try:
        cert.public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ManifestError("manifest signature does not verify") from None
    m = parse_manifest(data)
    now = now or datetime.datetime.utcnow()
    if datetime.datetime.strptime(m["expires"], "%Y-%m-%dT%H:%M:%SZ") < now:
        raise ManifestError("manifest expired")
    return m


# Digests of package files already checked, by file identity and change
# time, so that serving a large package in ranges does not hash it again for
# every range; a rewritten file has a new identity and is hashed afresh.
_digest_cache = {}
_digest_lock = threading.Lock()
_DIGEST_CACHE_MAX = 64


def _digest_of_open_file(f):
    st = os.fstat(f.fileno())
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _digest_lock:
        hit = _digest_cache.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    offset = 0
    while True:
        chunk = os.pread(f.fileno(), 1 << 16, offset)
        if not chunk:
            break
        h.update(chunk)
        offset += len(chunk)
    digest = h.hexdigest()
    with _digest_lock:
        if len(_digest_cache) >= _DIGEST_CACHE_MAX:
            _digest_cache.clear()
        _digest_cache[key] = digest
    return digest


class Package:
    """A hosted package whose size and SHA-256 match its manifest.

    The package file stays open from the check to the last read (close()),
    so what is served is the file that was checked."""

    def __init__(self, repo, package_id):
        base = os.path.join(repo, package_id)
        self.id = package_id
        self.path = base + ".pkg"
        self._f = None
        with open(base + ".manifest", "rb") as f:
            self.manifest_bytes = f.read(MAX_MANIFEST_BYTES + 1)
        with open(base + ".manifest.sig", "rb") as f:
            self.signature = f.read(MAX_SIGNATURE_BYTES + 1)
        with open(base + ".signer.pem", "rb") as f:
            self.signer_der = x509.load_pem_x509_certificate(f.read()).public_bytes(
                serialization.Encoding.DER)
        self.manifest = parse_manifest(self.manifest_bytes)
        if self.manifest["package"] != package_id:
            raise ManifestError("manifest names package %r" % self.manifest["package"])
        f = open(self.path, "rb")
        try:
            self.size = os.fstat(f.fileno()).st_size
            if self.size != self.manifest["size"]:
                raise ManifestError("package size differs from manifest")
            if _digest_of_open_file(f) != self.manifest["sha256"]:
                raise ManifestError("package SHA-256 differs from manifest")
        except BaseException:
            f.close()
            raise
        self._f = f

    def read(self, offset, length):
        return os.pread(self._f.fileno(), length, offset)

    def close(self):
        if self._f:
            self._f.close()
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Repository:
    def __init__(self, path):
        self.path = path

    def get(self, package_id):
        """The package (to be closed), or None when unknown; ManifestError
        when broken: unparsable manifest, or size or SHA-256 not the manifest's."""
        if not self.path or not re.fullmatch(VALUE_RE["package"], package_id or ""):
            return None
        if not os.path.exists(os.path.join(self.path, package_id + ".manifest")):
            return None
        return Package(self.path, package_id)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()
