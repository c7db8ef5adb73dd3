"""Reads of the ledger: checkpoints, proofs and receipts, and who may see which event."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models
from django.http import Http404

from ledger import merkle, verifier
from ledger.keys import log_signer
from ledger.models import Checkpoint, Entry, Event, Node


def merkle_nodes_fetch(ids: list[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
    """One query per table: level-0 hashes live on Entry, higher levels on Node."""
    leaves = [index for level, index in ids if level == 0]
    inner = [(level, index) for level, index in ids if level > 0]
    found: dict[merkle.NodeId, bytes] = {}
    if leaves:
        for index, h in Entry.objects.filter(index__in=leaves).values_list("index", "leaf_hash"):
            found[(0, index)] = bytes(h)
    if inner:
        q = models.Q()
        for level, index in inner:
            q |= models.Q(level=level, index=index)
        for level, index, h in Node.objects.filter(q).values_list("level", "index", "hash"):
            found[(level, index)] = bytes(h)
    return found


def checkpoint_latest() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-size").first()


def checkpoint_by_size(*, size: int) -> Checkpoint:
    checkpoint = Checkpoint.objects.filter(size=size).first()
    if checkpoint is None:
        raise Http404("No checkpoint of that size.")
    return checkpoint


def public_vkey() -> str:
    return log_signer().vkey()


def access_event(user: AbstractBaseUser | AnonymousUser, event_id: UUID | str) -> Event:
    """Fetch an event the user may see, or 404 (missing and forbidden look the same).

    Auditors (superusers, signed in with two factors) see every event; hospital admins the
    events of their hospitals; staff the events they caused; patients the events about
    their own registrations.
    """
    from portal.records.selectors import patient_registrations_for_user
    from portal.tenancy.selectors import hospital_ids_administered

    try:
        event = Event.objects.filter(event_id=UUID(str(event_id))).first()
    except ValueError:
        event = None
    if event is None or not user.is_authenticated:
        raise Http404("No such event.")
    verified = getattr(user, "is_verified", lambda: False)()
    if user.is_superuser and verified:
        return event
    if verified and event.hospital_id in hospital_ids_administered(user=user):
        return event
    if event.actor_id is not None and event.actor_id == user.pk:
        return event
    if event.patient_id is not None and event.patient_id in {
        p.pk for p in patient_registrations_for_user(user=user)
    }:
        return event
    raise Http404("No such event.")


def inclusion_proof_for(*, index: int, size: int) -> list[bytes]:
    return merkle.inclusion_proof(index, size, merkle_nodes_fetch)


def consistency_proof_for(*, old_size: int, new_size: int) -> list[bytes]:
    return merkle.consistency_proof(old_size, new_size, merkle_nodes_fetch)


def receipt_for_event(*, event: Event) -> dict[str, Any] | None:
    """The receipt of an anchored event against the latest checkpoint (None if pending)."""
    entry = Entry.objects.filter(event_id=event.pk).only("index", "leaf").first()
    checkpoint = checkpoint_latest()
    if entry is None or checkpoint is None or checkpoint.size <= entry.index:
        return None
    proof = inclusion_proof_for(index=entry.index, size=checkpoint.size)
    return verifier.receipt_from_parts(
        entry.index,
        bytes(entry.leaf),
        proof,
        checkpoint.note,
        extra={"event_id": str(event.event_id), "kind": event.kind},
    )


def consistency_document(*, old_size: int, new_size: int) -> dict[str, Any]:
    if old_size > new_size:
        raise Http404("The old checkpoint must not be larger than the new one.")
    old = checkpoint_by_size(size=old_size)
    new = checkpoint_by_size(size=new_size)
    proof = consistency_proof_for(old_size=old_size, new_size=new_size)
    return verifier.consistency_from_parts(old.note, new.note, proof)
