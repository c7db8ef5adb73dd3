"""Writes of consents, access requests, break-glass and proxy grants.

Each service changes its row, the object permissions it implies (portal.records.grants) and
writes its ledger event in ONE transaction, so a grant and its permissions, or a revocation
and their removal, never exist apart. Notices to people (portal and e-mail) go out after
commit. Only ids and codes reach the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from consent.models import AccessRequest, BreakGlass, Consent, Notification, ProxyGrant, Purpose
from ledger.services import event_record
from portal.records.categories import CATEGORY_CODES, category_codename
from portal.records.grants import (
    chart_grant,
    grant_rows_ended_remove,
    grant_source_remove,
    note_grant_write,
)
from portal.records.models import ClinicalNote, Patient
from portal.records.selectors import patient_by_mrn
from portal.tenancy.models import CLINICAL_ROLES, Department, Hospital, Membership, Role
from portal.tenancy.selectors import department_group, hospital_clinical_group

BREAK_GLASS_DEFAULT = timedelta(hours=4)
REASON_MIN_LENGTH = 10


def _codenames(*, scope_all: bool, categories: Iterable[str]) -> list[str]:
    if scope_all:
        return ["view_patient"]
    categories = sorted(set(categories))
    unknown = set(categories) - CATEGORY_CODES
    if unknown:
        raise ValidationError({"categories": f"Unknown categories: {', '.join(sorted(unknown))}."})
    if not categories:
        raise ValidationError({"categories": "Choose at least one category, or all records."})
    return [category_codename(c) for c in categories]


def _validate_period(start: datetime, end: datetime | None) -> None:
    if end is not None and end <= start:
        raise ValidationError({"period_end": "The end must be after the start."})
    if end is not None and end <= timezone.now():
        raise ValidationError({"period_end": "The end is already in the past."})


def _is_clinician(user: AbstractBaseUser, *, hospital_id: int | None = None) -> bool:
    memberships = Membership._base_manager.filter(
        user=user, is_active=True, role__in=CLINICAL_ROLES
    )
    if hospital_id is not None:
        memberships = memberships.filter(hospital_id=hospital_id)
    return memberships.exists()


def notification_send(
    *, user: AbstractBaseUser, kind: str, text: str, flagged: bool = False
) -> Notification:
    return Notification.objects.create(user=user, kind=kind, text=text[:300], flagged=flagged)


# -- Consent -----------------------------------------------------------------------------


@transaction.atomic
def consent_grant(
    *,
    patient: Patient,
    actor: AbstractBaseUser,
    grantee_kind: str,
    grantee_hospital: Hospital | None = None,
    grantee_department: Department | None = None,
    grantee_user: AbstractBaseUser | None = None,
    scope_all: bool = True,
    categories: Iterable[str] = (),
    restricted_notes: Iterable[ClinicalNote] = (),
    purpose: str = Purpose.TREATMENT,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    access_request: AccessRequest | None = None,
) -> Consent:
    """A patient shares (part of) one registration's records with a hospital, a department
    or one practitioner, for a purpose and a period."""
    if patient.user_id is None or patient.user_id != actor.pk:
        raise ValidationError("Only the patient can share these records.")
    period_start = period_start or timezone.now()
    _validate_period(period_start, period_end)
    codenames = _codenames(scope_all=scope_all, categories=categories)
    if purpose not in Purpose.values:
        raise ValidationError({"purpose": "Choose a purpose from the list."})
    kinds = Consent.GranteeKind
    target = {
        kinds.HOSPITAL: grantee_hospital,
        kinds.DEPARTMENT: grantee_department,
        kinds.PRACTITIONER: grantee_user,
    }
    if grantee_kind not in target or target[grantee_kind] is None:
        raise ValidationError({"grantee": "Choose who may see the records."})
    if grantee_kind == kinds.PRACTITIONER and not _is_clinician(grantee_user):
        raise ValidationError({"grantee": "That person is not a practitioner at any hospital."})
    notes = list(restricted_notes)
    if notes and grantee_kind != kinds.PRACTITIONER:
        raise ValidationError(
            {"restricted_notes": "Restricted notes can be shared with one practitioner only."}
        )
    for note in notes:
        if note.patient_id != patient.pk or not note.restricted:
            raise ValidationError({"restricted_notes": "Choose among your own restricted notes."})
    consent = Consent.objects.create(
        patient=patient, hospital_id=patient.hospital_id, grantee_kind=grantee_kind,
        grantee_hospital=grantee_hospital if grantee_kind == kinds.HOSPITAL else None,
        grantee_department=grantee_department if grantee_kind == kinds.DEPARTMENT else None,
        grantee_user=grantee_user if grantee_kind == kinds.PRACTITIONER else None,
        scope_all=scope_all, categories=[] if scope_all else sorted(set(categories)),
        purpose=purpose, period_start=period_start, period_end=period_end, granted_by=actor,
        access_request=access_request,
    )  # fmt: skip
    if notes:
        through = Consent.restricted_notes.through
        through.objects.bulk_create(
            [through(consent_id=consent.pk, clinicalnote_id=note.pk) for note in notes]
        )
    window = {
        "source": consent.source,
        "starts_at": period_start if period_start > timezone.now() else None,
        "expires_at": period_end,
    }
    if grantee_kind == kinds.HOSPITAL:
        group = hospital_clinical_group(hospital_id=grantee_hospital.pk)
        chart_grant(patient=patient, codenames=codenames, group=group, **window)
    elif grantee_kind == kinds.DEPARTMENT:
        group = department_group(department_id=grantee_department.pk)
        chart_grant(patient=patient, codenames=codenames, group=group, **window)
    else:
        chart_grant(patient=patient, codenames=codenames, user=grantee_user, **window)
        for note in notes:
            note_grant_write(note=note, user=grantee_user, **window)
    event_record(
        kind="consent.granted", hospital=patient.hospital_id, subject=consent, actor=actor,
        patient=patient,
        attrs={
            "grantee_kind": grantee_kind, "purpose": purpose, "scope_all": scope_all,
            "restricted_notes": len(notes),
            "request": access_request.pk if access_request is not None else None,
        },
    )  # fmt: skip
    return consent


@transaction.atomic
def consent_revoke(*, consent: Consent, actor: AbstractBaseUser) -> Consent:
    """The patient withdraws a consent: its permissions go in the same transaction, so the
    very next request of the grantee is refused."""
    consent = Consent.objects.select_for_update().get(pk=consent.pk)
    if consent.patient.user_id != actor.pk:
        raise ValidationError("Only the patient can revoke this consent.")
    if consent.state not in (Consent.Status.ACTIVE, "scheduled"):
        raise ValidationError("This consent is no longer active.")
    return _consent_end(consent, status=Consent.Status.REVOKED, at=timezone.now(), actor=actor)


def _consent_end(consent: Consent, *, status: str, at: datetime, actor) -> Consent:
    """Revocation and expiry alike: the status changes, the permissions go, and the ledger
    records it, in the caller's transaction (the row is locked by the caller)."""
    consent.status = status
    consent.ended_at = at
    consent.ended_by = actor
    consent.save(update_fields=["status", "ended_at", "ended_by"])
    grant_source_remove(source=consent.source)
    event_record(
        kind=f"consent.{status}", hospital=consent.hospital_id, subject=consent, actor=actor,
        patient=consent.patient_id,
    )  # fmt: skip
    return consent


def grants_expire_due(*, now: datetime | None = None) -> int:
    """Write down what has already happened: consents and proxy grants past their end are
    marked expired and their permission rows deleted (they granted nothing already), and
    ended break-glass rows are removed. Idempotent; run by beat."""
    now = now or timezone.now()
    done = 0
    for pk in Consent.objects.filter(status=Consent.Status.ACTIVE, period_end__lte=now).values_list(
        "pk", flat=True
    ):
        done += _consent_expire(pk, now)
    for pk in ProxyGrant.objects.filter(
        status=ProxyGrant.Status.ACTIVE, period_end__lte=now
    ).values_list("pk", flat=True):
        done += _proxy_expire(pk, now)
    # Ended break-glass rows: one delete per table, however many there are.
    grant_rows_ended_remove(prefix="breakglass:", now=now)
    return done


@transaction.atomic
def _consent_expire(pk: int, now: datetime) -> int:
    consent = Consent.objects.select_for_update().get(pk=pk)
    if consent.status != Consent.Status.ACTIVE:
        return 0
    _consent_end(consent, status=Consent.Status.EXPIRED, at=consent.period_end, actor=None)
    return 1


# -- Access requests ---------------------------------------------------------------------


@transaction.atomic
def access_request_create(
    *,
    requester: AbstractBaseUser,
    requester_hospital: Hospital,
    patient_hospital: Hospital,
    mrn: str,
    birth_date: date,
    purpose: str = Purpose.TREATMENT,
) -> AccessRequest:
    """A clinician asks for access, naming the patient by details the patient gave them.

    Whether the details matched is not revealed to the clinician: every request looks the
    same until the patient answers, so nobody can probe who is registered where.
    """
    if not _is_clinician(requester, hospital_id=requester_hospital.pk):
        raise ValidationError("Only clinical staff can ask for access.")
    if purpose not in Purpose.values:
        raise ValidationError({"purpose": "Choose a purpose from the list."})
    patient = patient_by_mrn(hospital=patient_hospital, mrn=mrn)
    if patient is not None and (patient.user_id is None or patient.birth_date != birth_date):
        patient = None
    if patient is not None:
        existing = AccessRequest.objects.filter(
            requester=requester, patient=patient, status=AccessRequest.Status.PENDING
        ).first()
        if existing is not None:
            return existing
    request = AccessRequest.objects.create(
        requester=requester, requester_hospital=requester_hospital, patient=patient,
        purpose=purpose,
    )  # fmt: skip
    event_record(
        kind="accessrequest.created", hospital=requester_hospital, subject=request,
        actor=requester, patient=patient, attrs={"purpose": purpose},
    )  # fmt: skip
    if patient is not None:
        notification_send(
            user=patient.user, kind="access_request",
            text=f"{_staff_name(requester)} at {requester_hospital.name} asks to see your "
            f"records at {patient.hospital.name}. Answer under Access requests.",
        )  # fmt: skip
    return request


@transaction.atomic
def access_request_decide(
    *,
    request: AccessRequest,
    actor: AbstractBaseUser,
    approve: bool,
    scope_all: bool = True,
    categories: Iterable[str] = (),
    period_end: datetime | None = None,
) -> AccessRequest:
    """The patient approves (a consent to the requester, with the scope and period they
    choose) or denies. A request is answered once: a replayed answer changes nothing."""
    request = AccessRequest.objects.select_for_update().get(pk=request.pk)
    if request.patient is None or request.patient.user_id != actor.pk:
        raise ValidationError("This request is not addressed to you.")
    if request.status != AccessRequest.Status.PENDING:
        raise ValidationError("This request has already been answered.")
    if request.state == "expired":
        raise ValidationError("This request has expired; the clinician can ask again.")
    request.decided_at = timezone.now()
    if approve:
        consent_grant(
            patient=request.patient, actor=actor,
            grantee_kind=Consent.GranteeKind.PRACTITIONER, grantee_user=request.requester,
            scope_all=scope_all, categories=categories, purpose=request.purpose,
            period_end=period_end, access_request=request,
        )  # fmt: skip
        request.status = AccessRequest.Status.APPROVED
    else:
        request.status = AccessRequest.Status.DENIED
    request.save(update_fields=["status", "decided_at"])
    event_record(
        kind=f"accessrequest.{request.status}", hospital=request.requester_hospital_id,
        subject=request, actor=actor, patient=request.patient_id,
    )  # fmt: skip
    notification_send(
        user=request.requester, kind="access_request",
        text=f"Your access request of {request.created_at:%d %b %Y %H:%M} was "
        f"{request.get_status_display().lower()}.",
    )  # fmt: skip
    return request


# -- Break-glass -------------------------------------------------------------------------


@transaction.atomic
def break_glass_open(
    *,
    user: AbstractBaseUser,
    user_hospital: Hospital,
    patient: Patient,
    reason: str,
    duration: timedelta = BREAK_GLASS_DEFAULT,
) -> BreakGlass:
    """Emergency access to a chart without consent: limited in time, flagged on every
    read, anchored in the ledger, and reported to the patient and the chart's hospital."""
    reason = " ".join(reason.split())
    if len(reason) < REASON_MIN_LENGTH:
        raise ValidationError({"reason": "Give the clinical reason (at least 10 characters)."})
    if not _is_clinician(user, hospital_id=user_hospital.pk):
        raise ValidationError("Only clinical staff can use emergency access.")
    now = timezone.now()
    glass = BreakGlass.objects.create(
        user=user, user_hospital=user_hospital, patient=patient, hospital_id=patient.hospital_id,
        reason=reason, started_at=now, expires_at=now + duration,
    )  # fmt: skip
    chart_grant(
        patient=patient, codenames=["view_patient"], user=user, source=glass.source,
        expires_at=glass.expires_at,
    )  # fmt: skip
    event_record(
        kind="breakglass.opened", hospital=patient.hospital_id, subject=glass, actor=user,
        patient=patient, actor_hospital=user_hospital,
        attrs={"from_hospital": user_hospital.pk, "minutes": int(duration.total_seconds() // 60)},
    )  # fmt: skip
    who = f"{_staff_name(user)} ({user_hospital.name})"
    when = f"{timezone.localtime(now):%d %b %Y %H:%M}"
    if patient.user is not None:
        notification_send(
            user=patient.user, kind="break_glass", flagged=True,
            text=f"Emergency access: {who} opened your records at {patient.hospital.name} "
            f"on {when} without your consent. It ends after "
            f"{duration.total_seconds() / 3600:g} hours.",
        )  # fmt: skip
    for admin in _hospital_admins(patient.hospital_id):
        notification_send(
            user=admin, kind="break_glass", flagged=True,
            text=f"Emergency access at {patient.hospital.name}: {who} on {when} "
            f"(break-glass {glass.row_uuid}).",
        )  # fmt: skip
    from consent.tasks import break_glass_notify

    transaction.on_commit(lambda: break_glass_notify.delay(glass.pk))
    return glass


def _hospital_admins(hospital_id: int) -> list[AbstractBaseUser]:
    ids = Membership._base_manager.filter(
        hospital_id=hospital_id, role=Role.HOSPITAL_ADMIN, is_active=True
    ).values("user_id")
    return list(get_user_model()._default_manager.filter(pk__in=ids, is_active=True))


def _staff_name(user: AbstractBaseUser) -> str:
    return user.get_full_name() or user.get_username()


def break_glass_mail(*, glass_id: int) -> int:
    """E-mail the patient and the chart's hospital admins about one break-glass (after
    commit, from a worker). The mails say who, where and when, never clinical content."""
    from django.core.mail import send_mail

    # Claim the mailing first: a redelivered message finds it claimed and sends nothing.
    if not BreakGlass.objects.filter(pk=glass_id, mailed_at__isnull=True).update(
        mailed_at=timezone.now()
    ):
        return 0
    glass = BreakGlass.objects.select_related(
        "user", "user_hospital", "hospital", "patient__user"
    ).get(pk=glass_id)
    who = f"{_staff_name(glass.user)} ({glass.user_hospital.name})"
    when = f"{timezone.localtime(glass.started_at):%d %b %Y %H:%M %Z}"
    sent = 0
    patient_user = glass.patient.user
    if patient_user is not None and patient_user.email:
        sent += send_mail(
            "Emergency access to your records",
            f"{who} used emergency (break-glass) access to your records at "
            f"{glass.hospital.name} on {when}. The access ends at "
            f"{timezone.localtime(glass.expires_at):%H:%M %Z}. Sign in to your patient "
            "portal to see who accessed your records and to verify it.",
            settings.DEFAULT_FROM_EMAIL, [patient_user.email],
        )  # fmt: skip
    admins = [a.email for a in _hospital_admins(glass.hospital_id) if a.email]
    if admins:
        sent += send_mail(
            f"Break-glass access at {glass.hospital.name}",
            f"{who} used emergency access to a chart of {glass.hospital.name} on {when}. "
            f"Review break-glass {glass.row_uuid} in the admin.",
            settings.DEFAULT_FROM_EMAIL, admins,
        )  # fmt: skip
    return sent


# -- Proxies -----------------------------------------------------------------------------


@transaction.atomic
def proxy_grant(
    *,
    grantor: AbstractBaseUser,
    proxy_username: str,
    relationship: str,
    scope_all: bool = True,
    categories: Iterable[str] = (),
    period_end: datetime | None = None,
) -> ProxyGrant:
    """A patient lets another account holder view their records in the patient portal."""
    registrations = list(Patient._base_manager.filter(user=grantor))
    if not registrations:
        raise ValidationError("Only a patient can give proxy access.")
    proxy = (
        get_user_model()
        ._default_manager.filter(username=proxy_username.strip(), is_active=True)
        .first()
    )
    if proxy is None or proxy.pk == grantor.pk:
        raise ValidationError({"proxy_username": "No other account has that username."})
    if relationship not in ProxyGrant.Relationship.values:
        raise ValidationError({"relationship": "Choose a relationship from the list."})
    _validate_period(timezone.now(), period_end)
    codenames = _codenames(scope_all=scope_all, categories=categories)
    grant = ProxyGrant.objects.create(
        grantor=grantor, proxy=proxy, relationship=relationship, scope_all=scope_all,
        categories=[] if scope_all else sorted(set(categories)), period_end=period_end,
    )  # fmt: skip
    for patient in registrations:
        chart_grant(
            patient=patient, codenames=codenames, user=proxy, source=grant.source,
            expires_at=period_end,
        )  # fmt: skip
        event_record(
            kind="proxy.granted", hospital=patient.hospital_id, subject=grant, actor=grantor,
            patient=patient, attrs={"proxy": proxy.pk, "relationship": relationship},
        )  # fmt: skip
    notification_send(
        user=proxy, kind="proxy",
        text=f"{_staff_name(grantor)} gave you access to their records "
        f"({', '.join(grant.scope_labels)}).",
    )  # fmt: skip
    return grant


@transaction.atomic
def proxy_revoke(*, grant: ProxyGrant, actor: AbstractBaseUser) -> ProxyGrant:
    """The patient (or the proxy, stepping down) ends a proxy grant."""
    grant = ProxyGrant.objects.select_for_update().get(pk=grant.pk)
    if actor.pk not in (grant.grantor_id, grant.proxy_id):
        raise ValidationError("This proxy access is not yours to end.")
    if grant.state != ProxyGrant.Status.ACTIVE:
        raise ValidationError("This proxy access has already ended.")
    return _proxy_end(grant, status=ProxyGrant.Status.REVOKED, at=timezone.now(), actor=actor)


def _proxy_end(grant: ProxyGrant, *, status: str, at: datetime, actor) -> ProxyGrant:
    """Revocation and expiry alike (the caller holds the row lock): status, permissions
    and one ledger event per registration the grant covered."""
    grant.status = status
    grant.ended_at = at
    grant.ended_by = actor
    grant.save(update_fields=["status", "ended_at", "ended_by"])
    grant_source_remove(source=grant.source)
    for patient in Patient._base_manager.filter(user_id=grant.grantor_id):
        event_record(
            kind=f"proxy.{status}", hospital=patient.hospital_id, subject=grant, actor=actor,
            patient=patient, attrs={"proxy": grant.proxy_id},
        )  # fmt: skip
    return grant


@transaction.atomic
def _proxy_expire(pk: int, now: datetime) -> int:
    grant = ProxyGrant.objects.select_for_update().get(pk=pk)
    if grant.status != ProxyGrant.Status.ACTIVE:
        return 0
    _proxy_end(grant, status=ProxyGrant.Status.EXPIRED, at=grant.period_end, actor=None)
    return 1
