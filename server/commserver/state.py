# SPDX-License-Identifier: Apache-2.0
"""Per-device server state: counts, seen transaction ids, instruction queue,
scripted faults, witness state.  One JSON file, rewritten atomically on
every change, guarded by one lock (the server is small; clarity wins).

Bounds per device: the last MAX_KEPT_TRANSACTIONS transaction ids (the
idempotency window: a retransmission is recognised as long as fewer than
that many newer submissions came from the device since), the last
MAX_KEPT_SUBMISSIONS parsed submissions, MAX_QUEUE queued instructions."""

import json
import os
import tempfile
import threading

OPERATIONS = ("CheckIn", "SubmitMeterReads", "SubmitSupplies",
              "SubmitDiagnostics", "GetSoftware", "ReportResult")
INSTRUCTION_TYPES = ("SendMeterReads", "SendSupplies", "SetCheckInInterval",
                     "SoftwareAvailable", "DiagnosticsRequested")
MAX_KEPT_SUBMISSIONS = 1000
MAX_KEPT_TRANSACTIONS = 4096
MAX_QUEUE = 256


def _new_device():
    return {
        "counts": {op: 0 for op in OPERATIONS},
        "duplicates": {op: 0 for op in OPERATIONS},
        "transactions": {},     # id -> {op, digest, seq}, oldest first
        "tx_seq": 0,
        "submissions": [],
        "next_instruction": 1,
        "queue": [],
        "issued": {},
        "last_acked_instruction": 0,
        "faults": [],
        "witness": {"log_key": None, "size": None, "root": None, "checkpoint": None},
    }


class StateError(ValueError):
    pass


class State:
    def __init__(self, path):
        self.path = path
        self.lock = threading.RLock()
        self.devices = {}
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.devices = json.load(f).get("devices", {})
            for dev in self.devices.values():
                # The file is written with sorted keys: restore arrival order.
                tx = dev.get("transactions", {})
                dev["transactions"] = dict(sorted(tx.items(), key=lambda kv: kv[1].get("seq", 0)))
                dev["tx_seq"] = max([dev.get("tx_seq", 0)] + [t.get("seq", 0) for t in tx.values()])

    def save(self):
        if not self.path:
            return
        d = os.path.dirname(self.path) or "."
        fd, tmp = tempfile.mkstemp(prefix=".state.", dir=d)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "devices": self.devices}, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def device(self, device_id):
        """The device's record, created on first use.  Call with self.lock held."""
        dev = self.devices.get(device_id)
        if dev is None:
            dev = self.devices[device_id] = _new_device()
        return dev

    # ---- transactions (idempotency) ----

    def record_submission(self, device_id, op, txid, digest, payload):
        """'Accepted' the first time, 'Duplicate' for a retransmission.

        Raises StateError when the id was used for different content."""
        with self.lock:
            dev = self.device(device_id)
            seen = dev["transactions"].get(txid)
            if seen is not None:
                if seen["op"] != op or seen["digest"] != digest:
                    raise StateError("transaction id %s was already used for different content" % txid)
                dev["duplicates"][op] += 1
                self.save()
                return "Duplicate"
            dev["tx_seq"] = dev.get("tx_seq", 0) + 1
            tx = dev["transactions"]
            tx[txid] = {"op": op, "digest": digest, "seq": dev["tx_seq"]}
            while len(tx) > MAX_KEPT_TRANSACTIONS:
                del tx[next(iter(tx))]          # forget the oldest
            dev["counts"][op] += 1
            dev["submissions"].append({"op": op, "transaction_id": txid, "payload": payload})
            del dev["submissions"][:-MAX_KEPT_SUBMISSIONS]
            self.save()
            return "Accepted"

    def count_call(self, device_id, op):
        with self.lock:
            self.device(device_id)["counts"][op] += 1
            self.save()

    # ---- instruction queue ----

    def enqueue(self, device_id, instruction):
        if instruction.get("type") not in INSTRUCTION_TYPES:
            raise StateError("unknown instruction type %r" % instruction.get("type"))
        with self.lock:
            dev = self.device(device_id)
            if len(dev["queue"]) >= MAX_QUEUE:
                raise StateError("instruction queue full")
            iid = dev["next_instruction"]
            dev["next_instruction"] += 1
            item = dict(instruction, id=iid)
            dev["queue"].append(item)
            dev["issued"][str(iid)] = item["type"]
            self.save()
            return iid

    def pending(self, device_id, last_acked, limit):
        """Drop instructions up to last_acked; return the next `limit` still queued."""
        with self.lock:
            dev = self.device(device_id)
            if last_acked > dev["last_acked_instruction"]:
                dev["last_acked_instruction"] = last_acked
            dev["queue"] = [i for i in dev["queue"] if i["id"] > last_acked]
            self.save()
            return [dict(i) for i in dev["queue"][:limit]]

    def issued_type(self, device_id, iid):
        with self.lock:
            return self.device(device_id)["issued"].get(str(iid))

    # ---- scripted faults ----

    def add_fault(self, device_id, fault):
        with self.lock:
            self.device(device_id)["faults"].append(dict(fault))
            self.save()

    def take_fault(self, device_id, op):
        with self.lock:
            dev = self.devices.get(device_id)
            if not dev:
                return None
            for f in dev["faults"]:
                if f.get("operation", "*") in ("*", op):
                    f["count"] = int(f.get("count", 1)) - 1
                    if f["count"] <= 0:
                        dev["faults"].remove(f)
                    self.save()
                    return dict(f)
            return None

    # ---- witness ----

    def witness(self, device_id):
        with self.lock:
            return dict(self.device(device_id)["witness"])

    def set_witness(self, device_id, **kw):
        with self.lock:
            self.device(device_id)["witness"].update(kw)
            self.save()

    # ---- admin view ----

    def snapshot(self, device_id):
        with self.lock:
            dev = self.devices.get(device_id) or _new_device()
            return json.loads(json.dumps(dev))
