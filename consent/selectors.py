"""Reads for consents, requests, proxies, notices and "who accessed my records".

Every function is filtered by the signed-in account (the patient who owns the registration,
the requester, the proxy); `access_*` helpers fetch one row and authorize in one step,
answering 404 for missing and forbidden alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.http import Http404

from consent.models import AccessRequest, Consent, Notification, ProxyGrant
from ledger import verifier
from ledger.keys import log_signer
from ledger.models import ACCESS_KINDS, Event
from ledger.selectors import receipt_for_event
from portal.records.models import Patient
from portal.tenancy.models import Department, Hospital


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None


# -- Patient side ------------------------------------------------------------------------


def consents_for_owner(*, user: AbstractBaseUser) -> list[Consent]:
    """Every consent the account ever gave, newest first (history included)."""
    return list(
        Consent.objects.filter(patient__user=user)
        .select_related(
            "patient__hospital", "grantee_hospital", "grantee_department__hospital", "grantee_user"
        )
        .prefetch_related("restricted_notes")
        .order_by("-created_at", "-id")
    )


def access_consent(user: AbstractBaseUser, consent_id: Any) -> Consent:
    row_uuid = _uuid(consent_id)
    consent = (
        Consent.objects.filter(row_uuid=row_uuid, patient__user=user).first() if row_uuid else None
    )
    if consent is None or not user.is_authenticated:
        raise Http404("No such consent.")
    return consent


def access_requests_for_owner(*, user: AbstractBaseUser) -> list[AccessRequest]:
    return list(
        AccessRequest.objects.filter(patient__user=user)
        .select_related("requester", "requester_hospital", "patient__hospital", "consent")
        .order_by("-created_at", "-id")[:100]
    )


def access_access_request(user: AbstractBaseUser, request_id: Any) -> AccessRequest:
    row_uuid = _uuid(request_id)
    request = (
        AccessRequest.objects.filter(row_uuid=row_uuid, patient__user=user)
        .select_related("patient", "requester")
        .first()
        if row_uuid and user.is_authenticated
        else None
    )
    if request is None:
        raise Http404("No such request.")
    return request


def proxy_grants_given(*, user: AbstractBaseUser) -> list[ProxyGrant]:
    return list(ProxyGrant.objects.filter(grantor=user).select_related("proxy"))


def proxy_grants_received(*, user: AbstractBaseUser) -> list[ProxyGrant]:
    """Grants to this account that are in force now (an ended one shows nothing)."""
    return [
        g
        for g in ProxyGrant.objects.filter(proxy=user, status=ProxyGrant.Status.ACTIVE)
        .select_related("grantor")
        .order_by("-created_at")
        if g.state == ProxyGrant.Status.ACTIVE
    ]


def access_proxy_grant(user: AbstractBaseUser, grant_id: Any) -> ProxyGrant:
    row_uuid = _uuid(grant_id)
    grant = (
        ProxyGrant.objects.filter(Q(grantor=user) | Q(proxy=user), row_uuid=row_uuid).first()
        if row_uuid and user.is_authenticated
        else None
    )
    if grant is None:
        raise Http404("No such proxy access.")
    return grant


def registrations_via_proxy(*, user: AbstractBaseUser, grant: ProxyGrant) -> list[Patient]:
    """The grantor's registrations a live proxy grant lets this account see."""
    if grant.proxy_id != user.pk or grant.state != ProxyGrant.Status.ACTIVE:
        return []
    return list(
        Patient._base_manager.filter(user_id=grant.grantor_id)
        .select_related("hospital")
        .order_by("hospital__name")
    )


def notifications_for(*, user: AbstractBaseUser, limit: int = 10) -> list[Notification]:
    return list(Notification.objects.filter(user=user)[:limit])


@dataclass
class AccessEntry:
    event: Event
    hospital: str  # where the reader read from (the hospital they acted in)
    chart_hospital: str  # whose records: the registration's hospital
    actor: str
    purpose: str
    break_glass: bool
    what: str


PURPOSE_LABELS = {"TREAT": "Treatment", "ETREAT": "Emergency treatment"}


def access_log_for_owner(
    *, user: AbstractBaseUser, patients: list[Patient], limit: int = 200
) -> list[AccessEntry]:
    """Who opened my records: staff reads and break-glass, from the ledger's events, for the
    account's own registrations only; one query whatever the number of rows."""
    charts = {p.pk: p.hospital for p in patients if p.user_id == user.pk}
    ids = list(charts)
    events = (
        Event.objects.filter(patient_id__in=ids, kind__in=ACCESS_KINDS)
        .select_related("actor", "hospital", "actor_hospital")
        .order_by("-recorded_at", "-id")[:limit]
    )
    entries = []
    for event in events:
        attrs = event.attrs or {}
        flagged = event.kind == "breakglass.opened" or bool(attrs.get("break_glass"))
        what = {
            "chart.read": "Opened your chart",
            "record.read": f"Opened a record ({attrs.get('record_type') or 'record'})",
            "document.read": "Downloaded a document",
            "breakglass.opened": "Used emergency access",
        }[event.kind]
        actor = event.actor
        label = PURPOSE_LABELS.get(attrs.get("purpose") or "")
        if label is None:
            label = "Emergency treatment" if flagged else "Treatment"
        # A read belongs to the chart's hospital and names the reader's; an older read names
        # one hospital only, the one it was recorded under: the reader's.
        reader_hospital = event.actor_hospital or event.hospital
        entries.append(
            AccessEntry(
                event=event,
                hospital=reader_hospital.name,
                chart_hospital=charts[event.patient_id].name,
                actor=(actor.get_full_name() or actor.get_username()) if actor else "system",
                purpose=label,
                break_glass=flagged,
                what=what,
            )
        )
    return entries


def events_about(*, objects: list[Any]) -> dict[str, list[Event]]:
    """Ledger events whose subject is one of these rows (consents, requests, proxies), by
    the row's uuid, oldest first; one query."""
    by_type: dict[str, list[str]] = {}
    for obj in objects:
        by_type.setdefault(obj._meta.label_lower, []).append(str(obj.row_uuid))
    if not by_type:
        return {}
    q = Q()
    for subject_type, ids in by_type.items():
        q |= Q(subject_type=subject_type, subject_id__in=ids)
    found: dict[str, list[Event]] = {}
    for event in Event.objects.filter(q).order_by("recorded_at", "id"):
        found.setdefault(event.subject_id, []).append(event)
    return found


@dataclass
class Verification:
    ok: bool
    message: str
    size: int | None = None
    index: int | None = None


def event_verify(*, event: Event) -> Verification:
    """Check an event's inclusion proof against the latest signed checkpoint, with the
    standalone verifier's own code and the log's public key."""
    receipt = receipt_for_event(event=event)
    if receipt is None:
        return Verification(False, "Not anchored yet: the ledger takes a few seconds. Try again.")
    key = verifier.load_verifier_key(log_signer().vkey())
    try:
        result = verifier.verify_receipt(receipt, key)
    except verifier.VerificationError as exc:
        return Verification(False, f"Verification FAILED: {exc}")
    return Verification(
        True,
        f"Verified: entry {result.index} is included in the signed checkpoint of size "
        f"{result.size}.",
        size=result.size,
        index=result.index,
    )


def consents_for_patient(*, patient: Patient) -> list[Consent]:
    """Every consent on a registration the caller already opened (access_patient)."""
    return list(
        Consent.objects.filter(patient=patient)
        .select_related("grantee_hospital", "grantee_department__hospital", "grantee_user")
        .order_by("created_at", "id")
    )


def consent_by_uuid(*, consent_id: Any) -> Consent | None:
    """Lookup only: the caller must then open the consent's chart (access_patient)."""
    row_uuid = _uuid(consent_id)
    return Consent.objects.filter(row_uuid=row_uuid).first() if row_uuid else None


# -- Staff side --------------------------------------------------------------------------


def access_requests_by_user(*, user: AbstractBaseUser) -> list[AccessRequest]:
    """The requester's own requests; unmatched ones look like any pending one."""
    return list(
        AccessRequest.objects.filter(requester=user)
        .select_related("requester_hospital", "patient__hospital")
        .order_by("-created_at", "-id")[:100]
    )


def consent_grantee_choices() -> dict[str, QuerySet]:
    """What a patient may name as grantee: hospitals, departments, practitioners."""
    from django.contrib.auth import get_user_model

    from portal.tenancy.models import CLINICAL_ROLES, Membership

    clinician_ids = Membership._base_manager.filter(is_active=True, role__in=CLINICAL_ROLES).values(
        "user_id"
    )
    return {
        "hospitals": Hospital.objects.order_by("name"),
        "departments": Department.objects.select_related("hospital").order_by(
            "hospital__name", "name"
        ),
        "practitioners": get_user_model()
        ._default_manager.filter(pk__in=clinician_ids, is_active=True)
        .order_by("last_name", "username"),
    }


def notifications_unread(*, user: AbstractBaseUser) -> QuerySet:
    return Notification.objects.filter(user=user, read_at__isnull=True)
