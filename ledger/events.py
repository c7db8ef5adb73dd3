"""Recording events: the transactional outbox. `event_record` is the only writer of Event rows.

An event says what happened to which subject, by whom, in which hospital: ids, codes and the
keyed digest of the subject's canonical content (see ledger.subjects), never PHI. It is
written in the caller's transaction, so a change and its event commit or roll back together;
anchoring is asked for after the commit (ledger.anchoring).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from ledger import subjects
from ledger.anchoring import anchor_after_commit
from ledger.models import Event

AttrValue = str | int | bool | None
Ref = models.Model | int | None  # a row or its primary key

_ATTR_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Attribute values are codes and ids, never free text: nothing here can carry PHI.
_ATTR_VALUE = re.compile(r"^[A-Za-z0-9_.:\-]{0,64}$")
_KIND = re.compile(r"^[a-z][a-z0-9_.\-]{0,63}$")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class LedgerInputError(ValueError):
    """An event was described with something other than ids, codes and digests."""


def _clean_attrs(attrs: Mapping[str, Any] | None) -> dict[str, AttrValue]:
    clean: dict[str, AttrValue] = {}
    for key, value in (attrs or {}).items():
        if not _ATTR_KEY.match(key):
            raise LedgerInputError(f"ledger attribute name {key!r} is not allowed")
        if (
            value is None
            or isinstance(value, bool | int)
            or (isinstance(value, str) and _ATTR_VALUE.match(value))
        ):
            clean[key] = value
        else:
            raise LedgerInputError(f"ledger attribute {key!r} must be an id or a code")
    return clean


def canonical_leaf(
    *,
    event_id: uuid.UUID,
    kind: str,
    hospital_id: int | None,
    subject_type: str,
    subject_id: str,
    patient_id: int | None,
    actor_id: int | None,
    recorded_at: datetime,
    digest: str,
    attrs: Mapping[str, AttrValue],
    actor_hospital_id: int | None = None,
    version: int = subjects.KEYED_VERSION,
) -> bytes:
    """The bytes a log entry commits to. Computed once, stored, never re-serialized.

    "v" is the leaf format, which says how "digest" was computed (ledger.subjects: 1 an
    unkeyed SHA-256, 2 keyed with the digest key of "hospital"); every new leaf is 2, and
    `version=1` rebuilds the bytes of an older leaf. "actor_hospital" (the hospital the
    actor acted in, for reads: the reader's, while "hospital" is the chart's) is present only
    when set, so every leaf written before it existed is still exactly what this function
    writes for such an event.
    """
    if version not in (subjects.LEGACY_VERSION, subjects.KEYED_VERSION):
        raise LedgerInputError(f"leaf format {version!r} is unknown")
    doc: dict[str, Any] = {
        "v": version,
        "event": str(event_id),
        "kind": kind,
        "hospital": hospital_id,
        "subject": f"{subject_type}:{subject_id}",
        "patient": patient_id,
        "actor": actor_id,
        "time": recorded_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "digest": digest,
        "attrs": dict(attrs),
    }
    if actor_hospital_id is not None:
        doc["actor_hospital"] = actor_hospital_id
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _pk(value: Ref) -> int | None:
    if value is None:
        return None
    return int(value.pk if isinstance(value, models.Model) else value)


def event_record(
    *,
    kind: str,
    hospital: Ref,
    subject: models.Model | tuple[str, str | int],
    actor: User | AnonymousUser | None,
    patient: Ref = None,
    attrs: Mapping[str, AttrValue] | None = None,
    actor_hospital: Ref = None,
    digest: str | None = None,
    subject_is_new: bool = False,
) -> Event:
    """Record one pending event, inside the caller's transaction (the transactional outbox).

    `hospital` is the hospital the event belongs to (for a read: the chart's);
    `actor_hospital` the one the actor acted in, when that is a fact of the event (for a
    read: the reader's membership, which may be another hospital's). `subject` is a
    registered model instance (its digest is computed here) or a (type, id) pair with its
    `digest`, which must be keyed: `ledger.subjects.digest_content(..., hospital_id=hospital)`
    (the leaf says format 2, and verify_ledger re-digests under the event's hospital). Only
    ids, codes and digests reach the ledger (LedgerInputError otherwise).

    `subject_is_new`: the subject is a new, unsaved row, written here together with its
    event, atomically: as one statement on PostgreSQL (a data-modifying WITH), in a
    transaction elsewhere. Its ledger key (ledger.subjects.register's `key`) must be set
    before the INSERT, and its digest must not cover the primary key.

    Precondition: called in the transaction of the change it describes (outside one, the
    INSERT commits on its own at once: a read's event is then durable before the read is
    answered). Anchoring is enqueued once that transaction commits.
    """
    if not _KIND.match(kind):
        raise LedgerInputError(f"event kind {kind!r} is not a valid code")
    hospital_id, patient_id, actor_hospital_id = _pk(hospital), _pk(patient), _pk(actor_hospital)
    if isinstance(subject, models.Model):
        if subject_is_new and subjects.key_field(subject._meta.label_lower) == "pk":
            raise TypeError("a new subject is named by a key set before its INSERT, not its pk")
        subject_type, subject_id = subjects.subject_type(subject), subjects.subject_id(subject)
        if digest is None:
            digest = subjects.digest_of(subject, hospital_id=hospital_id)
    else:
        if subject_is_new:
            raise TypeError("subject_is_new takes a model instance")
        subject_type, subject_id = subject[0], str(subject[1])
    if digest is None or not _DIGEST.fullmatch(digest):
        raise LedgerInputError("digest must be a hex HMAC-SHA256 (subjects.digest_content)")
    actor_id = actor.pk if actor is not None and actor.is_authenticated else None
    clean = _clean_attrs(attrs)
    event_id, now = uuid.uuid4(), timezone.now()
    event = Event(
        event_id=event_id, kind=kind, hospital_id=hospital_id, subject_type=subject_type,
        subject_id=subject_id, patient_id=patient_id, actor_id=actor_id,
        actor_hospital_id=actor_hospital_id, recorded_at=now, digest=digest, attrs=clean,
        leaf=canonical_leaf(
            event_id=event_id, kind=kind, hospital_id=hospital_id, subject_type=subject_type,
            subject_id=subject_id, patient_id=patient_id, actor_id=actor_id, recorded_at=now,
            digest=digest, attrs=clean, actor_hospital_id=actor_hospital_id,
        ),
        status=Event.PENDING,
    )  # fmt: skip
    conn = connections[DEFAULT_DB_ALIAS]
    if not subject_is_new:
        _insert(conn, [event])
    else:
        assert isinstance(subject, models.Model)  # subject_is_new takes one (checked above)
        if conn.vendor == "postgresql":
            _insert(conn, [subject, event])
        else:
            with transaction.atomic(using=conn.alias):
                _insert(conn, [subject])
                _insert(conn, [event])
    anchor_after_commit()
    return event


# -- the INSERT statements ---------------------------------------------------------------
# Built once per model and database and sent through Django's cursor (`connection.cursor()`:
# its error translation, logging and execute wrappers apply). Values are prepared exactly as
# the ORM's insert prepares them: `pre_save` (timestamps, encryption, blind indexes), then
# `get_db_prep_save`. The statement's text never changes, so with server-side binding on
# (DATABASES OPTIONS "server_side_binding", DB_SERVER_SIDE_BINDING) psycopg keeps it
# prepared per connection: the outbox INSERT is on the path of every audited request, and
# compiling it in the ORM cost about as much as the database spent running it.

_INSERTS: dict[tuple[str, tuple[type[models.Model], ...]], tuple[str, list[list[Any]]]] = {}


def _insert(conn: BaseDatabaseWrapper, rows: list[models.Model]) -> None:
    """INSERT the rows (one statement: several through a data-modifying WITH, PostgreSQL
    only) and set their primary keys."""
    if not conn.features.can_return_columns_from_insert:  # e.g. SQLite before 3.35
        for row in rows:
            row.save(force_insert=True, using=conn.alias)
        return
    sql, fields = _insert_statement(conn, tuple(type(row) for row in rows))
    params: list[Any] = []
    for row, row_fields in zip(rows, fields, strict=True):
        values = [f.get_db_prep_save(f.pre_save(row, True), conn) for f in row_fields]
        if any(hasattr(value, "resolve_expression") for value in values):
            raise TypeError("the ledger's INSERT takes values, not database expressions")
        params += values
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        ids = cursor.fetchone()
    for row, pk in zip(rows, ids, strict=True):
        row.pk = pk


def _column(field: models.Field[Any, Any]) -> str:
    """A concrete field's column (`Field.column` is None only for fields without one)."""
    if field.column is None:
        raise TypeError(f"{field} has no column")
    return field.column


def _insert_statement(
    conn: BaseDatabaseWrapper, models_: tuple[type[models.Model], ...]
) -> tuple[str, list[list[Any]]]:
    cached = _INSERTS.get((conn.vendor, models_))
    if cached is not None:
        return cached
    qn = conn.ops.quote_name
    parts, fields = [], []
    for model in models_:
        meta = model._meta
        if meta.parents:
            raise TypeError(f"{model.__name__} inherits a table: it needs the ORM's INSERT")
        row_fields = [f for f in meta.local_concrete_fields if not f.primary_key]
        for f in row_fields:
            # What the ORM's insert would do differently from a plain `%s` per value.
            custom = getattr(f, "get_placeholder", None)
            placeholder = custom(None, None, conn) if custom else "%s"
            if placeholder != "%s" or f.generated or f.has_db_default():
                raise TypeError(f"{model.__name__}.{f.name} needs the ORM's INSERT")
        parts.append(
            f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(_column(f)) for f in row_fields)}) "  # noqa: S608 - names from the models
            f"VALUES ({', '.join(['%s'] * len(row_fields))}) RETURNING {qn(_column(meta.pk))}"
        )
        fields.append(row_fields)
    if len(parts) == 1:
        sql = parts[0]
    else:
        # Names from the models only; every value is a parameter.
        ctes = ", ".join(f"r{i} AS ({part})" for i, part in enumerate(parts))
        ids = ", ".join(
            f"(SELECT {qn(_column(m._meta.pk))} FROM r{i})"  # noqa: S608
            for i, m in enumerate(models_)
        )
        sql = f"WITH {ctes} SELECT {ids}"
    _INSERTS[(conn.vendor, models_)] = (sql, fields)
    return sql, fields
