"""The Merkle tree of RFC 6962: roots and audit paths against the RFC's definition written
out literally and against Certificate Transparency's published roots, the frontier against
the full tree at every size, and paths that must not verify."""

from __future__ import annotations

import hashlib

import pytest

from nervenbahn.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    TreeHead,
    consistency_path,
    consistent,
    inclusion_path,
    leaf_hash,
    perfect_root,
    root_from_path,
    tree_root,
)

SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17, 31, 33, 100)

# The eight leaves of Certificate Transparency's reference tests and the root of the tree over
# the first n of them (RFC 6962 reference implementation, merkle_tree_test).
CT_LEAVES = tuple(
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
)
CT_ROOTS = (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)


def mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 section 2.1 writes it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) exactly as RFC 6962 section 2.1.1 writes it."""
    if len(leaves) <= 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def records(n: int) -> list[bytes]:
    return [f"record {i}".encode() for i in range(n)]


def test_the_roots_are_certificate_transparencys() -> None:
    hashes = [leaf_hash(leaf) for leaf in CT_LEAVES]
    assert [tree_root(hashes[:n]).hex() for n in range(1, 9)] == list(CT_ROOTS)
    assert tree_root([]) == EMPTY_ROOT == mth([])


@pytest.mark.parametrize("n", SIZES)
def test_root_and_paths_follow_the_rfc_for_first_middle_and_last_leaf(n: int) -> None:
    leaves = records(n)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    root = tree_root(hashes)
    assert root == mth(leaves)
    for m in sorted({0, n // 2, n - 1}):
        proof = inclusion_path(hashes, m)
        assert proof == path(m, leaves)
        assert len(proof) <= (n - 1).bit_length()
        assert root_from_path(hashes[m], m, n, proof) == root


@pytest.mark.parametrize("n", SIZES)
def test_a_path_does_not_lead_to_the_root_from_anything_else(n: int) -> None:
    # (The tree's size is not bound by the path — a leaf of the left subtree has the same
    # path in trees of 100 and 101 leaves — but by the checkpoint signing size and root.)
    leaves = records(n)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    root = tree_root(hashes)
    m = n // 2
    proof = inclusion_path(hashes, m)
    altered = leaf_hash(leaves[m] + b"!")
    assert root_from_path(altered, m, n, proof) != root
    assert root_from_path(hashes[m], m, n, [*proof, hashes[0]]) != root  # one hash too many
    assert root_from_path(hashes[m], n, n, proof) is None  # outside the tree
    if proof:
        bent = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
        assert root_from_path(hashes[m], m, n, bent) != root
        assert root_from_path(hashes[m], m, n, proof[:-1]) != root
    if n > 1:
        other = (m + 1) % n
        assert root_from_path(hashes[m], other, n, proof) != root


def test_the_frontier_gives_the_root_at_every_size_and_survives_its_text() -> None:
    leaves = records(70)
    frontier = Frontier()
    assert frontier.root() == EMPTY_ROOT
    for size, leaf in enumerate(leaves, start=1):
        frontier.append(leaf_hash(leaf))
        assert frontier.size == size
        assert len(frontier.nodes) == size.bit_count()
        assert frontier.root() == mth(leaves[:size])
        kept = Frontier.from_text(frontier.size, frontier.to_text())
        assert kept == frontier


def test_a_frontier_of_leaves_at_once_is_the_one_appended_leaf_by_leaf() -> None:
    """`Frontier.of` and `perfect_root` (a level at a time, as verification computes its
    blocks) make the same nodes as appending, at every size."""
    hashes = [leaf_hash(leaf) for leaf in records(70)]
    appended = Frontier()
    assert Frontier.of([]) == appended
    for size, leaf in enumerate(hashes, start=1):
        appended.append(leaf)
        assert Frontier.of(hashes[:size]) == appended
        if size & (size - 1) == 0:
            assert perfect_root(hashes[:size]) == tree_root(hashes[:size])


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (3, "00" * 32),  # 3 leaves need two nodes
        (1, "00" * 31),  # not whole hashes
        (1, "zz" * 32),  # not hex
        (-1, ""),
    ],
)
def test_a_frontier_that_does_not_fit_its_size_is_not_used(size: int, text: str) -> None:
    assert Frontier.from_text(size, text) is None


def subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) exactly as RFC 6962 section 2.1.2 writes it."""
    if m == len(leaves):
        return [] if complete else [mth(leaves)]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m <= k:
        return [*subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


@pytest.mark.parametrize("n", SIZES)
def test_consistency_proofs_follow_the_rfc_and_hold_only_for_the_prefix(n: int) -> None:
    leaves = records(n)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    new = TreeHead(n, mth(leaves))
    for m in sorted({1, 2, 3, n // 2, n - 1, n} & set(range(1, n + 1))):
        old = TreeHead(m, mth(leaves[:m]))
        proof = consistency_path(hashes, m)
        assert proof == (subproof(m, leaves, True) if m < n else [])
        assert consistent(old, new, proof)
        if m < n:
            rewritten = TreeHead(m, mth([b"rewritten", *leaves[1:m]]))
            assert not consistent(rewritten, new, proof)
            assert not consistent(old, TreeHead(n, mth([*leaves[:-1], b"x"])), proof)
            assert not consistent(old, new, proof[:-1])
            assert not consistent(old, new, [*proof, hashes[0]])
    assert consistent(TreeHead(0, EMPTY_ROOT), new, consistency_path(hashes, 0))
    with pytest.raises(ValueError, match="no prefix"):
        consistency_path(hashes, n + 1)
