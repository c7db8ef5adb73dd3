"""Lists of patients: search, keyset pages and charts shared from other hospitals.

Which patients a user may see is records.access's rule (`patient_visible_q`, an EXISTS over
the live grants); this module only finds, orders and pages them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from ledger.models import Event
from portal.records import search_tokens
from portal.records.access import emergency_q, patient_visible_q, visible_patients
from portal.records.crypto import blind_index
from portal.records.models import Patient, PatientSearchToken
from portal.tenancy.models import Hospital

SHARED_LIMIT = 200


def patient_list_for_user(*, user: User, hospital: Hospital, query: str = "") -> QuerySet[Patient]:
    """Visible patients of the hospital matching `query` (see `_search`)."""
    return _search(Patient.objects.filter(patient_visible_q(user=user), hospital=hospital),
                   hospital=hospital, query=query)  # fmt: skip


def _search(patients: QuerySet[Patient], *, hospital: Hospital, query: str) -> QuerySet[Patient]:
    """Patients matching a search as people type it, through keyed tokens only.

    A whole MRN, family name, given name or "given family" (the blind indexes on Patient);
    or every word of the query ("Silva, Tom", "tom silva", "Sil", "SM-0") is the start of
    a part of the given or family name, or of the MRN, of 3 characters or more (a shorter
    word: a whole name part) (PatientSearchToken, search_tokens)."""
    query = " ".join(query.split())
    if query:
        token = partial(blind_index, hospital_id=hospital.pk)
        match = (
            Q(mrn_index=token(query, purpose="mrn"))
            | Q(family_name_index=token(query, purpose="family_name"))
            | Q(given_name_index=token(query, purpose="given_name"))
        )
        if " " in query:
            given, family = query.rsplit(" ", 1)
            match |= Q(
                given_name_index=token(given, purpose="given_name"),
                family_name_index=token(family, purpose="family_name"),
            )
        words = _words_q(query, hospital=hospital)
        if words is not None:
            match |= words
        patients = patients.filter(match)
    return patients.order_by("-id")


def _has_token(tokens: list[str]) -> Q:
    # IN (subquery): the planner semi-joins the token index, one probe per typed word.
    return Q(pk__in=PatientSearchToken.objects.filter(token__in=tokens).values("patient_id"))


def _words_q(query: str, *, hospital: Hospital) -> Q | None:
    """Every word matches a name part or the MRN by prefix; None if no word can match."""
    every: Q | None = None
    for word in search_tokens.query_words(query):
        alternatives: list[Q] = []
        parts = search_tokens.word_name_tokens(word, hospital_id=hospital.pk)
        if parts:
            name = Q()
            for tokens in parts:
                name &= _has_token(tokens)
            alternatives.append(name)
        mrn = search_tokens.word_mrn_token(word, hospital_id=hospital.pk)
        if mrn is not None:
            alternatives.append(_has_token([mrn]))
        if not alternatives:
            continue  # punctuation only: it narrows nothing
        this = alternatives[0]
        for other in alternatives[1:]:
            this |= other
        every = this if every is None else every & this
    return every


def patient_ids_by_mrn(*, hospital_ids: Sequence[int], term: str) -> QuerySet[Patient, Any]:
    """Patients of these hospitals whose MRN is `term` or starts with it (3 characters or
    more), as a queryset of ids (for `patient_id__in`). The admin's lists search with it;
    who may see the rows it finds is the caller's queryset's business."""
    term = " ".join(term.split())
    if not term or not hospital_ids:
        return Patient._base_manager.none().values("pk")
    exact = [blind_index(term, hospital_id=h, purpose="mrn") for h in hospital_ids]
    match = Q(mrn_index__in=exact)
    prefixes = [
        t for h in hospital_ids
        if (t := search_tokens.word_mrn_token(term, hospital_id=h)) is not None
    ]  # fmt: skip
    if prefixes:
        match |= _has_token(prefixes)
    return Patient._base_manager.filter(match, hospital_id__in=list(hospital_ids)).values("pk")


@dataclass
class PatientPage:
    """One page of a keyset-paginated list, newest registrations first.

    Keyset (id cursor) paging instead of LIMIT/OFFSET with a total count: the cost of a page
    does not grow with the hospital's size or the page's depth.
    """

    patients: list[Patient]
    newer: int | None  # pass as ?after= for the previous (newer) page
    older: int | None  # pass as ?before= for the next (older) page


def patient_page_for_user(
    *,
    user: User,
    hospital: Hospital,
    query: str = "",
    before: int | None = None,
    after: int | None = None,
    size: int = 25,
) -> PatientPage:
    """One page of visible patients.

    Candidates are taken in windows of the hospital's (searched) patients in id order, and
    only the window is checked against the grants: the planner then probes the grants per
    row instead of hashing every grant of the hospital for each page. A window rarely holds
    too few visible patients (restricted charts); then the next one is read.
    """
    candidates = _search(Patient.objects.filter(hospital=hospital), hospital=hospital, query=query)
    older_first = after is None
    cursor = before if older_first else after
    window = size * 4
    rows: list[Patient] = []
    exhausted = False
    while len(rows) <= size and not exhausted:
        ordered = candidates.order_by("-id" if older_first else "id")
        if cursor is not None:
            ordered = (
                ordered.filter(pk__lt=cursor) if older_first else ordered.filter(pk__gt=cursor)
            )
        ids = list(ordered.values_list("id", flat=True)[:window])
        exhausted = len(ids) < window
        if not ids:
            break
        cursor = ids[-1]
        visible = patient_visible_q(user=user, among=ids)
        found = Patient.objects.filter(visible, pk__in=ids).order_by("-id" if older_first else "id")
        rows.extend(found[: size + 1 - len(rows)])
    more = len(rows) > size
    rows = rows[:size]
    if not older_first:
        rows.reverse()
    # Is there a page on the other side? One cheap look at the nearest window.
    other_side = False
    if rows and (before is not None or after is not None):
        edge = rows[0].pk if older_first else rows[-1].pk
        near = candidates.order_by("id" if older_first else "-id")
        near = near.filter(pk__gt=edge) if older_first else near.filter(pk__lt=edge)
        near_ids = list(near.values_list("id", flat=True)[:window])
        other_side = bool(near_ids) and (
            len(near_ids) == window
            or Patient.objects.filter(
                patient_visible_q(user=user, among=near_ids), pk__in=near_ids
            ).exists()
        )
    newer, older = (other_side, more) if older_first else (more, other_side)
    return PatientPage(
        patients=rows,
        newer=rows[0].pk if rows and newer else None,
        older=rows[-1].pk if rows and older else None,
    )


def patients_shared_with_user(*, user: User, exclude_hospital: Hospital) -> list[Patient]:
    """Charts of other hospitals the user may open now (consents, break-glass), newest
    first, each with `emergency_access` (a break-glass grant: flagged wherever it appears)."""
    return list(
        visible_patients(user=user)
        .exclude(hospital=exclude_hospital)
        .annotate(emergency_access=emergency_q(user=user))
        .select_related("hospital")
        .order_by("-id")[:SHARED_LIMIT]
    )


RECENT_LIMIT = 8
# The user's latest chart reads looked at: enough for RECENT_LIMIT distinct charts unless
# they opened a handful over and over; bounded, so the cost does not grow with their history.
RECENT_SCAN = 200


def patients_recently_opened(*, user: User, limit: int = RECENT_LIMIT) -> list[Patient]:
    """The charts this user opened lately, newest first, that they may still open.

    Read from their own `chart.read` events (the ledger's outbox, by actor and time: one
    index range), then passed through the one access rule (`visible_patients`), so a revoked
    consent, an ended break-glass or a restriction drops a chart from the list. Two queries
    whatever the number of charts; each row carries `emergency_access`."""
    recent = (
        Event.objects.filter(actor_id=user.pk, kind="chart.read", patient_id__isnull=False)
        .order_by("-recorded_at")
        .values_list("patient_id", flat=True)[:RECENT_SCAN]
    )
    order: list[int] = [pk for pk in dict.fromkeys(recent) if pk is not None]
    if not order:
        return []
    rows = (
        visible_patients(user=user)
        .filter(pk__in=order)
        .annotate(emergency_access=emergency_q(user=user))
        .select_related("hospital")
    )
    by_id: dict[int, Patient] = {p.pk: p for p in rows}
    return [by_id[pk] for pk in order if pk in by_id][:limit]
