# SPDX-License-Identifier: Apache-2.0
"""C2SP signed notes, checkpoints and Ed25519 cosignatures (no I/O).

signed-note:        text "\\n" "\\n" ("— " name " " base64(keyid4 || sig) "\\n")+
                    Ed25519 key id = SHA-256(name || "\\n" || 0x01 || pub)[:4]
verifier key (vkey): name "+" hex(keyid4) "+" base64(0x01 || pub)
tlog-checkpoint:    origin "\\n" size "\\n" base64(root) "\\n" [extension lines]
tlog-cosignature/v1: key id = SHA-256(name || "\\n" || 0x04 || pub)[:4],
                    signed message "cosignature/v1\\ntime T\\n" || checkpoint text,
                    signature bytes keyid4 || uint64be(T) || ed25519sig
"""

import base64
import binascii
import hashlib
import re
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey, Ed25519PublicKey)

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
MAX_NOTE_BYTES = 2048
MAX_SIGNATURES = 16
EM_DASH = "\u2014"

_NAME_RE = re.compile(r"^[^\s+]{1,128}$")


class NoteError(ValueError):
    pass


def key_id(name: str, sigtype: int, pub: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sigtype]) + pub).digest()[:4]


def _b64decode(s: str) -> bytes:
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise NoteError(f"bad base64: {e}") from None


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Verifier:
    """An Ed25519 note verifier (name, key id, public key)."""

    def __init__(self, name: str, pub: bytes):
        if not _NAME_RE.match(name):
            raise NoteError("bad key name")
        if len(pub) != 32:
            raise NoteError("Ed25519 public key must be 32 bytes")
        self.name = name
        self.pub = pub
        self.key_id = key_id(name, SIG_ED25519, pub)
        self._key = Ed25519PublicKey.from_public_bytes(pub)

    @classmethod
    def from_vkey(cls, vkey: str) -> "Verifier":
        vkey = vkey.strip()
        parts = vkey.split("+", 2)   # names hold no "+"; base64 may
        if len(parts) != 3:
            raise NoteError("vkey must be name+keyid+key")
        name, kid_hex, key_b64 = parts
        raw = _b64decode(key_b64)
        if len(raw) != 33 or raw[0] != SIG_ED25519:
            raise NoteError("vkey is not an Ed25519 note key")
        v = cls(name, raw[1:])
        if not re.fullmatch(r"[0-9a-f]{8}", kid_hex) or bytes.fromhex(kid_hex) != v.key_id:
            raise NoteError("vkey key id does not match its key")
        return v

    def vkey(self) -> str:
        return "%s+%s+%s" % (self.name, self.key_id.hex(),
                             base64.b64encode(bytes([SIG_ED25519]) + self.pub).decode())

    def verify(self, text: bytes, sig: bytes) -> bool:
        try:
            self._key.verify(sig, text)
            return True
        except InvalidSignature:
            return False


class Note:
    def __init__(self, text: bytes, signatures):
        self.text = text                # includes the final newline
        self.signatures = signatures    # [(name, key_id4, sig_bytes)]


def parse_note(data: bytes) -> Note:
    if len(data) > MAX_NOTE_BYTES:
        raise NoteError("note too large")
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("note is not UTF-8") from None
    if any(ord(ch) < 0x20 and ch != "\n" for ch in s):
        raise NoteError("note contains control characters")
    if not s.endswith("\n"):
        raise NoteError("note does not end in a newline")
    split = s.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no signature block")
    text = s[:split + 1]
    sig_lines = s[split + 2:].split("\n")[:-1]
    if not sig_lines:
        raise NoteError("note has no signatures")
    if len(sig_lines) > MAX_SIGNATURES:
        raise NoteError("note has too many signatures")
    sigs = []
    for line in sig_lines:
        if not line.startswith(EM_DASH + " "):
            raise NoteError("malformed signature line")
        rest = line[2:].split(" ")
        if len(rest) != 2 or not _NAME_RE.match(rest[0]):
            raise NoteError("malformed signature line")
        raw = _b64decode(rest[1])
        if len(raw) < 5:
            raise NoteError("signature too short")
        sigs.append((rest[0], raw[:4], raw[4:]))
    return Note(text.encode("utf-8"), sigs)


def verify_note(note: Note, verifier: Verifier) -> bool:
    """True iff a signature of `verifier` (name and key id match) verifies.

    A matching signature that fails makes the whole note fail (C2SP SHOULD).
    """
    found = False
    for name, kid, sig in note.signatures:
        if name == verifier.name and kid == verifier.key_id:
            if not verifier.verify(note.text, sig):
                return False
            found = True
    return found


class Checkpoint:
    def __init__(self, origin: str, size: int, root: bytes, text: bytes):
        self.origin = origin
        self.size = size
        self.root = root
        self.text = text


def parse_checkpoint_text(text: bytes) -> Checkpoint:
    lines = text.decode("utf-8").split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("checkpoint needs origin, size and root lines")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not origin:
        raise NoteError("empty checkpoint origin")
    if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size_s) or int(size_s) >= 1 << 63:
        raise NoteError("bad checkpoint tree size")
    root = _b64decode(root_s)
    if len(root) != 32:
        raise NoteError("checkpoint root hash is not 32 bytes")
    if any(line == "" for line in lines[3:-1]):
        raise NoteError("empty extension line in checkpoint")
    return Checkpoint(origin, int(size_s), root, text)


def sign_note(text: bytes, name: str, key: Ed25519PrivateKey) -> bytes:
    """Signed note from text (used by tests and tools; the server never signs notes)."""
    pub = _raw_public(key.public_key())
    sig = key.sign(text)
    line = "%s %s %s\n" % (EM_DASH, name,
                           base64.b64encode(key_id(name, SIG_ED25519, pub) + sig).decode())
    return text + b"\n" + line.encode("utf-8")


def verifier_for(name: str, key: Ed25519PrivateKey) -> Verifier:
    return Verifier(name, _raw_public(key.public_key()))


class Cosigner:
    """The server's witness: C2SP tlog-cosignature/v1 over checkpoints."""

    def __init__(self, name: str, key: Ed25519PrivateKey):
        if not _NAME_RE.match(name):
            raise NoteError("bad witness name")
        self.name = name
        self._key = key
        self.pub = _raw_public(key.public_key())
        self.key_id = key_id(name, SIG_COSIGNATURE_V1, self.pub)

    def vkey(self) -> str:
        return "%s+%s+%s" % (self.name, self.key_id.hex(),
                             base64.b64encode(bytes([SIG_COSIGNATURE_V1]) + self.pub).decode())

    def cosign(self, checkpoint_text: bytes, timestamp: int) -> str:
        msg = b"cosignature/v1\ntime %d\n" % timestamp + checkpoint_text
        sig = self._key.sign(msg)
        blob = self.key_id + struct.pack(">Q", timestamp) + sig
        return "%s %s %s" % (EM_DASH, self.name, base64.b64encode(blob).decode())


def verify_cosignature(line: str, checkpoint_text: bytes, name: str, pub: bytes):
    """Return the timestamp if `line` is a valid cosignature/v1 by (name, pub), else None."""
    if not line.startswith(EM_DASH + " "):
        return None
    parts = line[2:].rstrip("\n").split(" ")
    if len(parts) != 2 or parts[0] != name:
        return None
    try:
        raw = _b64decode(parts[1])
    except NoteError:
        return None
    if len(raw) != 4 + 8 + 64 or raw[:4] != key_id(name, SIG_COSIGNATURE_V1, pub):
        return None
    (ts,) = struct.unpack(">Q", raw[4:12])
    msg = b"cosignature/v1\ntime %d\n" % ts + checkpoint_text
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(raw[12:], msg)
    except InvalidSignature:
        return None
    return ts
