"""Lists of patients: search, keyset pages and charts shared from other hospitals.

Which patients a user may see is records.access's rule (`patient_visible_q`, an EXISTS over
the live grants); this module only finds, orders and pages them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from portal.records.access import emergency_q, patient_visible_q, visible_patients
from portal.records.crypto import blind_index
from portal.records.models import Patient
from portal.tenancy.models import Hospital

SHARED_LIMIT = 200


def patient_list_for_user(*, user: User, hospital: Hospital, query: str = "") -> QuerySet[Patient]:
    """Visible patients of the hospital; `query` matches an MRN, a family name, a given name
    or "given family" exactly (normalized for case and spacing) through blind indexes."""
    return _search(Patient.objects.filter(patient_visible_q(user=user), hospital=hospital),
                   hospital=hospital, query=query)  # fmt: skip


def _search(patients: QuerySet[Patient], *, hospital: Hospital, query: str) -> QuerySet[Patient]:
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
        patients = patients.filter(match)
    return patients.order_by("-id")


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
