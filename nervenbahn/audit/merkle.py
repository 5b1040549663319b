"""A Merkle tree over a chain's records, as RFC 6962 (Certificate Transparency) defines it.

The hash chain proves a record only to someone who rehashes every record before it; the tree
proves one record with a path of about log2(n) hashes. Leaf hash = SHA-256(0x00 || leaf),
node hash = SHA-256(0x01 || left || right), the tree over n leaves split at the largest power
of two below n (RFC 6962 section 2.1; RFC 9162 section 2.1.1 is the same). The leaves are the
records the chain links cover (`chain.event_record`: position, originator id, version, topic
and stored state, length-prefixed), so a proof ties the stored bytes themselves to a signed
root: an auditor reads the event's fields from the leaf, hashes it and climbs to the root.

`Frontier` is the classic incremental form: the roots of the perfect subtrees the tree's size
decomposes into (one per set bit, at most 64), enough to append leaves and compute the root
without the leaves before — which is what a checkpoint keeps so that signing the next one
hashes only the records added since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from nervenbahn.audit.hashing import HASH_SIZE

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "TreeHead",
    "consistency_path",
    "consistent",
    "inclusion_path",
    "leaf_hash",
    "node_hash",
    "perfect_root",
    "root_from_path",
    "tree_root",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree (RFC 6962: the hash of the empty string)."""


@dataclass(frozen=True)
class TreeHead:
    """A tree as a checkpoint signs it: how many leaves, and the root."""

    size: int
    root: bytes

    def to_json(self) -> dict[str, object]:
        """As JSON (root in hex): the fields a checkpoint's chain head gains."""
        return {"tree_size": self.size, "root": self.root.hex()}


def leaf_hash(leaf: bytes) -> bytes:
    """SHA-256(0x00 || leaf)."""
    digest = hashlib.sha256(b"\x00")
    digest.update(leaf)
    return digest.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def perfect_root(leaves: Sequence[bytes]) -> bytes:
    """The root over a power-of-two number of leaf hashes (at least one), a level at a time:
    one SHA-256 call per node and no recursion (verification computes a block of its
    tree this way for every 1024 events)."""
    level = list(leaves)
    sha256 = hashlib.sha256
    while len(level) > 1:
        pairs = iter(level)
        level = [sha256(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs,
                                                                                 strict=True)]
    return level[0]


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """The root of the tree over leaf hashes lo..hi-1 (hi > lo)."""
    if hi - lo == 1:
        return leaves[lo]
    k = lo + _split(hi - lo)
    return node_hash(_subtree(leaves, lo, k), _subtree(leaves, k, hi))


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """The root over these leaf hashes (`EMPTY_ROOT` for none)."""
    return _subtree(leaves, 0, len(leaves)) if leaves else EMPTY_ROOT


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree over `leaves` (RFC 6962 PATH(m, D[n])), the
    sibling nearest the leaf first; IndexError outside the tree."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is not in a tree of {len(leaves)} leaves")
    path: list[bytes] = []
    lo, hi = 0, len(leaves)
    while hi - lo > 1:
        k = lo + _split(hi - lo)
        if index < k:
            path.append(_subtree(leaves, k, hi))
            hi = k
        else:
            path.append(_subtree(leaves, lo, k))
            lo = k
    path.reverse()
    return path


def root_from_path(leaf: bytes, index: int, size: int, path: Iterable[bytes]) -> bytes | None:
    """The root that `path` leads to from the leaf hash `leaf` at `index` in a tree of `size`
    leaves (RFC 9162 section 2.1.3.2); None if the path cannot belong to such a tree."""
    if not 0 <= index < size:
        return None
    fn, sn, node = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    return node if sn == 0 else None


def consistency_path(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """The proof that the tree over the first `old_size` leaves is a prefix of the tree over
    all `leaves` (RFC 6962 PROOF(m, D[n]), section 2.1.2); empty when either tree is empty or
    both are the same; ValueError if `old_size` is not 0..len(leaves)."""
    if not 0 <= old_size <= len(leaves):
        raise ValueError(f"a tree of {old_size} leaves is no prefix of one of {len(leaves)}")
    if old_size in (0, len(leaves)):
        return []
    return _subproof(leaves, old_size, 0, len(leaves), complete=True)


def _subproof(leaves: Sequence[bytes], m: int, lo: int, hi: int, *, complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], complete) of RFC 6962 section 2.1.2."""
    if m == hi - lo:
        return [] if complete else [_subtree(leaves, lo, hi)]
    k = _split(hi - lo)
    if m <= k:
        return [*_subproof(leaves, m, lo, lo + k, complete=complete), _subtree(leaves, lo + k, hi)]
    return [*_subproof(leaves, m - k, lo + k, hi, complete=False), _subtree(leaves, lo, lo + k)]


def consistent(old: TreeHead, new: TreeHead, path: Sequence[bytes]) -> bool:
    """Whether `path` proves the tree `old` a prefix of the tree `new` (RFC 9162 section
    2.1.4.2)."""
    if old.size == 0 or old.size == new.size:
        return not path and (old.size == 0 or old.root == new.root) and old.size <= new.size
    if old.size > new.size or not path:
        return False
    nodes = [old.root, *path] if old.size & (old.size - 1) == 0 else list(path)
    fn, sn = old.size - 1, new.size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = nodes[0]
    for node in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(node, fr), node_hash(node, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, node)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old.root and sr == new.root


@dataclass
class Frontier:
    """A tree being appended to: its size and the roots of its perfect subtrees, largest
    (leftmost) first — O(log n) hashes, enough for the root and for appending."""

    size: int = 0
    nodes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        """Add a leaf hash (amortised: two node hashes per leaf)."""
        node, size = leaf, self.size
        while size & 1:
            node = node_hash(self.nodes.pop(), node)
            size >>= 1
        self.nodes.append(node)
        self.size += 1

    @classmethod
    def of(cls, leaves: Sequence[bytes]) -> Frontier:
        """The frontier of the tree over these leaf hashes: the roots of its perfect subtrees
        by the binary digits of its size, each computed a level at a time."""
        nodes, start = [], 0
        for bit in reversed(range(len(leaves).bit_length())):
            if len(leaves) >> bit & 1:
                nodes.append(perfect_root(leaves[start : start + (1 << bit)]))
                start += 1 << bit
        return cls(len(leaves), nodes)

    def root(self) -> bytes:
        """The tree's root (`EMPTY_ROOT` when empty)."""
        if not self.nodes:
            return EMPTY_ROOT
        node = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            node = node_hash(left, node)
        return node

    def to_text(self) -> str:
        """The nodes as one hex string (for the checkpoint state)."""
        return b"".join(self.nodes).hex()

    @classmethod
    def from_text(cls, size: int, text: str) -> Frontier | None:
        """A frontier from `to_text` and its size; None if they do not fit together."""
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            return None
        nodes = [raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE)]
        if size < 0 or len(raw) % HASH_SIZE or len(nodes) != size.bit_count():
            return None
        return cls(size, nodes)
