"""Writes of consents, access requests, break-glass and proxy grants.

Each service changes its row, the object permissions it implies (portal.records.grants) and
writes its ledger event in ONE transaction, so a grant and its permissions, or a revocation
and their removal, never exist apart. Notices to people (portal and e-mail) go out after
commit. Only ids and codes reach the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from consent.models import (
    AccessRequest,
    BreakGlass,
    BreakGlassFailure,
    Consent,
    Notification,
    ProxyGrant,
    ProxyInvitation,
    Purpose,
)
from consent.selectors import (
    BREAK_GLASS_FAILURE_LIMIT,
    break_glass_lockout_until,
    proxy_invitation_addressed_to,
    user_is_practitioner,
)
from ledger.events import event_record
from portal import wording
from portal.records.access import Action, chart_opened_for
from portal.records.categories import CATEGORY_CODES, category_codename
from portal.records.grants import (
    chart_grant,
    grant_rows_ended_remove,
    grant_source_remove,
    note_grant_write,
)
from portal.records.models import ClinicalNote, Patient
from portal.records.selectors import patient_by_mrn
from portal.tenancy.models import Department, Hospital, Membership, Role
from portal.tenancy.selectors import department_group, hospital_clinical_group

BREAK_GLASS_DEFAULT = timedelta(hours=4)
REASON_MIN_LENGTH = 10
# One answer for an unknown MRN and for a known MRN with another birth date.
NO_MATCH = "No patient matches these details. Check the MRN and birth date."


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
        raise ValidationError({"period_end": "The end (Until) must come after the start (From)."})
    if end is not None and end <= timezone.now():
        raise ValidationError({"period_end": "The end is already in the past."})


def notification_send(*, user: User, kind: str, text: str, flagged: bool = False) -> Notification:
    return Notification.objects.create(user=user, kind=kind, text=text[:300], flagged=flagged)


# -- Consent -----------------------------------------------------------------------------


@transaction.atomic
def consent_grant(
    *,
    patient: Patient,
    actor: User,
    grantee_kind: str,
    grantee_hospital: Hospital | None = None,
    grantee_department: Department | None = None,
    grantee_user: User | None = None,
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
    target: dict[str, object] = {
        kinds.HOSPITAL: grantee_hospital,
        kinds.DEPARTMENT: grantee_department,
        kinds.PRACTITIONER: grantee_user,
    }
    if grantee_kind not in target or target[grantee_kind] is None:
        raise ValidationError({"grantee": "Choose who may see the records."})
    if grantee_kind == kinds.PRACTITIONER and not (
        grantee_user is not None and user_is_practitioner(user=grantee_user)
    ):
        raise ValidationError(
            {"grantee": "That person is not a clinician or nurse at any hospital."}
        )
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
    window: dict[str, Any] = {
        "source": consent.source,
        "starts_at": period_start if period_start > timezone.now() else None,
        "expires_at": period_end,
    }
    if grantee_kind == kinds.HOSPITAL and grantee_hospital is not None:
        group = hospital_clinical_group(hospital_id=grantee_hospital.pk)
        chart_grant(patient=patient, codenames=codenames, group=group, actor=actor, **window)
    elif grantee_kind == kinds.DEPARTMENT and grantee_department is not None:
        group = department_group(department_id=grantee_department.pk)
        chart_grant(patient=patient, codenames=codenames, group=group, actor=actor, **window)
    elif grantee_user is not None:  # a practitioner (the target check above)
        chart_grant(patient=patient, codenames=codenames, user=grantee_user, actor=actor, **window)
        for note in notes:
            note_grant_write(note=note, user=grantee_user, actor=actor, **window)
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
def consent_revoke(*, consent: Consent, actor: User) -> Consent:
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
    grant_source_remove(source=consent.source, actor=actor)
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
    _consent_end(consent, status=Consent.Status.EXPIRED, at=consent.period_end or now, actor=None)
    return 1


# -- Access requests ---------------------------------------------------------------------


@transaction.atomic
def access_request_create(
    *,
    requester: User,
    requester_hospital: Hospital,
    patient_hospital: Hospital,
    mrn: str,
    birth_date: date,
    purpose: str = Purpose.TREATMENT,
) -> AccessRequest:
    """A clinician asks for access, naming the patient by details the patient gave them.

    Whether the details matched is not revealed to the requesting side: every request is a
    new row with a new id, written by the same statements (the lookup, one row, one event
    naming no patient), and looks the same until the patient approves; so nobody can probe
    who is registered where, by the answer, the ids, the ledger or the time it takes. The
    patient finds a request addressed to them on their dashboard (no notice is written here:
    it would be one more statement for a match only).
    """
    if not user_is_practitioner(user=requester, hospital_id=requester_hospital.pk):
        raise ValidationError("Only clinicians and nurses can ask for access.")
    if purpose not in Purpose.values:
        raise ValidationError({"purpose": "Choose a purpose from the list."})
    patient = patient_by_mrn(hospital=patient_hospital, mrn=mrn)
    if patient is not None and (patient.user_id is None or patient.birth_date != birth_date):
        patient = None
    request = AccessRequest.objects.create(
        requester=requester, requester_hospital=requester_hospital, addressee=patient,
        purpose=purpose,
    )  # fmt: skip
    # The requester may fetch this event's receipt: it names no patient, and the digest of
    # the row leaves the addressee out (consent.apps), so it is the same for a match or none.
    event_record(
        kind="accessrequest.created", hospital=requester_hospital, subject=request,
        actor=requester, attrs={"purpose": purpose},
    )  # fmt: skip
    return request


@transaction.atomic
def access_request_decide(
    *,
    request: AccessRequest,
    actor: User,
    approve: bool,
    scope_all: bool = True,
    categories: Iterable[str] = (),
    period_end: datetime | None = None,
) -> AccessRequest:
    """The patient approves (a consent to the requester, with the scope and period they
    choose) or denies. A request is answered once: a replayed answer changes nothing.

    The same clinician may have asked more than once (each asking is a new request, so that
    asking again reveals nothing): one answer answers every request of theirs still waiting.
    Only an approval reaches the requesting side; a denial is recorded under the chart's
    hospital and the requester keeps seeing "waiting", then "expired", as for details that
    matched nobody.
    """
    request = AccessRequest.objects.select_for_update().get(pk=request.pk)
    addressee = request.addressee
    if addressee is None or addressee.user_id != actor.pk:
        raise ValidationError("This request is not addressed to you.")
    if request.status != AccessRequest.Status.PENDING:
        raise ValidationError("This request has already been answered.")
    if request.state == "expired":
        raise ValidationError("This request has expired; the clinician can ask again.")
    others = [
        other
        for other in AccessRequest.objects.select_for_update()
        .filter(
            requester_id=request.requester_id, addressee=addressee,
            status=AccessRequest.Status.PENDING,
        )
        .exclude(pk=request.pk)
        .order_by("id")
        if other.state == AccessRequest.Status.PENDING
    ]  # fmt: skip
    if approve:
        consent_grant(
            patient=addressee, actor=actor,
            grantee_kind=Consent.GranteeKind.PRACTITIONER, grantee_user=request.requester,
            scope_all=scope_all, categories=categories, purpose=request.purpose,
            period_end=period_end, access_request=request,
        )  # fmt: skip
    status = AccessRequest.Status.APPROVED if approve else AccessRequest.Status.DENIED
    now = timezone.now()
    for row in (request, *others):
        row.status = status
        row.decided_at = now
        fields = ["status", "decided_at"]
        if approve:
            row.patient = addressee  # attested from now on: the chart the approval opened
            fields.append("patient")
        row.save(update_fields=fields)
        event_record(
            kind=f"accessrequest.{status}",
            hospital=row.requester_hospital_id if approve else addressee.hospital_id,
            subject=row, actor=actor, patient=addressee.pk,
        )  # fmt: skip
    if approve:
        notification_send(
            user=request.requester, kind="access_request",
            text=f"Your access request of {_site_time(request.created_at)} "
            "was approved: the chart is under Shared with me.",
        )  # fmt: skip
    return request


# -- Break-glass -------------------------------------------------------------------------


class BreakGlassLocked(Exception):
    """Too many emergency-access attempts of this user matched no patient: locked until
    `until` (as log-in failures lock an account), whatever the details of the next one."""

    def __init__(self, until: datetime) -> None:
        self.until = until
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return (
            f"Emergency access is locked for your account after {BREAK_GLASS_FAILURE_LIMIT} "
            "attempts whose details matched no patient. Try again after "
            f"{timezone.localtime(self.until):%H:%M}, or ask a colleague to open the chart."
        )


@dataclass(frozen=True)
class BreakGlassOutcome:
    patient: Patient
    glass: BreakGlass | None  # None: the user could open this chart already


def break_glass_attempt(
    *,
    user: User,
    user_hospital: Hospital,
    patient_hospital: Hospital,
    mrn: str,
    birth_date: date,
    reason: str,
    duration: timedelta = BREAK_GLASS_DEFAULT,
) -> BreakGlassOutcome:
    """Emergency access by the details the clinician has (hospital, MRN, birth date): what
    every interface calls, so each one gets the same checks in the same order.

    Clinicians and nurses only; a reason; then the per-user lockout (BreakGlassLocked), and
    only then the lookup. Details that match no patient get one answer whether the MRN is
    unknown or the birth date wrong, and are recorded (a BreakGlassFailure row and a
    `breakglass.failed` event, ids only) in their own transaction, which must outlast the
    refusal: call this outside any transaction of your own.
    """
    if not user_is_practitioner(user=user, hospital_id=user_hospital.pk, action=Action.BREAK_GLASS):
        raise ValidationError("Emergency access is for clinicians and nurses.")
    reason = _break_glass_reason(reason)
    until = break_glass_lockout_until(user=user)
    if until is not None:
        raise BreakGlassLocked(until)
    patient = patient_by_mrn(hospital=patient_hospital, mrn=mrn)
    if patient is None or patient.birth_date != birth_date:
        _break_glass_failure_record(
            user=user, user_hospital=user_hospital, hospital=patient_hospital
        )
        raise ValidationError(NO_MATCH)
    opened = chart_opened_for(user=user, patient=patient)
    if opened is not None and not opened.break_glass:
        return BreakGlassOutcome(patient=patient, glass=None)
    glass = break_glass_open(
        user=user, user_hospital=user_hospital, patient=patient, reason=reason,
        duration=duration,
    )  # fmt: skip
    return BreakGlassOutcome(patient=patient, glass=glass)


def _break_glass_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if len(reason) < REASON_MIN_LENGTH:
        raise ValidationError({"reason": "Give the clinical reason (at least 10 characters)."})
    return reason


@transaction.atomic
def _break_glass_failure_record(
    *, user: User, user_hospital: Hospital, hospital: Hospital
) -> BreakGlassFailure:
    failure = BreakGlassFailure.objects.create(
        user=user, user_hospital=user_hospital, hospital=hospital, attempted_at=timezone.now()
    )
    # Under the user's hospital (its admins answer for their staff); the row shows to the
    # named hospital's admins too. Never the typed MRN or birth date.
    event_record(
        kind="breakglass.failed", hospital=user_hospital, subject=failure, actor=user,
        attrs={"hospital_named": hospital.pk},
    )  # fmt: skip
    return failure


@transaction.atomic
def break_glass_open(
    *,
    user: User,
    user_hospital: Hospital,
    patient: Patient,
    reason: str,
    duration: timedelta = BREAK_GLASS_DEFAULT,
) -> BreakGlass:
    """Emergency access to a chart without consent: limited in time, flagged on every
    read, anchored in the ledger, and reported to the patient and the chart's hospital.

    Takes a patient already identified: interfaces go through break_glass_attempt, which
    identifies them from the details given and applies the lockout."""
    reason = _break_glass_reason(reason)
    if not user_is_practitioner(user=user, hospital_id=user_hospital.pk, action=Action.BREAK_GLASS):
        raise ValidationError("Emergency access is for clinicians and nurses.")
    now = timezone.now()
    glass = BreakGlass.objects.create(
        user=user, user_hospital=user_hospital, patient=patient, hospital_id=patient.hospital_id,
        reason=reason, started_at=now, expires_at=now + duration,
    )  # fmt: skip
    chart_grant(
        patient=patient, codenames=["view_patient"], user=user, source=glass.source,
        expires_at=glass.expires_at, actor=user,
    )  # fmt: skip
    event_record(
        kind="breakglass.opened", hospital=patient.hospital_id, subject=glass, actor=user,
        patient=patient, actor_hospital=user_hospital,
        attrs={"from_hospital": user_hospital.pk, "minutes": int(duration.total_seconds() // 60)},
    )  # fmt: skip
    who = f"{_staff_name(user)} ({user_hospital.name})"
    # Written once for several readers: in the site's zone, named (not the actor's own zone).
    when = _site_time(now)
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

    # The id only; if this message is lost, the beat sweep (consent.notices_sweep) finds the
    # notice unsent and enqueues it again.
    transaction.on_commit(lambda: break_glass_notify.delay(glass.pk))
    return glass


@transaction.atomic
def break_glass_end(*, glass: BreakGlass, actor: User) -> BreakGlass:
    """The clinician ends their own emergency access before its time: its permission rows go
    (grant.removed events) and the row's end becomes now, in one transaction with its
    `breakglass.ended` event, so the very next read is refused. The patient and the chart's
    hospital admins are told, as they were told it began; the reads made meanwhile stay in
    the patient's access log. Ending one that has ended already changes nothing."""
    glass = (
        BreakGlass.objects.select_for_update().select_related("patient__hospital").get(pk=glass.pk)
    )
    if glass.user_id != actor.pk:
        raise ValidationError("Only the person who opened emergency access can end it early.")
    now = timezone.now()
    if glass.expires_at <= now:
        return glass
    minutes_left = int((glass.expires_at - now).total_seconds() // 60)
    glass.expires_at = now
    glass.save(update_fields=["expires_at"])
    grant_source_remove(source=glass.source, actor=actor)
    patient = glass.patient
    event_record(
        kind="breakglass.ended", hospital=glass.hospital_id, subject=glass, actor=actor,
        patient=patient, actor_hospital=glass.user_hospital_id,
        attrs={"from_hospital": glass.user_hospital_id, "minutes_left": minutes_left},
    )  # fmt: skip
    who = _staff_name(actor)
    when = _site_time(now)
    if patient.user is not None:
        notification_send(
            user=patient.user, kind="break_glass", flagged=True,
            text=f"Emergency access ended: {who} closed the emergency access to your "
            f"records at {patient.hospital.name} on {when}, before its time was up.",
        )  # fmt: skip
    for admin in _hospital_admins(glass.hospital_id):
        notification_send(
            user=admin, kind="break_glass", flagged=True,
            text=f"Emergency access at {patient.hospital.name} ended early by {who} on "
            f"{when} (break-glass {glass.row_uuid}).",
        )  # fmt: skip
    return glass


def _hospital_admins(hospital_id: int) -> list[User]:
    ids = Membership._base_manager.filter(
        hospital_id=hospital_id, role=Role.HOSPITAL_ADMIN, is_active=True
    ).values("user_id")
    return list(get_user_model()._default_manager.filter(pk__in=ids, is_active=True))


def _staff_name(user: User) -> str:
    return wording.person_label(user)


def _site_time(when: datetime) -> str:
    """ "6 Dec 2026, 14:05 (Europe/Lisbon)": a time in a notice's stored text, which readers
    in any zone see, in the site's zone and saying so."""
    zone = timezone.get_default_timezone()
    local = timezone.make_naive(when, zone)
    return f"{wording.datetime_label(local)} ({timezone.get_default_timezone_name()})"


class NoticeNotSent(Exception):
    """The mail server accepted none of a notice's messages (the task retries)."""


def break_glass_mail(*, glass_id: int) -> int:
    """E-mail the patient and the chart's hospital admins about one break-glass (from a
    worker, after commit). The mails say who, where and when, never clinical content.

    Each notice is marked sent only once the mail server accepted it, so a failure loses
    nothing: the exception goes up (after what did go out is marked) and the task retries
    with back-off; the beat sweep re-enqueues whatever is still unsent after that. Idempotent
    per glass id: a marked notice is never sent again, and while one worker is sending, the
    row is locked and another delivery of the same id leaves it alone.
    """
    from django.core.mail import get_connection

    sent = 0
    failure: Exception | None = None
    with transaction.atomic():
        glass = (
            BreakGlass.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("user", "user_hospital", "hospital", "patient__user")
            .filter(pk=glass_id, mailed_at__isnull=True)
            .first()
        )
        if glass is None:
            return 0  # all sent already, or another worker is sending it now
        glass.mail_tried_at = timezone.now()
        connection = get_connection(timeout=getattr(settings, "EMAIL_TIMEOUT", None) or 30)
        for field, message in (
            ("patient_mailed_at", _patient_notice),
            ("admins_mailed_at", _admins_notice),
        ):
            if getattr(glass, field) is not None:
                continue
            mail = message(glass, connection)
            if mail is not None:
                try:
                    accepted = mail.send()
                except Exception as exc:  # whatever the backend raised: keep what went out
                    failure = exc
                    break
                if not accepted:
                    failure = NoticeNotSent(f"break-glass {glass.pk}: {field} not accepted")
                    break
                sent += accepted
            setattr(glass, field, timezone.now())  # or nobody to tell
        if glass.patient_mailed_at is not None and glass.admins_mailed_at is not None:
            glass.mailed_at = timezone.now()
        glass.save(
            update_fields=["mail_tried_at", "patient_mailed_at", "admins_mailed_at", "mailed_at"]
        )
    if failure is not None:
        raise failure
    return sent


def _notice_facts(glass: BreakGlass) -> tuple[str, str]:
    who = f"{_staff_name(glass.user)} ({glass.user_hospital.name})"
    when = _site_time(glass.started_at)
    return who, when


def _patient_notice(glass: BreakGlass, connection):
    from django.core.mail import EmailMessage

    patient_user = glass.patient.user
    if patient_user is None or not patient_user.email:
        return None
    who, when = _notice_facts(glass)
    return EmailMessage(
        "Emergency access to your records",
        f"{who} used emergency (break-glass) access to your records at "
        f"{glass.hospital.name} on {when}. The access ends at "
        f"{timezone.localtime(glass.expires_at):%H:%M %Z}. Sign in to your patient "
        "portal to see who accessed your records and to verify it.",
        settings.DEFAULT_FROM_EMAIL, [patient_user.email], connection=connection,
    )  # fmt: skip


def _admins_notice(glass: BreakGlass, connection):
    from django.core.mail import EmailMessage

    admins = [a.email for a in _hospital_admins(glass.hospital_id) if a.email]
    if not admins:
        return None
    who, when = _notice_facts(glass)
    return EmailMessage(
        f"Break-glass access at {glass.hospital.name}",
        f"{who} used emergency access to a chart of {glass.hospital.name} on {when}. "
        f"Review break-glass {glass.row_uuid} in the admin.",
        settings.DEFAULT_FROM_EMAIL, admins, connection=connection,
    )  # fmt: skip


# -- Proxies -----------------------------------------------------------------------------


@transaction.atomic
def proxy_invite(
    *,
    grantor: User,
    proxy_username: str,
    relationship: str,
    scope_all: bool = True,
    categories: Iterable[str] = (),
    period_end: datetime | None = None,
) -> ProxyInvitation:
    """A patient invites another account holder (a parent, a carer), by username, to view
    their records in the patient portal.

    No account is looked up here: the answer, the row, its events and what the patient sees
    afterwards are the same whether or not the username exists, or belongs to an account that
    may be a proxy. The account with that username sees the invitation only if it may be one
    (consent.selectors.proxy_eligible), and its acceptance (proxy_accept) creates the grant.
    """
    registrations = list(Patient._base_manager.filter(user=grantor))
    if not registrations:
        raise ValidationError("Only a patient can give proxy access.")
    username = proxy_username.strip()
    if not username:
        raise ValidationError({"proxy_username": "Give the username of the person to invite."})
    if username == grantor.get_username():
        raise ValidationError({"proxy_username": "That is your own username."})
    if relationship not in ProxyGrant.Relationship.values:
        raise ValidationError({"relationship": "Choose a relationship from the list."})
    _validate_period(timezone.now(), period_end)
    _codenames(scope_all=scope_all, categories=categories)
    # Only what the patient already knows decides these: their own open invitations (a
    # declined one looks open to them) and the people who accepted.
    waiting = [
        i
        for i in ProxyInvitation.objects.filter(grantor=grantor, username=username)
        if i.grantor_state == ProxyInvitation.Status.INVITED
    ]
    if waiting:
        raise ValidationError(
            {"proxy_username": "You have already invited this username. Withdraw that "
             "invitation first to send a new one."}
        )  # fmt: skip
    if ProxyGrant.objects.filter(
        grantor=grantor, proxy__username=username, status=ProxyGrant.Status.ACTIVE
    ).exists():
        raise ValidationError(
            {"proxy_username": "This person can see your records already. End that access "
             "first to change it."}
        )  # fmt: skip
    invitation = ProxyInvitation.objects.create(
        grantor=grantor, username=username, relationship=relationship, scope_all=scope_all,
        categories=[] if scope_all else sorted(set(categories)), period_end=period_end,
    )  # fmt: skip
    for patient in registrations:
        event_record(
            kind="proxy.invited", hospital=patient.hospital_id, subject=invitation,
            actor=grantor, patient=patient, attrs={"relationship": relationship},
        )  # fmt: skip
    return invitation


@transaction.atomic
def proxy_accept(*, invitation: ProxyInvitation, actor: User) -> ProxyGrant:
    """The invited account accepts: from now on it sees the grantor's records (the scope
    and period the grantor chose) in the patient portal."""
    invitation = ProxyInvitation.objects.select_for_update().get(pk=invitation.pk)
    if not proxy_invitation_addressed_to(invitation=invitation, user=actor):
        raise ValidationError("This invitation is not addressed to you.")
    if not invitation.is_open:
        raise ValidationError("This invitation can no longer be accepted.")
    registrations = list(Patient._base_manager.filter(user_id=invitation.grantor_id))
    if not registrations:
        raise ValidationError("This invitation can no longer be accepted.")
    codenames = _codenames(scope_all=invitation.scope_all, categories=invitation.categories)
    grant = ProxyGrant.objects.create(
        grantor_id=invitation.grantor_id, proxy=actor, relationship=invitation.relationship,
        scope_all=invitation.scope_all, categories=invitation.categories,
        period_end=invitation.period_end,
    )  # fmt: skip
    invitation.status = ProxyInvitation.Status.ACCEPTED
    invitation.ended_at = timezone.now()
    invitation.ended_by = actor
    invitation.grant = grant
    invitation.save(update_fields=["status", "ended_at", "ended_by", "grant"])
    for patient in registrations:
        chart_grant(
            patient=patient, codenames=codenames, user=actor, source=grant.source,
            expires_at=grant.period_end, actor=actor,
        )  # fmt: skip
        event_record(
            kind="proxy.accepted", hospital=patient.hospital_id, subject=invitation,
            actor=actor, patient=patient, attrs={"grant": grant.pk},
        )  # fmt: skip
        event_record(
            kind="proxy.granted", hospital=patient.hospital_id, subject=grant, actor=actor,
            patient=patient, attrs={"proxy": actor.pk, "relationship": grant.relationship},
        )  # fmt: skip
    notification_send(
        user=invitation.grantor, kind="proxy",
        text=f"{_staff_name(actor)} accepted your invitation and can now see your records "
        f"({', '.join(grant.scope_labels)}).",
    )  # fmt: skip
    return grant


@transaction.atomic
def proxy_invitation_end(*, invitation: ProxyInvitation, actor: User) -> None:
    """The patient withdraws an invitation, or the invited account declines it.

    A declined invitation still looks unanswered to the patient (and can be withdrawn like
    one, leaving the same row behind), so declining never tells them the account exists; the
    decline's event names no patient, so the patient cannot fetch it."""
    invitation = ProxyInvitation.objects.select_for_update().get(pk=invitation.pk)
    now = timezone.now()
    if actor.pk == invitation.grantor_id:
        if invitation.status not in (
            ProxyInvitation.Status.INVITED, ProxyInvitation.Status.DECLINED
        ):  # fmt: skip
            raise ValidationError("This invitation has already ended.")
        invitation.status = ProxyInvitation.Status.WITHDRAWN
        invitation.ended_at, invitation.ended_by = now, actor
        invitation.save(update_fields=["status", "ended_at", "ended_by"])
        for patient in Patient._base_manager.filter(user_id=invitation.grantor_id):
            event_record(
                kind="proxy.withdrawn", hospital=patient.hospital_id, subject=invitation,
                actor=actor, patient=patient,
            )  # fmt: skip
        return
    if not proxy_invitation_addressed_to(invitation=invitation, user=actor):
        raise ValidationError("This invitation is not yours to end.")
    if not invitation.is_open:
        raise ValidationError("This invitation can no longer be answered.")
    invitation.status = ProxyInvitation.Status.DECLINED
    invitation.ended_at, invitation.ended_by = now, actor
    invitation.save(update_fields=["status", "ended_at", "ended_by"])
    event_record(
        kind="proxy.declined", hospital=None, subject=invitation, actor=actor, patient=None
    )


def proxy_end(*, item: ProxyGrant | ProxyInvitation, actor: User) -> None:
    """End a grant (revoke, or step down) or an invitation (withdraw, or decline)."""
    if isinstance(item, ProxyInvitation):
        proxy_invitation_end(invitation=item, actor=actor)
    else:
        proxy_revoke(grant=item, actor=actor)


@transaction.atomic
def proxy_revoke(*, grant: ProxyGrant, actor: User) -> ProxyGrant:
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
    grant_source_remove(source=grant.source, actor=actor)
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
    _proxy_end(grant, status=ProxyGrant.Status.EXPIRED, at=grant.period_end or now, actor=None)
    return 1
