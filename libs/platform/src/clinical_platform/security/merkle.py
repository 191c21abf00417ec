"""Merkle tree hashes in the shape of RFC 6962 (Certificate Transparency), over SHA-256.

Leaves and inner nodes are domain-separated (0x00 / 0x01 prefixes), so no inner node can pass
for a leaf; the odd leaf out is not duplicated, so no two leaf lists share a root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def leaf_hash(offset: int, event_hash: bytes) -> bytes:
    """A checkpoint entry's leaf: the record's offset and its event's hash."""
    return hashlib.sha256(b"\x00" + offset.to_bytes(8, "big") + event_hash).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of leaf hashes (RFC 6962 section 2.1, over ready-made leaves)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)  # largest power of two below the count
    left, right = merkle_root(leaves[:split]), merkle_root(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()
