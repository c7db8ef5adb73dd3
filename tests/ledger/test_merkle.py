"""Tests for ledger.merkle: RFC 9162 vectors, an independent oracle (pymerkle), and properties.

No database: the node store is a plain dict behind a counting fetcher.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.merkle import (
    EMPTY_ROOT,
    MerkleAccumulator,
    MissingNodeError,
    NodeId,
    ProofError,
    consistency_proof,
    consistency_proof_layout,
    frontier_ids,
    inclusion_proof,
    inclusion_proof_layout,
    leaf_hash,
    needed_nodes_for_consistency,
    needed_nodes_for_inclusion,
    new_perfect_nodes,
    node_hash,
    perfect_node_count,
    root_from_frontier,
    root_from_leaf_hashes,
    root_hash,
    subtree_hash,
    subtree_nodes,
    verify_consistency,
    verify_inclusion,
)

# --------------------------------------------------------------------------------------------
# Reference material
# --------------------------------------------------------------------------------------------

# The 8-leaf test tree of the Certificate Transparency reference code (merkle_tree_test.cc),
# as also used by transparency-dev/merkle proof/verify_test.go.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]

# (leaf number counting from 1, tree size, proof) as in the CT test data.
CT_INCLUSION = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def naive_mth(data_hashes: Sequence[bytes]) -> bytes:
    """Textbook recursive RFC 9162 MTH over leaf hashes, written independently of the module."""
    n = len(data_hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return data_hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(
        b"\x01" + naive_mth(data_hashes[:k]) + naive_mth(data_hashes[k:])
    ).digest()


def naive_path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 section 2.1.3.1 PATH(m, D[n]), recursive, straight from the text."""
    n = len(hashes)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, hashes[:k]), naive_mth(hashes[k:])]
    return [*naive_path(m - k, hashes[k:]), naive_mth(hashes[:k])]


def naive_proof(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 section 2.1.4.1 PROOF(m, D[n]) via SUBPROOF, recursive, straight from the text."""

    def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [naive_mth(d)]
        k = 1
        while k * 2 < n:
            k *= 2
        if m <= k:
            return [*subproof(m, d[:k], b), naive_mth(d[k:])]
        return [*subproof(m - k, d[k:], False), naive_mth(d[:k])]

    return subproof(m, hashes, True)


class Store:
    """Dict-backed node store whose fetcher counts round trips, like a DB query would."""

    def __init__(self) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        self.calls = 0
        self.fetched = 0

    def add(self, rows: Iterable[tuple[int, int, bytes]]) -> None:
        for level, index, h in rows:
            assert (level, index) not in self.nodes, "perfect node emitted twice"
            self.nodes[(level, index)] = h

    def fetch(self, ids: Iterable[NodeId]) -> Mapping[NodeId, bytes]:
        self.calls += 1
        ids = list(ids)
        self.fetched += len(ids)
        return {i: self.nodes[i] for i in ids if i in self.nodes}


def build(hashes: Sequence[bytes]) -> Store:
    store = Store()
    store.add(new_perfect_nodes(0, hashes, {}))
    return store


def distinct_leaves(n: int, salt: bytes = b"") -> list[bytes]:
    """Distinct leaf data, so that a proof for one position can never fit another."""
    return [salt + b"leaf-" + str(i).encode() for i in range(n)]


# --------------------------------------------------------------------------------------------
# Known-answer tests
# --------------------------------------------------------------------------------------------


def test_hash_primitives() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


def test_ct_roots_verbatim() -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    assert root_from_leaf_hashes(hashes[:1]).hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert root_from_leaf_hashes(hashes).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )
    store = build(hashes)
    acc = MerkleAccumulator()
    for size in range(1, 9):
        acc.append(hashes[size - 1])
        assert root_from_leaf_hashes(hashes[:size]) == CT_ROOTS[size - 1]
        assert root_hash(size, store.fetch) == CT_ROOTS[size - 1]
        assert acc.root() == CT_ROOTS[size - 1]
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert root_hash(0, store.fetch) == EMPTY_ROOT


@pytest.mark.parametrize(("leaf", "size", "proof"), CT_INCLUSION)
def test_ct_inclusion_vectors(leaf: int, size: int, proof: list[str]) -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    store = build(hashes)
    want = [bytes.fromhex(p) for p in proof]
    assert inclusion_proof(leaf - 1, size, store.fetch) == want
    verify_inclusion(hashes[leaf - 1], leaf - 1, size, want, CT_ROOTS[size - 1])


@pytest.mark.parametrize(("m", "n", "proof"), CT_CONSISTENCY)
def test_ct_consistency_vectors(m: int, n: int, proof: list[str]) -> None:
    store = build([leaf_hash(d) for d in CT_LEAVES])
    want = [bytes.fromhex(p) for p in proof]
    assert consistency_proof(m, n, store.fetch) == want
    verify_consistency(m, n, CT_ROOTS[m - 1], CT_ROOTS[n - 1], want)


def _go_layout(ids: list[NodeId], rehash: tuple[int, int] | None = None) -> list[list[NodeId]]:
    """Convert transparency-dev's proof node notation to ours.

    There, ``ids[begin:end]`` are ephemeral-node parts listed bottom-up (smallest first) and
    hashed together into one proof element; we list each element's parts left to right.
    """
    if rehash is None:
        return [[i] for i in ids]
    begin, end = rehash
    return [[i] for i in ids[:begin]] + [ids[begin:end][::-1]] + [[i] for i in ids[end:]]


# transparency-dev/merkle proof/proof_test.go TestInclusion, with the same (level, index) ids.
TD_INCLUSION = [
    (1, 0, [], None),
    (2, 0, [(0, 1)], None),
    (2, 1, [(0, 0)], None),
    (3, 1, [(0, 0), (0, 2)], None),
    (7, 0, [(0, 1), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (7, 1, [(0, 0), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (7, 2, [(0, 3), (1, 0), (0, 6), (1, 2)], (2, 4)),
    (7, 3, [(0, 2), (1, 0), (0, 6), (1, 2)], (2, 4)),
    (7, 4, [(0, 5), (0, 6), (2, 0)], None),
    (7, 5, [(0, 4), (0, 6), (2, 0)], None),
    (7, 6, [(1, 2), (2, 0)], None),
    (4, 2, [(0, 3), (1, 0)], None),
    (5, 3, [(0, 2), (1, 0), (0, 4)], None),
    (6, 3, [(0, 2), (1, 0), (1, 2)], None),
    (6, 4, [(0, 5), (2, 0)], None),
    (15, 10, [(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)], (2, 4)),
    (31, 24, [(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)], (2, 4)),
    (95, 81, [(0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)], (3, 6)),
]

# transparency-dev/merkle proof/proof_test.go TestConsistency.
TD_CONSISTENCY = [
    (1, 2, [(0, 1)], None),
    (1, 4, [(0, 1), (1, 1)], None),
    (1, 6, [(0, 1), (1, 1), (1, 2)], None),
    (2, 3, [(0, 2)], None),
    (2, 8, [(1, 1), (2, 1)], None),
    (3, 7, [(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)], (3, 5)),
    (4, 7, [(0, 6), (1, 2)], (0, 2)),
    (5, 7, [(0, 4), (0, 5), (0, 6), (2, 0)], None),
    (6, 7, [(1, 2), (0, 6), (2, 0)], None),
    (7, 8, [(0, 6), (0, 7), (1, 2), (2, 0)], None),
    *[(s, s, [], None) for s in (1, 2, 3, 4, 5, 7, 8)],
    (2, 4, [(1, 1)], None),
    (3, 5, [(0, 2), (0, 3), (1, 0), (0, 4)], None),
    (3, 6, [(0, 2), (0, 3), (1, 0), (1, 2)], None),
    (4, 6, [(1, 2)], None),
    (1, 7, [(0, 1), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (10, 15, [(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)], (2, 4)),
    (24, 31, [(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)], (1, 4)),
    (
        81,
        95,
        [(0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)],
        (4, 7),
    ),
]


@pytest.mark.parametrize(("size", "index", "ids", "rehash"), TD_INCLUSION)
def test_inclusion_node_layout_matches_transparency_dev(
    size: int, index: int, ids: list[NodeId], rehash: tuple[int, int] | None
) -> None:
    assert inclusion_proof_layout(index, size) == _go_layout(ids, rehash)
    assert set(needed_nodes_for_inclusion(index, size)) == set(ids)


@pytest.mark.parametrize(("m", "n", "ids", "rehash"), TD_CONSISTENCY)
def test_consistency_node_layout_matches_transparency_dev(
    m: int, n: int, ids: list[NodeId], rehash: tuple[int, int] | None
) -> None:
    assert consistency_proof_layout(m, n) == _go_layout(ids, rehash)
    assert set(needed_nodes_for_consistency(m, n)) == set(ids)


# --------------------------------------------------------------------------------------------
# Independent recursive reference (RFC text) for many sizes
# --------------------------------------------------------------------------------------------


def test_against_naive_rfc_reference_exhaustive_small() -> None:
    hashes = [leaf_hash(d) for d in distinct_leaves(40)]
    store = build(hashes)
    for n in range(0, 41):
        assert root_from_leaf_hashes(hashes[:n]) == naive_mth(hashes[:n])
        assert root_hash(n, store.fetch) == naive_mth(hashes[:n])
        for i in range(n):
            assert inclusion_proof(i, n, store.fetch) == naive_path(i, hashes[:n])
        for m in range(1, n):
            assert consistency_proof(m, n, store.fetch) == naive_proof(m, hashes[:n])


def test_root_from_leaf_hashes_large_uneven() -> None:
    rng = random.Random(7)
    hashes = [rng.randbytes(32) for _ in range(3000)]
    for n in (1023, 1024, 1025, 2047, 3000):
        assert root_from_leaf_hashes(hashes[:n]) == naive_mth(hashes[:n])


# --------------------------------------------------------------------------------------------
# pymerkle 7 as an independent oracle
# --------------------------------------------------------------------------------------------


def test_pymerkle_oracle() -> None:
    pymerkle = pytest.importorskip("pymerkle")
    from pymerkle.core import _consistency_path_layout

    rng = random.Random(2024)
    size = 333
    data = [rng.randbytes(rng.randrange(0, 40)) + i.to_bytes(4, "big") for i in range(size)]
    tree = pymerkle.InmemoryTree(algorithm="sha256", disable_security=False)
    for d in data:
        tree.append_entry(d)
    hashes = [leaf_hash(d) for d in data]
    store = build(hashes)

    # Leaf hashing and roots agree for every size.
    for i in range(size):
        assert tree.get_leaf(i + 1) == hashes[i]
    for n in range(1, size + 1):
        assert tree.get_root(n) == root_hash(n, store.fetch)

    for _ in range(150):
        n = rng.randrange(1, size + 1)
        i = rng.randrange(n)
        ours = inclusion_proof(i, n, store.fetch)
        theirs = tree.prove_inclusion(i + 1, n)  # pymerkle indices count from 1
        # pymerkle's path is [leaf, siblings bottom-up...]; RFC 9162 PATH is the siblings.
        assert theirs.path[0] == hashes[i]
        assert theirs.path[1:] == ours
        verify_inclusion(hashes[i], i, n, ours, tree.get_root(n))

    for _ in range(150):
        n = rng.randrange(2, size + 1)
        m = rng.randrange(1, n)
        ours = consistency_proof(m, n, store.fetch)
        # pymerkle's consistency path is not RFC 9162 shaped (it descends to a leaf when the
        # old tree is a left power-of-two subtree), so cross-check values and validity instead:
        verify_consistency(m, n, tree.get_root(m), tree.get_root(n), ours)
        theirs = tree.prove_consistency(m, n)
        pymerkle.verify_consistency(root_hash(m, store.fetch), root_hash(n, store.fetch), theirs)
        # ...and every hash in pymerkle's path must equal our stored-subtree fold of its range.
        _, _, ranges = _consistency_path_layout(m, n)
        for (a, b), h in zip(ranges, theirs.path, strict=True):
            assert subtree_hash(a, b, store.nodes) == h
        # ...and every hash in our proof equals pymerkle's own MTH of the RFC range.
        for (a, b), h in zip(merkle.consistency_proof_ranges(m, n), ours, strict=True):
            assert tree._get_root(a, b) == h


# --------------------------------------------------------------------------------------------
# Store mechanics
# --------------------------------------------------------------------------------------------


def test_perfect_nodes_complete_and_unique() -> None:
    hashes = [leaf_hash(d) for d in distinct_leaves(100)]
    store = build(hashes)
    assert len(store.nodes) == perfect_node_count(100) == 2 * 100 - 3
    for (level, index), h in store.nodes.items():
        lo, hi = index << level, (index + 1) << level
        assert hi <= 100
        assert h == naive_mth(hashes[lo:hi])


def test_proofs_use_one_fetch_and_few_nodes() -> None:
    n = 1000
    hashes = [leaf_hash(d) for d in distinct_leaves(n)]
    store = build(hashes)
    for i in (0, 1, 511, 512, 998, 999):
        store.calls = store.fetched = 0
        inclusion_proof(i, n, store.fetch)
        assert store.calls == 1
        assert store.fetched <= 2 * n.bit_length()
    for m in (1, 3, 512, 513, 999):
        store.calls = store.fetched = 0
        consistency_proof(m, n, store.fetch)
        assert store.calls == 1
        assert store.fetched <= 2 * n.bit_length() + 2
    store.calls = 0
    root_hash(n, store.fetch)
    assert store.calls == 1
    store.calls = 0
    assert inclusion_proof(0, 1, store.fetch) == []
    assert consistency_proof(5, 5, store.fetch) == []
    assert consistency_proof(0, 5, store.fetch) == []
    assert store.calls == 0


def test_missing_node_is_reported() -> None:
    store = build([leaf_hash(d) for d in distinct_leaves(8)])
    del store.nodes[(2, 1)]
    with pytest.raises(MissingNodeError, match="level 2, index 1"):
        inclusion_proof(0, 8, store.fetch)
    with pytest.raises(MissingNodeError):
        root_hash(9, store.fetch)  # the store only knows 8 leaves


def test_subtree_nodes_rejects_unaligned_ranges() -> None:
    assert subtree_nodes(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert subtree_nodes(8, 13) == [(2, 2), (0, 12)]
    for start, end in [(1, 3), (2, 6), (4, 12), (3, 3), (5, 4)]:
        with pytest.raises(ValueError):
            subtree_nodes(start, end)


def test_frontier_and_resume() -> None:
    hashes = [leaf_hash(d) for d in distinct_leaves(77)]
    store = build(hashes[:45])
    assert frontier_ids(45) == [(5, 0), (3, 4), (2, 10), (0, 44)]
    assert frontier_ids(0) == []
    frontier = {i: store.nodes[i] for i in frontier_ids(45)}
    assert root_from_frontier(45, frontier) == naive_mth(hashes[:45])
    store.add(new_perfect_nodes(45, hashes[45:], frontier))
    assert len(store.nodes) == perfect_node_count(77)
    assert root_hash(77, store.fetch) == naive_mth(hashes)
    acc = MerkleAccumulator.from_frontier(45, frontier)
    assert acc.frontier() == frontier
    acc.extend(hashes[45:])
    assert acc.size == 77
    assert acc.root() == naive_mth(hashes)
    with pytest.raises(MissingNodeError):
        MerkleAccumulator.from_frontier(45, {})


def test_accumulator_rejects_bad_leaf_hash() -> None:
    acc = MerkleAccumulator()
    with pytest.raises(ValueError):
        acc.append(b"short")
    with pytest.raises(ValueError):
        acc.extend([leaf_hash(b"a"), b"x" * 31])
    assert acc.size == 1  # the valid leaf before the bad one was kept, consistently
    assert acc.root() == leaf_hash(b"a")


def test_iter_extend_with_nodes_stops_cleanly() -> None:
    hashes = [leaf_hash(d) for d in distinct_leaves(8)]
    acc = MerkleAccumulator()
    rows = []
    for row in acc.iter_extend_with_nodes(hashes):
        rows.append(row)
        if row[:2] == (0, 3):
            break
    assert acc.size == 4
    assert acc.root() == naive_mth(hashes[:4])


# --------------------------------------------------------------------------------------------
# Verification edge cases (as in transparency-dev TestVerifyInclusion / TestVerifyConsistency)
# --------------------------------------------------------------------------------------------


def test_inclusion_edge_cases() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(h, 0, 1, [], h)  # single-leaf tree: root is the leaf hash
    with pytest.raises(ProofError, match="empty tree"):
        verify_inclusion(h, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="out of range"):
        verify_inclusion(h, 1, 1, [], h)
    with pytest.raises(ProofError, match="out of range"):
        verify_inclusion(h, 2, 1, [], h)
    with pytest.raises(ProofError, match="must be 32 bytes"):
        verify_inclusion(b"", 0, 1, [], h)
    with pytest.raises(ProofError, match="must be 32 bytes"):
        verify_inclusion(h, 0, 1, [], b"")
    with pytest.raises(ProofError, match="exactly 0"):
        verify_inclusion(h, 0, 1, [h], h)
    with pytest.raises(ProofError, match="does not lead to the expected root"):
        verify_inclusion(h, 0, 1, [], SOME_HASH)
    with pytest.raises(ProofError, match="non-negative"):
        verify_inclusion(h, -1, 1, [], h)
    with pytest.raises(ProofError, match="integer"):
        verify_inclusion(h, True, 2, [h], h)  # type: ignore[arg-type]


def test_consistency_edge_cases() -> None:
    r1, r2 = CT_ROOTS[0], CT_ROOTS[1]
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, CT_ROOTS[4], [])
    verify_consistency(1, 1, r1, r1, [])
    with pytest.raises(ProofError, match="different roots for the same tree size"):
        verify_consistency(1, 1, r1, r2, [])
    with pytest.raises(ProofError, match="never shrinks"):
        verify_consistency(2, 1, r2, r1, [])
    with pytest.raises(ProofError, match="exactly 1"):
        verify_consistency(1, 2, r1, r2, [])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(1, 1, r1, r1, [EMPTY_ROOT])
    with pytest.raises(ProofError, match="empty proof"):
        verify_consistency(0, 1, EMPTY_ROOT, r1, [EMPTY_ROOT])
    with pytest.raises(ProofError, match="empty-tree hash"):
        verify_consistency(0, 1, SOME_HASH, r1, [])
    with pytest.raises(ProofError, match="SHA-256 of the empty string"):
        verify_consistency(0, 0, SOME_HASH, SOME_HASH, [])


# --------------------------------------------------------------------------------------------
# Tampering
# --------------------------------------------------------------------------------------------


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


def inclusion_tampers(
    hashes: Sequence[bytes], roots: Sequence[bytes], i: int, n: int, proof: list[bytes]
) -> list[tuple[str, tuple[bytes, int, int, list[bytes], bytes]]]:
    leaf, root = hashes[i], roots[n]
    cases: list[tuple[str, tuple[bytes, int, int, list[bytes], bytes]]] = [
        ("wrong leaf", (leaf_hash(b"WrongLeaf"), i, n, proof, root)),
        ("empty root", (leaf, i, n, proof, EMPTY_ROOT)),
        ("random root", (leaf, i, n, proof, SOME_HASH)),
        ("trailing root", (leaf, i, n, [*proof, root], root)),
        ("preceding root", (leaf, i, n, [root, *proof], root)),
        ("index = size", (leaf, n, n, proof, root)),
    ]
    for j in (i - 1, i + 1, i ^ 2, i ^ 1):
        if 0 <= j < n and j != i:
            cases.append((f"index {j}", (leaf, j, n, proof, root)))
    # A different size, presented with that size's genuine root.
    for m in (n - 1, n + 1, n * 2, n // 2):
        if i < m < len(roots) and m != n:
            cases.append((f"size {m}", (leaf, i, m, proof, roots[m])))
    for k in range(len(proof)):
        for bit in (0, 3, 255):
            bad = list(proof)
            bad[k] = _flip(bad[k], bit)
            cases.append((f"flip proof[{k}] bit {bit}", (leaf, i, n, bad, root)))
    if proof:
        cases.append(("removed component", (leaf, i, n, proof[:-1], root)))
        cases.append(("inserted component", (leaf, i, n, [proof[0], SOME_HASH, *proof[1:]], root)))
    if len(proof) > 1 and proof[0] != proof[1]:
        cases.append(("swapped components", (leaf, i, n, [proof[1], proof[0], *proof[2:]], root)))
    return cases


def consistency_tampers(
    roots: Sequence[bytes], m: int, n: int, proof: list[bytes]
) -> list[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]]:
    r1, r2 = roots[m], roots[n]
    cases: list[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]] = [
        ("wrong old root", (m, n, SOME_HASH, r2, proof)),
        ("wrong new root", (m, n, r1, SOME_HASH, proof)),
        ("swapped roots", (m, n, r2, r1, proof)),
        ("empty proof", (m, n, r1, r2, [])),
        ("trailing old root", (m, n, r1, r2, [*proof, r1])),
        ("trailing new root", (m, n, r1, r2, [*proof, r2])),
        ("preceding old root", (m, n, r1, r2, [r1, *proof])),
        ("preceding proof[0]", (m, n, r1, r2, [proof[0], *proof])),
        ("truncated", (m, n, r1, r2, proof[:-1])),
    ]
    # Different sizes, each presented with that size's genuine root.
    for m2 in (m - 1, m + 1, m ^ 2):
        if 0 < m2 < n and m2 != m:
            cases.append((f"old size {m2}", (m2, n, roots[m2], r2, proof)))
    for n2 in (n - 1, n + 1, n * 2, n // 2):
        if m < n2 < len(roots) and n2 != n:
            cases.append((f"new size {n2}", (m, n2, r1, roots[n2], proof)))
    for k in range(len(proof)):
        for bit in (4, 130):
            bad = list(proof)
            bad[k] = _flip(bad[k], bit)
            cases.append((f"flip proof[{k}] bit {bit}", (m, n, r1, r2, bad)))
    return cases


@st.composite
def append_plans(draw: st.DrawFn) -> tuple[list[int], bytes]:
    """A log grown by a random sequence of batch appends, total size 0..300."""
    total = draw(st.integers(min_value=0, max_value=300))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=total), max_size=12)))
    batches = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
    salt = draw(st.binary(min_size=0, max_size=8))
    return batches, salt


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=append_plans(), data=st.data())
def test_random_append_sequences(plan: tuple[list[int], bytes], data: st.DataObject) -> None:
    batches, salt = plan
    total = sum(batches)
    hashes = [leaf_hash(d) for d in distinct_leaves(total, salt)]
    roots = [root_from_leaf_hashes(hashes[:n]) for n in range(total + 1)]
    # Extra sizes for "wrong size" tampers beyond the log.
    extra = [leaf_hash(d) for d in distinct_leaves(total + 1, b"beyond" + salt)]
    roots_ext = roots + [root_from_leaf_hashes(hashes + extra[:k]) for k in range(1, total + 2)]

    store = Store()
    acc = MerkleAccumulator()
    size = 0
    for batch in batches:
        frontier = {i: store.nodes[i] for i in frontier_ids(size)}
        store.add(new_perfect_nodes(size, hashes[size : size + batch], frontier))
        for h in hashes[size : size + batch]:
            acc.append(h)
            assert acc.root() == roots[acc.size]
        size += batch
        assert root_hash(size, store.fetch) == roots[size]
    assert len(store.nodes) == perfect_node_count(total)

    if total == 0:
        assert acc.root() == EMPTY_ROOT
        return

    indices = data.draw(st.lists(st.integers(0, total - 1), min_size=1, max_size=4))
    for i in indices:
        n = data.draw(st.integers(i + 1, total))
        store.calls = 0
        proof = inclusion_proof(i, n, store.fetch)
        assert store.calls == (1 if n > 1 else 0)
        verify_inclusion(hashes[i], i, n, proof, roots[n])
        for desc, args in inclusion_tampers(hashes, roots_ext, i, n, proof):
            with pytest.raises(ProofError):
                verify_inclusion(*args)
                pytest.fail(f"tampered inclusion proof accepted: {desc}")

    pairs = data.draw(
        st.lists(st.tuples(st.integers(0, total), st.integers(0, total)), min_size=1, max_size=4)
    )
    for a, b in pairs:
        m, n = min(a, b), max(a, b)
        proof = consistency_proof(m, n, store.fetch)
        verify_consistency(m, n, roots[m], roots[n], proof)
        if 0 < m < n:
            for desc, args in consistency_tampers(roots_ext, m, n, proof):
                with pytest.raises(ProofError):
                    verify_consistency(*args)
                    pytest.fail(f"tampered consistency proof accepted: {desc}")


@settings(max_examples=40, deadline=None)
@given(chunks=st.lists(st.integers(0, 70), max_size=8))
def test_accumulator_chunked_matches_reference(chunks: list[int]) -> None:
    hashes = [leaf_hash(d) for d in distinct_leaves(sum(chunks))]
    acc = MerkleAccumulator()
    pos = 0
    rows: list[tuple[int, int, bytes]] = []
    for c in chunks:
        rows.extend(acc.extend_with_nodes(hashes[pos : pos + c]))
        pos += c
        assert acc.size == pos
        assert acc.root() == naive_mth(hashes[:pos])
    assert len(rows) == perfect_node_count(pos)
    assert rows == new_perfect_nodes(0, hashes, {})


@given(
    chunks=st.lists(st.integers(0, 70), max_size=8),
    picks=st.lists(st.floats(0, 1), min_size=0, max_size=4),
)
def test_extend_roots_gives_the_root_at_every_size_asked(
    chunks: list[int], picks: list[float]
) -> None:
    """The verifier's level-by-level append: roots at sizes inside each chunk, and the state it
    leaves (size, frontier, root), are those of the leaf-by-leaf accumulator."""
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(sum(chunks))]
    acc, reference, done = MerkleAccumulator(), MerkleAccumulator(), 0
    for count in chunks:
        sizes = sorted({done + round(p * count) for p in picks})
        roots = acc.extend_roots(hashes[done : done + count], sizes)
        assert roots == {size: root_from_leaf_hashes(hashes[:size]) for size in sizes}
        reference.extend(hashes[done : done + count])
        done += count
        assert (acc.size, acc.frontier(), acc.root()) == (
            reference.size, reference.frontier(), reference.root()
        )  # fmt: skip


def test_extend_roots_refuses_sizes_outside_the_chunk_and_bad_hashes() -> None:
    acc = MerkleAccumulator()
    acc.extend([leaf_hash(b"a")] * 3)
    with pytest.raises(ValueError, match="outside"):
        acc.extend_roots([leaf_hash(b"b")], [2])
    with pytest.raises(ValueError, match="32 bytes"):
        acc.extend_roots([b"short"], [])
    assert acc.size == 3
