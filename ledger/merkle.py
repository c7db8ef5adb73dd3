"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing, proofs and verification.

This module is deliberately pure Python (standard library only) so that the standalone
receipt verifier (``python -m ledger.verifier``) can run on a patient's or auditor's machine
without Django.

Storage model
-------------
The server stores every *perfect subtree hash* of the log, addressed by ``(level, index)``:
node ``(l, i)`` is the Merkle Tree Hash of leaves ``[i * 2**l, (i + 1) * 2**l)``, so level 0
holds the leaf hashes.  A perfect node never changes once all its leaves exist, which is what
makes the table append-only.  Every hash that appears in an RFC 9162 proof is the MTH of a
range that decomposes, left to right, into a few such perfect nodes (at most one per level), so
proofs are assembled from a single batched fetch of ``O(log n)`` stored rows and the tree is
never rebuilt.

Only RFC 9162 section 2.1 is implemented, with SHA-256:

* ``MTH({}) = SHA-256()``
* ``MTH({d0}) = SHA-256(0x00 || d0)``
* ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` with ``k`` the largest power of
  two smaller than ``n``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleAccumulator",
    "MissingNodeError",
    "NodeFetcher",
    "NodeId",
    "ProofError",
    "consistency_proof",
    "consistency_proof_layout",
    "consistency_proof_ranges",
    "frontier_ids",
    "inclusion_proof",
    "inclusion_proof_layout",
    "inclusion_proof_ranges",
    "leaf_hash",
    "needed_nodes_for_consistency",
    "needed_nodes_for_inclusion",
    "new_perfect_nodes",
    "node_hash",
    "perfect_node_count",
    "root_from_frontier",
    "root_from_leaf_hashes",
    "root_hash",
    "subtree_hash",
    "subtree_nodes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

NodeId = tuple[int, int]
"""``(level, index)`` of a perfect subtree: leaves ``[index << level, (index+1) << level)``.

Level 0 index ``i`` is leaf hash ``i``."""

NodeFetcher = Callable[[list[NodeId]], Mapping[NodeId, bytes]]
"""Given a list of node ids, fetches their stored perfect-subtree hashes in one round trip
(e.g. one SQL query)."""

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

EMPTY_ROOT: bytes = _sha256(b"").digest()
"""MTH of the empty tree, ``SHA-256()`` (RFC 9162 section 2.1.1)."""


class ProofError(ValueError):
    """A Merkle proof failed to verify; the message says why in plain words."""


class MissingNodeError(LookupError):
    """The node store did not return a perfect-subtree hash that a proof needs.

    This means the store is incomplete or the requested tree size exceeds what was stored; it
    is a server-side integrity problem, not a client verification failure.
    """

    def __init__(self, missing: Sequence[NodeId]) -> None:
        self.missing = list(missing)
        shown = ", ".join(f"(level {lvl}, index {idx})" for lvl, idx in self.missing[:5])
        more = f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else ""
        super().__init__(f"node store is missing perfect subtree hashes: {shown}{more}")


# --------------------------------------------------------------------------------------------
# Hashing primitives
# --------------------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """Return ``SHA-256(0x00 || data)``, the RFC 9162 hash of one leaf's canonical bytes.

    The 0x00 / 0x01 prefixes give domain separation, so an interior node can never be passed
    off as a leaf (second-preimage protection).
    """
    return _sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return ``SHA-256(0x01 || left || right)``, the RFC 9162 interior node hash."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _split_point(width: int) -> int:
    """Largest power of two strictly smaller than ``width`` (``width >= 2``): the MTH split."""
    return 1 << ((width - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Compute MTH over a list of *leaf hashes* (not leaf data); ``EMPTY_ROOT`` when empty.

    Works level by level: pair up neighbours and carry a lone last node up unchanged.  That is
    exactly MTH's "largest power of two smaller than n" split, without recursion, so a million
    leaves cost a million ``node_hash`` calls and nothing else.
    """
    level = list(hashes)
    if not level:
        return EMPTY_ROOT
    sha = _sha256
    while len(level) > 1:
        carry = level[-1] if len(level) & 1 else None
        level = [
            sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if carry is not None:
            level.append(carry)
    return level[0]


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Fold left-to-right subtree hashes of decreasing size into one MTH, right to left.

    For a range that splits into perfect subtrees ``P0, P1, ..., Pk`` (sizes strictly
    decreasing) MTH equals ``node(P0, node(P1, ... node(Pk-1, Pk)))`` because each ``Pi`` is the
    left part of MTH's largest-power-of-two split of the remaining range.
    """
    result = hashes[-1]
    for h in reversed(hashes[:-1]):
        result = _sha256(_NODE_PREFIX + h + result).digest()
    return result


# --------------------------------------------------------------------------------------------
# Node addressing
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return value


def subtree_nodes(start: int, end: int) -> list[NodeId]:
    """Perfect aligned subtrees, left to right and of decreasing size, covering ``[start, end)``.

    This is only defined for the ranges that occur in RFC 9162 proofs: ``start`` must be a
    multiple of the largest power of two that is ``<= end - start`` (then MTH's first split is
    itself a stored perfect node, and so is every later piece).  Anything else raises
    ``ValueError``, because folding some other decomposition would silently give a hash that
    is not MTH(D[start:end]).
    """
    _check_int("start", start)
    _check_int("end", end)
    if end <= start:
        raise ValueError(f"empty or inverted range [{start}, {end})")
    top = 1 << ((end - start).bit_length() - 1)
    if start % top:
        raise ValueError(
            f"range [{start}, {end}) is not aligned: start must be a multiple of {top} "
            "for its MTH to be a fold of stored perfect subtrees"
        )
    nodes: list[NodeId] = []
    pos = start
    while pos < end:
        level = (end - pos).bit_length() - 1
        nodes.append((level, pos >> level))
        pos += 1 << level
    return nodes


def subtree_hash(start: int, end: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    """MTH(D[start:end]) from stored perfect subtree hashes (see :func:`subtree_nodes`)."""
    ids = subtree_nodes(start, end)
    missing = [node for node in ids if node not in nodes]
    if missing:
        raise MissingNodeError(missing)
    return _fold([nodes[node] for node in ids])


def frontier_ids(size: int) -> list[NodeId]:
    """The right-edge perfect subtrees of a tree of ``size`` leaves, left to right.

    One node per set bit of ``size``; together they are all an appender needs to know about
    the existing tree, and their fold is the root.
    """
    _check_int("size", size)
    return subtree_nodes(0, size) if size else []


def perfect_node_count(size: int) -> int:
    """How many perfect subtree rows a tree of ``size`` leaves has (``2*size - popcount``)."""
    _check_int("size", size)
    return 2 * size - size.bit_count()


def root_from_frontier(size: int, frontier: Mapping[NodeId, bytes]) -> bytes:
    """Root of a tree of ``size`` leaves from its frontier (see :func:`frontier_ids`)."""
    if size == 0:
        return EMPTY_ROOT
    return subtree_hash(0, size, frontier)


def _fetch_all(fetch: NodeFetcher, ids: list[NodeId]) -> Mapping[NodeId, bytes]:
    """One batched fetch; fail loudly if the store returned anything missing or malformed."""
    if not ids:
        return {}
    got = fetch(ids)
    missing = [node for node in ids if node not in got]
    if missing:
        raise MissingNodeError(missing)
    for node in ids:
        value = got[node]
        if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) != HASH_SIZE:
            raise ValueError(f"node store returned a malformed hash for node {node}")
    return {node: bytes(got[node]) for node in ids}


def _dedupe(groups: Iterable[Iterable[NodeId]]) -> list[NodeId]:
    seen: dict[NodeId, None] = {}
    for group in groups:
        for node in group:
            seen.setdefault(node, None)
    return list(seen)


# --------------------------------------------------------------------------------------------
# Proof layouts (which ranges / nodes a proof consists of)
# --------------------------------------------------------------------------------------------


def _check_index_size(index: int, size: int) -> None:
    _check_int("index", index)
    _check_int("size", size)
    if index >= size:
        raise ValueError(f"leaf index {index} is out of range for a tree of size {size}")


def inclusion_proof_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form RFC 9162 PATH(index, D[0:size]), bottom (leaf side) first."""
    _check_index_size(index, size)
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split_point(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _check_consistency_sizes(old_size: int, new_size: int) -> None:
    _check_int("old_size", old_size)
    _check_int("new_size", new_size)
    if old_size > new_size:
        raise ValueError(f"old size {old_size} is larger than new size {new_size}")


def consistency_proof_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form RFC 9162 PROOF(old_size, D[0:new_size]), in proof order.

    Empty when ``old_size`` is 0 or equal to ``new_size`` (nothing to prove).
    """
    _check_consistency_sizes(old_size, new_size)
    if old_size in (0, new_size):
        return []
    m, start, width, at_left_edge = old_size, 0, new_size, True
    suffix: list[tuple[int, int]] = []
    # Iterative form of SUBPROOF(m, D[start:start+width], b) (RFC 9162 section 2.1.4.1).
    while m != width:
        k = _split_point(width)
        if m <= k:
            suffix.append((start + k, start + width))
            width = k
        else:
            suffix.append((start, start + k))
            start += k
            m -= k
            width -= k
            at_left_edge = False
    if not at_left_edge:
        # The old tree's rightmost subtree is not the whole old tree: the verifier needs it.
        suffix.append((start, start + width))
    suffix.reverse()
    return suffix


def inclusion_proof_layout(index: int, size: int) -> list[list[NodeId]]:
    """For each element of PATH(index, size), the stored nodes whose fold gives it."""
    return [subtree_nodes(a, b) for a, b in inclusion_proof_ranges(index, size)]


def consistency_proof_layout(old_size: int, new_size: int) -> list[list[NodeId]]:
    """For each element of PROOF(old_size, new_size), the stored nodes whose fold gives it."""
    return [subtree_nodes(a, b) for a, b in consistency_proof_ranges(old_size, new_size)]


def needed_nodes_for_inclusion(index: int, size: int) -> list[NodeId]:
    """Every stored node an inclusion proof needs, deduplicated: fetch these in one query."""
    return _dedupe(inclusion_proof_layout(index, size))


def needed_nodes_for_consistency(old_size: int, new_size: int) -> list[NodeId]:
    """Every stored node a consistency proof needs, deduplicated: fetch these in one query."""
    return _dedupe(consistency_proof_layout(old_size, new_size))


# --------------------------------------------------------------------------------------------
# Proof generation from the node store
# --------------------------------------------------------------------------------------------


def _assemble(layout: list[list[NodeId]], fetch: NodeFetcher) -> list[bytes]:
    nodes = _fetch_all(fetch, _dedupe(layout))
    return [_fold([nodes[node] for node in group]) for group in layout]


def inclusion_proof(index: int, size: int, fetch: NodeFetcher) -> list[bytes]:
    """RFC 9162 PATH(index, D[0:size]) using exactly one ``fetch`` call (none for size 1)."""
    return _assemble(inclusion_proof_layout(index, size), fetch)


def consistency_proof(old_size: int, new_size: int, fetch: NodeFetcher) -> list[bytes]:
    """RFC 9162 PROOF(old_size, D[0:new_size]) using at most one ``fetch`` call.

    Returns ``[]`` when ``old_size == new_size`` or ``old_size == 0``: every tree is an
    extension of the empty tree, and a tree is trivially consistent with itself.
    """
    return _assemble(consistency_proof_layout(old_size, new_size), fetch)


def root_hash(size: int, fetch: NodeFetcher) -> bytes:
    """MTH(D[0:size]) from the ``popcount(size)`` frontier nodes, one ``fetch`` call."""
    ids = frontier_ids(size)
    if not ids:
        return EMPTY_ROOT
    return _fold(list(_fetch_all(fetch, ids).values()))


# --------------------------------------------------------------------------------------------
# Appending
# --------------------------------------------------------------------------------------------


class MerkleAccumulator:
    """Streaming Merkle tree builder: O(1) amortised append, O(log n) root at any moment.

    Keeps only the frontier (one perfect subtree hash per set bit of ``size``).  Used by the
    server to compute the new perfect-node rows on append, and by the verifier to recompute
    the root of a full log dump without holding the tree in memory.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        # Frontier hashes, left to right; sizes are the set bits of _size, decreasing.
        self._stack: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, frontier: Mapping[NodeId, bytes]) -> MerkleAccumulator:
        """Resume from an existing tree of ``size`` leaves given its frontier nodes."""
        ids = frontier_ids(size)
        missing = [node for node in ids if node not in frontier]
        if missing:
            raise MissingNodeError(missing)
        acc = cls()
        for node in ids:
            value = bytes(frontier[node])
            if len(value) != HASH_SIZE:
                raise ValueError(f"frontier hash for node {node} is not {HASH_SIZE} bytes")
            acc._stack.append(value)
        acc._size = size
        return acc

    @property
    def size(self) -> int:
        """Number of leaves appended so far (including any resumed-from tree)."""
        return self._size

    def frontier(self) -> dict[NodeId, bytes]:
        """The current frontier nodes, keyed as in :func:`frontier_ids`."""
        return dict(zip(frontier_ids(self._size), self._stack, strict=True))

    def root(self) -> bytes:
        """MTH of everything appended so far (``EMPTY_ROOT`` when nothing was)."""
        if not self._stack:
            return EMPTY_ROOT
        return _fold(self._stack)

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf *hash* (``leaf_hash(data)``, not the data)."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}")
        stack = self._stack
        h = bytes(leaf_hash)
        n = self._size
        # Each trailing 1 bit of the old size is a perfect subtree that now gets a sibling.
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes; the hot loop of the 1M-entry verifier, kept tight."""
        stack = self._stack
        pop = stack.pop
        push = stack.append
        sha = _sha256
        size = self._size
        try:
            for h in leaf_hashes:
                if len(h) != 32:
                    raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(h)}")
                n = size
                while n & 1:
                    h = sha(b"\x01" + pop() + h).digest()
                    n >>= 1
                push(bytes(h))
                size += 1
        finally:
            self._size = size

    def extend_roots(self, leaf_hashes: Sequence[bytes], sizes: Iterable[int]) -> dict[int, bytes]:
        """Append leaf hashes and return the root at each of ``sizes`` (tree sizes from the
        old size to the new one): what checking a log against its checkpoints needs.

        Level by level, one list comprehension per level: the same ``n - 1`` node hashes as
        :meth:`extend`, without a Python loop iteration per leaf (the 1M-entry verifier's
        hot path). A root at any size in between is a fold of at most one node per level.
        """
        base = self._size
        end = base + len(leaf_hashes)
        wanted = list(sizes)
        for size in wanted:
            if not base <= size <= end:
                raise ValueError(f"size {size} is outside [{base}, {end}]")
        if leaf_hashes and set(map(len, leaf_hashes)) != {HASH_SIZE}:
            raise ValueError(f"leaf hashes must be {HASH_SIZE} bytes")
        # The old frontier by level: its nodes are the left siblings the new ones lack.
        old = dict(
            zip(
                [k for k in range(base.bit_length() - 1, -1, -1) if base >> k & 1],
                self._stack,
                strict=True,
            )
        )
        sha = _sha256
        levels: list[tuple[int, list[bytes]]] = []  # per level: first index, its nodes
        nodes, first = [bytes(h) for h in leaf_hashes], base
        while nodes:
            if first & 1:  # bit k of the old size: the old frontier's node completes a pair
                nodes.insert(0, old[len(levels)])
                first -= 1
            levels.append((first, nodes))
            nodes = [
                sha(b"\x01" + nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes) - 1, 2)
            ]
            first >>= 1

        def node(level: int, index: int) -> bytes:
            if level < len(levels):
                start, row = levels[level]
                if start <= index < start + len(row):
                    return row[index - start]
            return old[level]  # a node of the old tree: the old frontier's at this level

        def frontier(size: int) -> list[bytes]:
            return [
                node(k, (size >> k) - 1)
                for k in range(size.bit_length() - 1, -1, -1)
                if size >> k & 1
            ]

        roots = {size: _fold(frontier(size)) if size else EMPTY_ROOT for size in wanted}
        self._stack = frontier(end)
        self._size = end
        return roots

    def append_with_nodes(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash and return the ``(level, index, hash)`` nodes it completed.

        The first returned node is always the leaf itself at level 0.
        """
        return self.extend_with_nodes([leaf_hash])

    def extend_with_nodes(self, leaf_hashes: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """Append leaf hashes; return every perfect node completed, in completion order."""
        out: list[tuple[int, int, bytes]] = []
        for node in self.iter_extend_with_nodes(leaf_hashes):
            out.append(node)
        return out

    def iter_extend_with_nodes(
        self, leaf_hashes: Iterable[bytes]
    ) -> Iterator[tuple[int, int, bytes]]:
        """Generator form of :meth:`extend_with_nodes`, to stream rows into bulk inserts."""
        stack = self._stack
        sha = _sha256
        for leaf in leaf_hashes:
            if len(leaf) != HASH_SIZE:
                raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
            index = self._size
            h = bytes(leaf)
            completed = [(0, index, h)]
            n, level = index, 0
            while n & 1:
                h = sha(b"\x01" + stack.pop() + h).digest()
                n >>= 1
                level += 1
                completed.append((level, index >> level, h))
            stack.append(h)
            self._size = index + 1
            # State is updated before yielding, so a consumer that stops early never leaves
            # a half-appended leaf behind.
            yield from completed


def new_perfect_nodes(
    start_size: int, new_leaf_hashes: Sequence[bytes], frontier: Mapping[NodeId, bytes]
) -> list[tuple[int, int, bytes]]:
    """All ``(level, index, hash)`` perfect nodes completed by appending ``new_leaf_hashes``.

    ``frontier`` must hold at least the nodes named by ``frontier_ids(start_size)``.  Includes
    the level-0 rows for the new leaves themselves.  Nothing already stored is returned, so the
    result can be bulk-inserted as-is into an append-only table.
    """
    acc = MerkleAccumulator.from_frontier(start_size, frontier)
    return acc.extend_with_nodes(new_leaf_hashes)


# --------------------------------------------------------------------------------------------
# Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2)
# --------------------------------------------------------------------------------------------


def _short(h: bytes) -> str:
    return h.hex()[:16] + "..."


def _check_hash(name: str, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ProofError(f"{name} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")
    return value


def _check_proof(proof: Sequence[bytes]) -> list[bytes]:
    if isinstance(proof, (bytes, bytearray, str)):
        raise ProofError("proof must be a sequence of hashes, not a single byte string")
    return [_check_hash(f"proof element {i}", p) for i, p in enumerate(proof)]


def _check_proof_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 0:
        raise ProofError(f"{name} must be non-negative, got {value}")
    return value


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Implements RFC 9162 section 2.1.3.2, preceded by an explicit proof-length check so that a
    failure message says *what* is wrong.  Raises :class:`ProofError`; returns ``None`` when
    the proof is valid.
    """
    leaf = _check_hash("leaf hash", leaf_hash)
    root = _check_hash("root hash", root)
    index = _check_proof_int("leaf index", index)
    size = _check_proof_int("tree size", size)
    path = _check_proof(proof)
    if size == 0:
        raise ProofError("an empty tree (size 0) contains no leaves")
    if index >= size:
        raise ProofError(f"leaf index {index} is out of range for a tree of size {size}")
    expected = len(inclusion_proof_ranges(index, size))
    if len(path) != expected:
        raise ProofError(
            f"inclusion proof has {len(path)} hashes but a proof for leaf {index} in a tree "
            f"of size {size} must have exactly {expected}"
        )
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:  # pragma: no cover - unreachable after the length check; kept per RFC
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # pragma: no cover - unreachable after the length check; kept per RFC
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if not hmac.compare_digest(r, root):
        raise ProofError(
            f"inclusion proof does not lead to the expected root: computed {_short(r)}, "
            f"expected {_short(root)} (the leaf, its index, the proof or the root was altered)"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (new_size, new_root) is an append-only extension of (old_size, old_root).

    Implements RFC 9162 section 2.1.4.2, plus the edge cases the RFC leaves to the caller:
    equal sizes need an empty proof and equal roots; old size 0 needs an empty proof and the
    empty-tree root.  Raises :class:`ProofError`.
    """
    old_root = _check_hash("old root hash", old_root)
    new_root = _check_hash("new root hash", new_root)
    m = _check_proof_int("old tree size", old_size)
    n = _check_proof_int("new tree size", new_size)
    path = _check_proof(proof)
    if m > n:
        raise ProofError(f"old tree size {m} is larger than new tree size {n}: a log never shrinks")
    if m == n:
        if path:
            raise ProofError(f"both trees have size {m}, so the proof must be empty")
        if not hmac.compare_digest(old_root, new_root):
            raise ProofError(
                f"two different roots for the same tree size {m}: "
                f"{_short(old_root)} vs {_short(new_root)} (the log forked)"
            )
        if m == 0 and old_root != EMPTY_ROOT:
            raise ProofError("root of an empty tree must be SHA-256 of the empty string")
        return
    if m == 0:
        if path:
            raise ProofError("consistency with the empty tree needs an empty proof")
        if not hmac.compare_digest(old_root, EMPTY_ROOT):
            raise ProofError("old tree has size 0 but its root is not the empty-tree hash")
        return
    expected = len(consistency_proof_ranges(m, n))
    if len(path) != expected:
        raise ProofError(
            f"consistency proof has {len(path)} hashes but a proof from size {m} to size {n} "
            f"must have exactly {expected}"
        )
    if m & (m - 1) == 0:  # old size is a power of two: the old root is itself a subtree
        path = [old_root, *path]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # pragma: no cover - unreachable after the length check; kept per RFC
            raise ProofError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # pragma: no cover - unreachable after the length check; kept per RFC
        raise ProofError("consistency proof is shorter than the tree is deep")
    if not hmac.compare_digest(fr, old_root):
        raise ProofError(
            f"consistency proof does not reproduce the old root of size {m}: computed "
            f"{_short(fr)}, expected {_short(old_root)}"
        )
    if not hmac.compare_digest(sr, new_root):
        raise ProofError(
            f"consistency proof does not reproduce the new root of size {n}: computed "
            f"{_short(sr)}, expected {_short(new_root)} (history was rewritten or the proof "
            "was altered)"
        )
