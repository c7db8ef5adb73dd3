"""Proofs: inclusion and consistency proofs, receipts and checkpoints, read from the log."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import Http404

from ledger import merkle, verifier
from ledger.keys import log_signer
from ledger.models import Checkpoint, Entry, Event, Node


def merkle_nodes_fetch(ids: list[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
    """One raw query for any mix of levels: level-0 hashes live on Entry, higher on Node.

    Raw SQL because building ~20 ORed Q objects per proof cost more than the query itself.
    """
    leaves = [index for level, index in ids if level == 0]
    inner = [(level, index) for level, index in ids if level > 0]
    if not ids:
        return {}
    qn = connection.ops.quote_name
    entry_t, node_t, idx = qn(Entry._meta.db_table), qn(Node._meta.db_table), qn("index")
    # Only table and column names from the models are interpolated; values are parameters.
    parts: list[str] = []
    params: list[Any] = []
    if connection.vendor == "postgresql":
        # Arrays keep the statement text constant; the unnest join probes the unique
        # (level, index) index once per wanted node.
        if leaves:
            parts.append(f"SELECT 0, {idx}, leaf_hash FROM {entry_t} WHERE {idx} = ANY(%s)")  # noqa: S608
            params.append(leaves)
        if inner:
            parts.append(
                f"SELECT n.level, n.{idx}, n.hash FROM unnest(%s::smallint[], %s::bigint[]) "  # noqa: S608
                f"AS w(level, position) JOIN {node_t} n "
                f"ON n.level = w.level AND n.{idx} = w.position"
            )
            params += [[level for level, _ in inner], [index for _, index in inner]]
    else:
        if leaves:
            marks = ", ".join(["%s"] * len(leaves))
            parts.append(f"SELECT 0, {idx}, leaf_hash FROM {entry_t} WHERE {idx} IN ({marks})")  # noqa: S608
            params += leaves
        if inner:
            ors = " OR ".join([f"(level = %s AND {idx} = %s)"] * len(inner))
            parts.append(f"SELECT level, {idx}, hash FROM {node_t} WHERE {ors}")  # noqa: S608
            params += [value for node in inner for value in node]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return {(level, index): bytes(h) for level, index, h in cursor.fetchall()}


def checkpoint_latest() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-size").first()


def checkpoint_by_size(*, size: int) -> Checkpoint:
    checkpoint = Checkpoint.objects.filter(size=size).first()
    if checkpoint is None:
        raise Http404("No checkpoint of that size.")
    return checkpoint


def public_vkey() -> str:
    return log_signer().vkey()


def inclusion_proof_for(*, index: int, size: int) -> list[bytes]:
    return merkle.inclusion_proof(index, size, merkle_nodes_fetch)


def consistency_proof_for(*, old_size: int, new_size: int) -> list[bytes]:
    return merkle.consistency_proof(old_size, new_size, merkle_nodes_fetch)


def receipt_for_event(*, event: Event) -> dict[str, Any] | None:
    """The receipt of an anchored event (None if pending): its inclusion in the smallest
    witnessed checkpoint that holds it, with the witnesses' cosignatures on the checkpoint's
    note; before that is witnessed (or with no witnesses configured), in the latest."""
    from ledger.publication import checkpoint_witnessed, cosigned_note

    row = Entry.objects.filter(event_id=event.pk).values_list("index", "leaf").first()
    if row is None:
        return None
    index, leaf = row
    checkpoint = checkpoint_witnessed(covering=index)
    if checkpoint is None:  # past the scan's bound (a witness long down), or none yet
        latest_witnessed = checkpoint_witnessed()
        if latest_witnessed is not None and latest_witnessed.size > index:
            checkpoint = latest_witnessed
        else:
            checkpoint = checkpoint_latest()
    if checkpoint is None or checkpoint.size <= index:
        return None
    proof = inclusion_proof_for(index=index, size=checkpoint.size)
    return verifier.receipt_from_parts(
        index,
        bytes(leaf),
        proof,
        cosigned_note(checkpoint),
        extra={"event_id": str(event.event_id), "kind": event.kind},
    )


def consistency_document(*, old_size: int, new_size: int) -> dict[str, Any]:
    if old_size > new_size:
        raise Http404("The old checkpoint must not be larger than the new one.")
    old = checkpoint_by_size(size=old_size)
    new = checkpoint_by_size(size=new_size)
    proof = consistency_proof_for(old_size=old_size, new_size=new_size)
    return verifier.consistency_from_parts(old.note, new.note, proof)
