"""Sealing events into their aggregate's hash chain: every event carries its hash and its
predecessor's.

``hash = SHA-256(canonical bytes)``, where the canonical bytes are the serialized Envelope
without field 22 (``hash``): every other field, ``prev_hash`` and the payload ciphertext
included. The writer seals each event as it appends it; `clinical_platform.security.chain`
verifies chains from the bytes as stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from clinical.events.v1.envelope_pb2 import Envelope


def canonical_bytes(envelope: Envelope) -> bytes:
    """Deterministic serialization of the envelope with ``hash`` cleared."""
    if not envelope.hash:  # being sealed: nothing to clear, so no copy to make
        return envelope.SerializeToString(deterministic=True)
    unhashed = Envelope()
    unhashed.CopyFrom(envelope)
    unhashed.ClearField("hash")
    return unhashed.SerializeToString(deterministic=True)


def event_hash(envelope: Envelope) -> bytes:
    return hashlib.sha256(canonical_bytes(envelope)).digest()


def seal(envelope: Envelope, prev_hash: bytes) -> bytes:
    """Chain the envelope after its aggregate's previous event; set and return its hash.

    Call it last, once every other field (``recorded_at``, the encrypted payload) is final.
    """
    envelope.prev_hash = prev_hash
    envelope.hash = event_hash(envelope)
    return envelope.hash


class ChainSealer:
    """Seals the envelopes of one commit in append order, several per aggregate if need be.

    ``head_of(aggregate_id)`` gives the hash of the aggregate's last event already on the log
    (the partition store's ``last_hash``); later ones chain onto what was just sealed.
    """

    def __init__(self, head_of: Callable[[str], bytes]) -> None:
        self._head_of = head_of
        self._heads: dict[str, bytes] = {}

    def seal(self, envelope: Envelope) -> bytes:
        aggregate_id = envelope.aggregate_id
        if aggregate_id not in self._heads:
            self._heads[aggregate_id] = self._head_of(aggregate_id)
        self._heads[aggregate_id] = seal(envelope, self._heads[aggregate_id])
        return self._heads[aggregate_id]
