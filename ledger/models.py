"""The ledger's tables.

`Event` is the transactional outbox: written in the caller's transaction, then anchored.
`Entry`, `Node` and `Checkpoint` are the log itself and are append-only: the ORM refuses to
update or delete them, and on PostgreSQL triggers refuse UPDATE, DELETE and TRUNCATE.
`LogHead` is the one mutable row: the lock that serializes appenders, so the log never forks.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models

GENESIS_CHAIN_HASH = bytes(32)


class AppendOnlyError(RuntimeError):
    """Something tried to change or remove a ledger row."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only; update refused.")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only; delete refused.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only; update refused.")

    def update_or_create(self, *args, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only; update refused.")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only; save refused.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only; delete refused.")


# What anchoring sets on an event; every other column is a fact, fixed once written.
EVENT_ANCHORING_FIELDS = frozenset({"status", "anchored_at"})


class EventQuerySet(models.QuerySet):
    """An event's facts are fixed once written (so are they in the database: migration
    0006's triggers); only anchoring's columns may be updated, and nothing deleted."""

    def update(self, **kwargs):
        _refuse_facts(self.model, kwargs)
        return super().update(**kwargs)

    def bulk_update(self, objs, fields, batch_size=None):
        _refuse_facts(self.model, fields)
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only; delete refused.")

    def update_or_create(self, *args, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} facts are fixed; update refused.")


def _refuse_facts(model: type[models.Model], fields) -> None:
    changed = set(fields) - EVENT_ANCHORING_FIELDS
    if changed:
        raise AppendOnlyError(
            f"{model.__name__} facts are fixed once written; update of "
            f"{', '.join(sorted(changed))} refused."
        )


class Event(models.Model):
    """An outbox row: what happened, to which subject, by whom; ids and digests only.

    Its facts never change once written: only anchoring sets `status` and `anchored_at`.
    """

    PENDING = 0
    ANCHORED = 1
    STATUS_CHOICES = [(PENDING, "pending"), (ANCHORED, "anchored")]

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=64)
    # The hospital the event belongs to; None for an account's own events that belong to no
    # hospital (a sign-in device of an auditor, say).
    hospital = models.ForeignKey(
        "tenancy.Hospital",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        null=True,
        blank=True,
    )
    subject_type = models.CharField(max_length=64)
    subject_id = models.CharField(max_length=64)
    # The patient the event concerns, if any (for "who accessed my records" and receipts).
    patient_id = models.BigIntegerField(null=True, blank=True)
    # Indexed with the time (ledger_event_actor), not on its own: one index serves the key.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        db_index=False,
    )
    # The hospital the actor acted in (the membership of the read), when it is a fact of the
    # event: a read is recorded under the chart's hospital (`hospital`) and names the reader's
    # here, so each side's admins can find it. In the leaf too ("actor_hospital", only when set).
    actor_hospital = models.ForeignKey(
        "tenancy.Hospital",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        null=True,
        blank=True,
    )
    recorded_at = models.DateTimeField()
    digest = models.CharField(max_length=64)
    attrs = models.JSONField(default=dict, blank=True)
    # The canonical leaf bytes, computed once when the event is recorded.
    leaf = models.BinaryField()
    status = models.PositiveSmallIntegerField(choices=STATUS_CHOICES, default=PENDING)
    anchored_at = models.DateTimeField(null=True, blank=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        # Every index is paid by every audited write (each chart read, each record created),
        # so only reads that exist keep one: anchoring (pending ids, partial: it stays as
        # small as the backlog), receipts (event_id, unique), "who accessed my records"
        # (patient, time), the admin by hospital and time (the chart's, and the reader's for
        # a read), the actor and time (the foreign key's own index, which it replaces: the
        # admin's search by staff member, a clinician's recently opened charts), and the
        # history of one subject (a consent's events, a record's Provenance).
        indexes = [
            models.Index(fields=["id"], condition=models.Q(status=0), name="ledger_event_pending"),
            models.Index(fields=["subject_type", "subject_id"], name="ledger_event_subject"),
            models.Index(fields=["patient_id", "recorded_at"], name="ledger_event_patient"),
            models.Index(fields=["hospital", "recorded_at"], name="ledger_event_hospital"),
            models.Index(
                fields=["actor_hospital", "recorded_at"], name="ledger_event_actor_hospital"
            ),
            models.Index(fields=["actor", "recorded_at"], name="ledger_event_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject_type}:{self.subject_id} ({self.event_id})"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            _refuse_facts(type(self), kwargs.get("update_fields") or ["every field"])
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only; delete refused.")


class Entry(AppendOnlyModel):
    """One log entry per anchored event, at a dense 0-based index."""

    index = models.BigIntegerField(primary_key=True)
    event = models.OneToOneField(Event, on_delete=models.PROTECT, related_name="entry")
    leaf = models.BinaryField()
    leaf_hash = models.BinaryField(max_length=32)  # SHA-256(0x00 || leaf), RFC 9162
    chain_hash = models.BinaryField(max_length=32)  # SHA-256(previous chain_hash || leaf_hash)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "entries"

    def __str__(self) -> str:
        return f"entry {self.index}"


class Node(AppendOnlyModel):
    """A perfect subtree hash at level >= 1 (level 0 is Entry.leaf_hash).

    Node (l, i) covers leaves [i * 2**l, (i + 1) * 2**l); it never changes once complete, so
    any inclusion or consistency proof is assembled from O(log n) rows in one query.
    """

    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField()
    hash = models.BinaryField(max_length=32)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["level", "index"], name="ledger_node_position")
        ]

    def __str__(self) -> str:
        return f"node ({self.level}, {self.index})"


class Checkpoint(AppendOnlyModel):
    """A signed tree head: size, root and time, as a C2SP signed note."""

    size = models.BigIntegerField(unique=True)
    root_hash = models.BinaryField(max_length=32)
    note = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-size"]

    def __str__(self) -> str:
        return f"checkpoint {self.size}"


class LogHead(models.Model):
    """The appenders' lock and running state; derived from Entry, never trusted by verify."""

    size = models.BigIntegerField(default=0)
    chain_hash = models.BinaryField(max_length=32, default=GENESIS_CHAIN_HASH)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"log head at {self.size}"


ACCESS_KINDS = ("chart.read", "record.read", "document.read", "breakglass.opened")


class AccessEventManager(models.Manager.from_queryset(EventQuerySet)):  # type: ignore[misc]
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(kind__in=ACCESS_KINDS)


class AccessEvent(Event):
    """The outbox events that say who opened what (for the admin's audit list)."""

    objects: ClassVar[AccessEventManager] = AccessEventManager()

    class Meta:
        proxy = True
        verbose_name = "access event"

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor_id} ({self.event_id})"


class VerificationRun(models.Model):
    """One run of verify_ledger started from the admin's ledger health page."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Running"
        OK = "ok", "Intact"
        FAILED = "failed", "Findings"
        ERROR = "error", "Error"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Progress of the current pass, written by the progress callback.
    stage = models.CharField(max_length=64, blank=True, default="")
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Report.as_dict() (counts, timings, findings naming entries and subjects by id).
    result = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"verification run {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.OK, self.Status.FAILED, self.Status.ERROR)

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


class Cosignature(AppendOnlyModel):
    """A witness's cosignature (c2sp.org/tlog-cosignature) of one of the log's checkpoints,
    stored once verified against the witness's key: appending `line` to the checkpoint's
    note gives the cosigned checkpoint that receipts and /ledger/checkpoint carry."""

    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.PROTECT, related_name="cosignatures"
    )
    # The witness's name in the configuration (policy) and the key it was verified with: a
    # witness that changes its key later does not make older cosignatures count as its.
    witness = models.CharField(max_length=200)
    vkey = models.CharField(max_length=400)
    # The cosignature's own POSIX timestamp (what it says about when it was made).
    timestamp = models.BigIntegerField()
    line = models.TextField()  # "— <key name> <base64(key id || timestamp || signature)>\n"
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint", "witness", "vkey"], name="ledger_cosignature_once"
            )
        ]
        indexes = [models.Index(fields=["witness", "checkpoint"], name="ledger_cosig_witness")]

    def __str__(self) -> str:
        return f"cosignature by {self.witness} of checkpoint {self.checkpoint_id}"


class WitnessState(models.Model):
    """What the portal knows of one configured witness: the size it last cosigned for this
    log (as it told us), the last error, and when to try again. Derived, mutable state:
    verification asks the witness itself and trusts only signed checkpoints."""

    name = models.CharField(max_length=200, unique=True)
    url = models.CharField(max_length=500)
    vkey = models.CharField(max_length=400)
    size = models.BigIntegerField(default=0)  # the latest size it cosigned (or said it had)
    cosigned_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)  # failures in a row (the back-off)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A refusal (403/404/422): the witness does not accept this log or this history; not
    # retried on every checkpoint (only after STOPPED_RETRY), and named on the health page.
    stopped = models.BooleanField(default=False)
    last_status = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"witness {self.name} (size {self.size})"
