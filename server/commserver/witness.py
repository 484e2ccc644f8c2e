# SPDX-License-Identifier: Apache-2.0
"""The server as a witness of each device's audit log.

Per device it remembers the last acknowledged tree head (size, root) and the
log's verifier key.  A new checkpoint is accepted and cosigned only if it is
signed by that key and provably extends the acknowledged head (RFC 9162
consistency proof from the acknowledged size).  See PROTOCOL.md, "Witness".
"""

import base64
import os
import re
import time

from . import merkle, note


class WitnessFault(Exception):
    """kind is one of NotAuthorized, BadRequest, LogFork."""

    def __init__(self, kind, reason, acked_size=None, acked_root=None):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.acked_size = acked_size
        self.acked_root = acked_root


class Witness:
    def __init__(self, state, cosigner, log_keys_dir=None, tofu=False, clock=time.time):
        self.state = state
        self.cosigner = cosigner
        self.log_keys_dir = log_keys_dir
        self.tofu = tofu
        self.clock = clock

    def configured_key(self, device_id):
        """The vkey configured on disk (DIR/<device>.vkey), pinned by the
        admin interface, or learnt on first use, in that order."""
        if self.log_keys_dir and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", device_id):
            path = os.path.join(self.log_keys_dir, device_id + ".vkey")
            if os.path.exists(path):
                with open(path, encoding="ascii") as f:
                    return f.read(512).strip()
        return self.state.witness(device_id).get("log_key")

    def pin_key(self, device_id, vkey):
        note.Verifier.from_vkey(vkey)  # raises NoteError when malformed
        self.state.set_witness(device_id, log_key=vkey.strip())

    def check_in(self, device_id, checkpoint, log_key, proof_from, proof_hashes):
        """Returns (acked_size, acked_root, cosignature or None) or raises WitnessFault."""
        with self.state.lock:
            return self._check_in(device_id, checkpoint, log_key, proof_from, proof_hashes)

    def _check_in(self, device_id, checkpoint, log_key, proof_from, proof_hashes):
        try:
            parsed = note.parse_note(checkpoint.encode("utf-8"))
            cp = note.parse_checkpoint_text(parsed.text)
        except (note.NoteError, UnicodeError) as e:
            raise WitnessFault("BadRequest", "bad checkpoint: %s" % e) from None

        vkey = self.configured_key(device_id)
        learnt = None
        if vkey is None:
            if log_key and self.tofu:
                vkey = learnt = log_key
            else:
                raise WitnessFault("NotAuthorized", "no audit log key known for this device")
        elif log_key and log_key.strip() != vkey:
            raise WitnessFault("NotAuthorized", "LogKey differs from the key on record for this device")
        try:
            verifier = note.Verifier.from_vkey(vkey)
        except note.NoteError as e:
            raise WitnessFault("BadRequest", "bad log key: %s" % e) from None
        if not note.verify_note(parsed, verifier):
            raise WitnessFault("NotAuthorized", "checkpoint is not signed by the device's log key")

        w = self.state.witness(device_id)
        acked_size = w.get("size")
        acked_root = base64.b64decode(w["root"]) if w.get("root") else None

        if acked_size is None:
            ok = True                      # first checkpoint: nothing to be consistent with
        elif cp.size < acked_size:
            raise WitnessFault("LogFork", "checkpoint size %d is smaller than the acknowledged %d"
                               % (cp.size, acked_size), acked_size, acked_root)
        elif cp.size == acked_size:
            if cp.root != acked_root:
                raise WitnessFault("LogFork", "same size as the acknowledged checkpoint, different root",
                                   acked_size, acked_root)
            ok = True
        elif proof_from != acked_size:
            # Not a fork, just a proof from the wrong place (e.g. the device
            # missed our last reply): tell it where to prove from.
            return acked_size, acked_root, None
        else:
            ok = merkle.verify_consistency(acked_size, cp.size, acked_root, cp.root, proof_hashes)
            if not ok:
                raise WitnessFault("LogFork", "consistency proof from %d to %d does not verify"
                                   % (acked_size, cp.size), acked_size, acked_root)

        if learnt:
            self.state.set_witness(device_id, log_key=learnt.strip())
        self.state.set_witness(device_id, size=cp.size, root=base64.b64encode(cp.root).decode(),
                               checkpoint=checkpoint)
        cosig = self.cosigner.cosign(cp.text, int(self.clock()))
        return cp.size, cp.root, cosig
