#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The log format checked by a second, independent implementation written here
from the format description (auditlog/log-format.h) and the RFCs: CRC-32C, the
chain hash, epoch key evolution and record MACs (from the key setup-keys
printed), Merkle roots and consistency proofs (RFC 9162) against the C code,
and the checkpoints' Ed25519 signatures (C2SP signed note)."""
import base64
import hashlib
import hmac
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auditlib import (TOOL, consistency_proof, crc32c, gen, leaf_hash, mth, parse_note, setup_keys,
                      verify_consistency)
from chtest import Harness, check, fail
import subprocess


check(crc32c(b"123456789") == 0xE3069283, "independent CRC-32C matches the standard check value")


def parse_segment(buf):
    assert buf[:8] == b"CHAUDSEG"
    version, hsize, first, epoch = struct.unpack_from("<IIQQ", buf, 8)
    prev = buf[32:64]
    n = struct.unpack_from("<I", buf, 64)[0]
    end = 72 + 32 * n
    if struct.unpack_from("<I", buf, end)[0] != crc32c(buf[:end]):
        fail("segment header CRC differs from the independent CRC-32C")
    frontier = [buf[72 + 32 * i:104 + 32 * i] for i in range(n)]
    recs = []
    off = hsize
    while off < len(buf):
        assert buf[off:off + 4] == b"CHR1"
        size, seq, rt, mono = struct.unpack_from("<IQQQ", buf, off + 4)
        ep = struct.unpack_from("<Q", buf, off + 48)[0]
        kind, direction, tl, xl, ml, pl = struct.unpack_from("<BBHHHI", buf, off + 56)
        body = off + 72
        rec = dict(seq=seq, epoch=ep, kind=kind, size=size, off=off,
                   type=buf[body:body + tl].decode(), txn=buf[body + tl:body + tl + xl].decode(),
                   payload=buf[body + tl + xl + ml:body + tl + xl + ml + pl],
                   hashed=buf[off:off + size - 72], hash=buf[off + size - 72:off + size - 40],
                   mac=buf[off + size - 40:off + size - 8],
                   crc=struct.unpack_from("<I", buf, off + size - 4)[0], crc_data=buf[off:off + size - 4])
        recs.append(rec)
        off += size
    return first, epoch, prev, frontier, recs


with Harness("audit-independent", bus=False) as h:
    d = os.path.join(h.tmp, "log")
    k0 = bytes.fromhex(setup_keys(d))
    total = gen(d, 300, 100, 40, 70, "16K")  # seals, checkpoints, several segments
    segs = sorted(f for f in os.listdir(d) if f.endswith(".seg"))
    check(len(segs) > 1, f"the generated log spans {len(segs)} segments")

    with open(os.path.join(d, "checkpoint.pub")) as f:
        vkey = f.read().strip()
    name, keyid, b64 = vkey.split("+", 2)  # base64 may itself hold "+"
    pub = base64.b64decode(b64)[1:]
    check(hashlib.sha256(name.encode() + b"\n" + b"\x01" + pub).digest()[:4].hex() == keyid,
          "the verifier key's id is SHA-256(name, newline, 0x01, key)[:4] (C2SP)")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    pubkey = Ed25519PublicKey.from_public_bytes(pub)

    prev = b"\x00" * 32
    key, epoch = k0, 0
    leaves = []
    n_checked = n_ckpt = n_seal = 0
    for i, s in enumerate(segs):
        with open(os.path.join(d, s), "rb") as f:
            first, sepoch, sprev, frontier, recs = parse_segment(f.read())
        if first != len(leaves) + 1 or sprev != prev or sepoch != epoch:
            fail(f"segment {s} does not continue the chain")
        for r in recs:
            if crc32c(r["crc_data"]) != r["crc"]:
                fail(f"seq {r['seq']}: CRC differs from the independent CRC-32C")
            hh = hashlib.sha256(prev + r["hashed"]).digest()
            if hh != r["hash"]:
                fail(f"seq {r['seq']}: chain hash differs from SHA-256(prev || record)")
            if r["epoch"] != epoch:
                fail(f"seq {r['seq']}: epoch {r['epoch']}, expected {epoch}")
            mac_key = hmac.new(key, b"callhome-audit mac", "sha256").digest()
            if hmac.new(mac_key, b"CHMAC1" + hh, "sha256").digest() != r["mac"]:
                fail(f"seq {r['seq']}: MAC differs from HMAC(M_e, 'CHMAC1' || h)")
            if r["kind"] == 4:  # checkpoint
                origin, size, root, body, sigs = parse_note(r["payload"].decode())
                if size != len(leaves) or root != mth(leaves):
                    fail(f"seq {r['seq']}: checkpoint root differs from the independent Merkle tree hash")
                sigline = sigs.strip().split(" ")
                blob = base64.b64decode(sigline[2])
                if blob[:4].hex() != keyid:
                    fail("checkpoint signature has the wrong key id")
                pubkey.verify(blob[4:], body.encode())  # raises if invalid
                n_ckpt += 1
            leaves.append(hh)
            prev = hh
            n_checked += 1
            if r["kind"] == 3:  # seal: the key moves on
                key = hmac.new(key, b"callhome-audit evolve", "sha256").digest()
                epoch += 1
                n_seal += 1
    check(n_checked == total, f"all {total} records re-verified independently (CRC, chain, MAC)")
    check(n_seal >= 7 and epoch == n_seal, f"{n_seal} epochs: keys evolved as K_e+1 = HMAC(K_e, ...) from the printed key")
    check(n_ckpt >= 4, f"{n_ckpt} checkpoints: roots and Ed25519 signatures verified independently")
    # The device's key file holds K_e for the current epoch only.
    with open(os.path.join(d, "seal.key"), "rb") as f:
        kf = f.read()
    check(struct.unpack_from("<Q", kf, 8)[0] == epoch and kf[16:48] == key,
          "the key file holds exactly the current epoch's key")
    check(k0 not in kf, "the first key is no longer on the device")

    # Merkle: the C tree against the Python one, for every size and pair up to 40 leaves.
    data = [hashlib.sha256(str(i).encode()).digest() for i in range(40)]
    out = subprocess.run([TOOL, "merkle"], input="\n".join(x.hex() for x in data) + "\n",
                         capture_output=True, text=True, check=True).stdout.splitlines()
    roots = {int(l.split()[2]): bytes.fromhex(l.split()[0]) for l in out if " root " in l}
    check(all(roots[n] == mth(data[:n]) for n in range(41)), "C Merkle roots equal RFC 9162 MTH for sizes 0..40")
    nproofs = 0
    for line in (l for l in out if l.startswith("proof ")):
        parts = line.split()
        a, b, ok, rej, cached = int(parts[1]), int(parts[2]), parts[3], parts[4], parts[5]
        proof = [bytes.fromhex(x) for x in parts[6:]]
        if ok != "ok" or rej != "rejects-altered":
            fail(f"C proof {a}->{b}: own verifier said {ok}/{rej}")
        if cached != "cached-same":
            fail(f"C proof {a}->{b} from cached block roots differs from the one from leaves")
        if proof != consistency_proof(a, data[:b]):
            fail(f"C consistency proof {a}->{b} differs from RFC 9162 PROOF")
        if not verify_consistency(a, b, mth(data[:a]), mth(data[:b]), proof):
            fail(f"C consistency proof {a}->{b} fails the independent verifier")
        nproofs += 1
    check(nproofs == 40 * 41 // 2, f"{nproofs} consistency proofs equal RFC 9162's and verify independently, "
                                         "from leaves and from cached block roots alike")
    check(not verify_consistency(3, 7, mth(data[:3]), mth(data[:7]), consistency_proof(3, data[:6])),
          "the independent verifier rejects a proof for the wrong size (it can fail)")
