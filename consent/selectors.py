"""Reads for consents, requests, proxies, notices and "who accessed my records".

Every function is filtered by the signed-in account (the patient who owns the registration,
the requester, the proxy); `access_*` helpers fetch one row and authorize in one step,
answering 404 for missing and forbidden alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from oauth2_provider.models import get_application_model

from consent.models import (
    AccessRequest,
    BreakGlass,
    BreakGlassFailure,
    Consent,
    Notification,
    ProxyGrant,
    ProxyInvitation,
)
from ledger import facts, verifier
from ledger.keys import log_signer
from ledger.models import ACCESS_KINDS, Event
from ledger.proofs import receipt_for_event
from portal import wording
from portal.records.access import PURPOSE_EMERGENCY, Action, membership_may, roles_may
from portal.records.models import Patient
from portal.tenancy.models import Department, Hospital, Membership

# Break-glass attempts whose details match no patient lock the user out of break-glass as
# failed log-ins do (django-axes: 5 failures, 15 minutes).
BREAK_GLASS_FAILURE_LIMIT = 5
BREAK_GLASS_LOCKOUT = timedelta(minutes=15)
# A break-glass notice not accepted by the mail server is tried again by the beat sweep once
# its last try is this old (the task's own retries keep the try time fresh meanwhile).
NOTICE_RETRY_AFTER = timedelta(minutes=10)


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None


# -- Patient side ------------------------------------------------------------------------


def consents_for_owner(*, user: User) -> list[Consent]:
    """Every consent the account ever gave, newest first (history included)."""
    return list(
        Consent.objects.filter(patient__user=user)
        .select_related(
            "patient__hospital", "grantee_hospital", "grantee_department__hospital", "grantee_user"
        )
        .prefetch_related("restricted_notes")
        .order_by("-created_at", "-id")
    )


def access_consent(user: User, consent_id: Any) -> Consent:
    row_uuid = _uuid(consent_id)
    consent = (
        Consent.objects.filter(row_uuid=row_uuid, patient__user=user).first() if row_uuid else None
    )
    if consent is None or not user.is_authenticated:
        raise Http404("No such consent.")
    return consent


def access_requests_for_owner(*, user: User) -> list[AccessRequest]:
    """Requests addressed to the account's registrations (the patient's side)."""
    return list(
        AccessRequest.objects.filter(addressee__user=user)
        .select_related("requester", "requester_hospital", "addressee__hospital", "consent")
        .order_by("-created_at", "-id")[:100]
    )


def access_access_request(user: User, request_id: Any) -> AccessRequest:
    row_uuid = _uuid(request_id)
    request = (
        AccessRequest.objects.filter(row_uuid=row_uuid, addressee__user=user)
        .select_related("addressee", "requester")
        .first()
        if row_uuid and user.is_authenticated
        else None
    )
    if request is None:
        raise Http404("No such request.")
    return request


def proxy_grants_given(*, user: User) -> list[ProxyGrant]:
    return list(ProxyGrant.objects.filter(grantor=user).select_related("proxy"))


def proxy_eligible(*, user: User | AnonymousUser) -> bool:
    """May this account be someone's proxy? An active account with a patient registration,
    no active staff membership and no admin rights (superuser, Django staff): a proxy sees a
    patient's records in the patient portal, and accounts that work with or audit charts are
    never offered them this way."""
    if not user.is_authenticated or not user.is_active or user.is_superuser or user.is_staff:
        return False
    if Membership._base_manager.filter(user=user, is_active=True).exists():
        return False
    return Patient._base_manager.filter(user=user).exists()


def proxy_invitation_addressed_to(*, invitation: ProxyInvitation, user: User) -> bool:
    return (
        user.is_authenticated
        and invitation.grantor_id != user.pk
        and invitation.username == user.get_username()
        and proxy_eligible(user=user)
    )


def proxy_invitations_given(*, user: User) -> list[ProxyInvitation]:
    """The account's invitations not accepted (an accepted one is a grant now)."""
    return list(
        ProxyInvitation.objects.filter(grantor=user).exclude(status=ProxyInvitation.Status.ACCEPTED)
    )


def proxy_invitations_of(*, grants: list[ProxyGrant]) -> dict[int, ProxyInvitation]:
    """The invitation each of these grants came from, by grant id (one query)."""
    invitations = ProxyInvitation.objects.filter(grant__in=grants)
    return {i.grant_id: i for i in invitations if i.grant_id is not None}


def proxy_invitations_received(*, user: User) -> list[ProxyInvitation]:
    """Open invitations to this account's username; none unless it may be a proxy."""
    if not proxy_eligible(user=user):
        return []
    since = timezone.now() - ProxyInvitation.ACCEPT_WITHIN
    rows = (
        ProxyInvitation.objects.filter(
            username=user.get_username(), status=ProxyInvitation.Status.INVITED,
            created_at__gt=since,
        )
        .exclude(grantor=user)
        .select_related("grantor")
    )  # fmt: skip
    return [i for i in rows if i.is_open]


def access_proxy_invitation(user: User, invitation_id: Any) -> ProxyInvitation:
    """The account's own invitation, or an open one addressed to it; else 404."""
    row_uuid = _uuid(invitation_id)
    invitation = (
        ProxyInvitation.objects.filter(row_uuid=row_uuid).select_related("grantor").first()
        if row_uuid and user.is_authenticated
        else None
    )
    if invitation is not None and (
        invitation.grantor_id == user.pk
        or (invitation.is_open and proxy_invitation_addressed_to(invitation=invitation, user=user))
    ):
        return invitation
    raise Http404("No such proxy access.")


def access_proxy_item(user: User, item_id: Any) -> ProxyGrant | ProxyInvitation:
    """A grant this account gave or holds, or an invitation it made or may answer; else 404
    (the same for both kinds)."""
    try:
        return access_proxy_grant(user, item_id)
    except Http404:
        return access_proxy_invitation(user, item_id)


def proxy_grants_received(*, user: User) -> list[ProxyGrant]:
    """Grants to this account that are in force now (an ended one shows nothing)."""
    return [
        g
        for g in ProxyGrant.objects.filter(proxy=user, status=ProxyGrant.Status.ACTIVE)
        .select_related("grantor")
        .order_by("-created_at")
        if g.state == ProxyGrant.Status.ACTIVE
    ]


def access_proxy_grant(user: User, grant_id: Any) -> ProxyGrant:
    row_uuid = _uuid(grant_id)
    grant = (
        ProxyGrant.objects.filter(Q(grantor=user) | Q(proxy=user), row_uuid=row_uuid).first()
        if row_uuid and user.is_authenticated
        else None
    )
    if grant is None:
        raise Http404("No such proxy access.")
    return grant


def registrations_via_proxy(*, user: User, grant: ProxyGrant) -> list[Patient]:
    """The grantor's registrations a live proxy grant lets this account see."""
    if grant.proxy_id != user.pk or grant.state != ProxyGrant.Status.ACTIVE:
        return []
    return list(
        Patient._base_manager.filter(user_id=grant.grantor_id)
        .select_related("hospital")
        .order_by("hospital__name")
    )


def notifications_for(*, user: User, limit: int = 10) -> list[Notification]:
    return list(Notification.objects.filter(user=user)[:limit])


@dataclass
class AccessEntry:
    event: Event
    hospital: str  # where the reader read from (the hospital they acted in; "" for none)
    chart_hospital: str  # whose records: the registration's hospital
    actor: str
    purpose: str  # the recorded purpose, in words
    break_glass: bool
    what: str
    channel: str = ""  # the recorded way in ("via"), in words
    app: str = ""  # the third-party app the read went through (its name), if any


ACCESS_WHAT = {
    "chart.read": "Opened your chart",
    "record.read": "Opened a record ({record_type})",
    "document.read": "Downloaded a document",
    "breakglass.opened": "Used emergency access",
}
# A carer reads in the patient portal, not "opens a chart".
PROXY_WHAT = {
    "chart.read": "Your carer {name} viewed your records",
    "record.read": "Your carer {name} viewed a record ({record_type})",
    "document.read": "Your carer {name} downloaded a document",
}
# The patient's own reads are recorded only when an app they connected made them.
OWNER_APP_WHAT = {
    "chart.read": "{app}, an app you connected, read your records",
    "record.read": "{app}, an app you connected, read a record ({record_type})",
    "document.read": "{app}, an app you connected, downloaded a document",
}
# A patient's approvals of apps (SMART App Launch) and their end, in the same log.
APP_KINDS = ("smart.authorized", "smart.revoked")
APP_WHAT = {
    "smart.authorized": "{app} was allowed to read your records (see Connected apps)",
    "smart.revoked": "{app}'s access to your records was withdrawn",
}
# A clinician launched an app on the patient's chart (SMART EHR launch).
STAFF_APP_WHAT = {
    "smart.authorized": "{name} opened your chart in {app}",
    "smart.revoked": "{app}'s access, opened by staff, ended",
}
# Ways in whose reader acts in no hospital: the admin site's auditors (a hospital admin's
# read names their hospital), carers and the patient.
NO_HOSPITAL_VIA = frozenset({"admin", "proxy", "owner"})


def access_log_for_owner(
    *, user: User, patients: list[Patient], limit: int = 200
) -> list[AccessEntry]:
    """Who opened my records: staff, admin and carers' reads and break-glass, from the
    ledger's events, for the account's own registrations only; one query whatever the
    number of rows.

    Every fact shown is an event column the database refuses to change once written and that
    verify_ledger compares with the anchored leaf; "Verify" compares them for this event."""
    charts = {p.pk: p.hospital for p in patients if p.user_id == user.pk}
    ids = list(charts)
    events = list(
        Event.objects.filter(patient_id__in=ids, kind__in=(*ACCESS_KINDS, *APP_KINDS))
        .select_related("actor", "hospital", "actor_hospital")
        .order_by("-recorded_at", "-id")[:limit]
    )
    names = app_names(client_ids={str((e.attrs or {}).get("app") or "") for e in events})
    return [access_entry(event=event, charts=charts, apps=names) for event in events]


def app_names(*, client_ids: set[str]) -> dict[str, str]:
    """The names of the registered third-party apps (django-oauth-toolkit's applications)
    with these client ids; one query, none when no read went through an app. An access event
    records the client id (a code; a name may change)."""
    client_ids = {c for c in client_ids if c}
    if not client_ids:
        return {}

    rows = get_application_model().objects.filter(client_id__in=client_ids)
    return {str(cid): str(name) for cid, name in rows.values_list("client_id", "name")}


def access_entry(
    *, event: Event, charts: dict[int, Hospital], apps: dict[str, str] | None = None
) -> AccessEntry:
    """How an access event is shown to its patient (the log's row, the Verify page): the
    purpose and the way in as they were recorded, never a default standing in for them.
    `apps`: the names of the apps reads went through, by client id (app_names; an app no
    longer registered is shown by its client id)."""
    attrs = event.attrs or {}
    flagged = event.kind == "breakglass.opened" or bool(attrs.get("break_glass"))
    via = str(attrs.get("via") or ("breakglass" if event.kind == "breakglass.opened" else ""))
    actor = event.actor
    name = (actor.get_full_name() or actor.get_username()) if actor else "system"
    record_type = wording.record_type_label(attrs.get("record_type") or "record").lower()
    client_id = str(attrs.get("app") or "")
    app = (apps or {}).get(client_id, client_id) if client_id else ""
    whats = PROXY_WHAT if via == "proxy" else ACCESS_WHAT
    if via == "owner" and app:
        whats = OWNER_APP_WHAT
    if event.kind in APP_KINDS:
        whats = STAFF_APP_WHAT if attrs.get("audience") == "staff" else APP_WHAT
    template = whats.get(event.kind, event.kind)
    what = template.format(record_type=record_type, name=name, app=app)
    purpose = attrs.get("purpose") or ""
    if not purpose and event.kind == "breakglass.opened":
        purpose = PURPOSE_EMERGENCY  # the opening states no purpose: it is the emergency
    # A read belongs to the chart's hospital and names the reader's. An auditor, a carer
    # or the patient reads from no hospital; an older staff read names one hospital only,
    # the one it was recorded under: the reader's.
    reader_hospital = event.actor_hospital
    if reader_hospital is None and via not in NO_HOSPITAL_VIA:
        reader_hospital = event.hospital
    return AccessEntry(
        event=event,
        hospital=reader_hospital.name if reader_hospital is not None else "",
        chart_hospital=charts[event.patient_id].name if event.patient_id in charts else "",
        # By name and the role they read as ("Ana Silva, Clinician"); the hospital has its column.
        actor=wording.staff_label(actor, attrs.get("role")) if actor else "System",
        purpose=wording.purpose_label(purpose),
        break_glass=flagged,
        what=what,
        channel=wording.channel_label(via),
        app=app,
    )


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
    # What the page shows, each checked against the signed entry's leaf: (label, value).
    checked: list[tuple[str, str]] = field(default_factory=list)
    # The facts whose shown value the signed entry does not state (see ledger.facts).
    differing: list[str] = field(default_factory=list)
    # The configured witnesses whose cosignature on the receipt's checkpoint verifies, with
    # the time each cosigned (their own statement), and whether they meet the quorum.
    cosigned_by: list[tuple[str, datetime]] = field(default_factory=list)
    witnessed: bool = False
    quorum: str = ""


def event_verify(*, event: Event, patients: list[Patient] | None = None) -> Verification:
    """Check an event's inclusion proof against the latest signed checkpoint, with the
    standalone verifier's own code and the log's public key, and that the included leaf
    states the very facts the page shows (who, from where, what, purpose, break-glass,
    when, whose records): a row changed behind the application's back is not verified."""
    checked = _shown_facts(event, patients or [])
    receipt = receipt_for_event(event=event)
    if receipt is None:
        return Verification(
            False, "Not anchored yet: the ledger takes a few seconds. Try again.", checked=checked
        )
    key = verifier.load_verifier_key(log_signer().vkey())
    try:
        result = verifier.verify_receipt(receipt, key)
    except verifier.VerificationError as exc:
        return Verification(False, f"Verification FAILED: {exc}", checked=checked)
    try:
        differing = facts.facts_differing(facts.facts_of_event(event), result.leaf)
    except facts.LeafUnreadable as exc:
        return Verification(False, f"Verification FAILED: {exc}", checked=checked)
    if differing:
        return Verification(
            False,
            f"NOT verified: entry {result.index} is in the signed log, but it does not say "
            f"what this page shows ({facts.describe(differing)} differ).",
            size=result.size,
            index=result.index,
            checked=checked,
            differing=differing,
        )
    cosigned_by, witnessed, quorum = _receipt_witnesses(receipt["checkpoint"])
    return Verification(
        True,
        f"Verified: entry {result.index} is included in the signed checkpoint of size "
        f"{result.size}, and it states each fact below.",
        size=result.size,
        index=result.index,
        checked=checked,
        cosigned_by=cosigned_by,
        witnessed=witnessed,
        quorum=quorum,
    )


def _receipt_witnesses(checkpoint_note: str) -> tuple[list[tuple[str, datetime]], bool, str]:
    """Which configured witnesses cosigned the receipt's checkpoint (each cosignature
    verified with the witness's key), when, and whether they meet the quorum."""
    from ledger import cosignature, note
    from ledger.publication import witness_setup

    setup = witness_setup()
    if not setup.configured:
        return [], False, ""
    names = {(w.verifier.name, w.verifier.key_id): w.name for w in setup.witnesses}
    try:
        cosigs = cosignature.verify_cosignatures(
            checkpoint_note, [w.verifier for w in setup.witnesses]
        )
    except note.NoteError:
        return [], False, setup.describe_quorum()
    cosigned = sorted((names[(c.name, c.key_id)], c.time) for c in cosigs)
    witnessed = setup.quorum_met({name for name, _ in cosigned})
    return cosigned, witnessed, setup.describe_quorum()


def _shown_facts(event: Event, patients: list[Patient]) -> list[tuple[str, str]]:
    """The Verify page's facts, as the access log words them (access_entry)."""
    charts = {p.pk: p.hospital for p in patients}
    rows = [("Event", str(event.event_id)), ("Kind", wording.event_kind_label(event.kind))]
    if event.kind in ACCESS_KINDS:
        names = app_names(client_ids={str((event.attrs or {}).get("app") or "")})
        entry = access_entry(event=event, charts=charts, apps=names)
        rows += [
            ("Who", entry.actor),
            ("From", entry.hospital),
            ("Your records at", entry.chart_hospital),
            ("What", entry.what),
            ("Purpose", entry.purpose),
            ("Through", entry.channel),
            ("Break-glass", wording.yes_no(entry.break_glass)),
        ]
        if entry.app:
            rows.append(("App", entry.app))
    recorded = wording.datetime_label(event.recorded_at, seconds=True)
    rows.append(("Recorded", recorded))
    return rows


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


def access_requests_by_user(*, user: User) -> list[AccessRequest]:
    """The requester's own requests. Shown through `requester_state` and `patient` (set
    only once approved), never the addressee: unmatched ones look like any other."""
    return list(
        AccessRequest.objects.filter(requester=user)
        .select_related("requester_hospital")
        .order_by("-created_at", "-id")[:100]
    )


def user_is_practitioner(
    *, user: User, hospital_id: int | None = None, action: Action = Action.REQUEST_ACCESS
) -> bool:
    """A role that may do `action` (at that hospital, if given): break glass
    (Action.BREAK_GLASS), ask a patient for access and be named in a consent as one
    practitioner (Action.REQUEST_ACCESS). Which roles: records.access.ROLE_ACTIONS."""
    memberships = Membership._base_manager.filter(
        user=user, is_active=True, role__in=roles_may(action)
    )
    if hospital_id is not None:
        memberships = memberships.filter(hospital_id=hospital_id)
    return memberships.exists()


def membership_is_practitioner(
    *, membership: Membership | None, action: Action = Action.REQUEST_ACCESS
) -> bool:
    """The same rule for the membership a request acts in (pages, menus, API)."""
    return membership_may(membership=membership, action=action)


def break_glass_live_for(*, user: User, chart: Any) -> BreakGlass | None:
    """The reader's own live break-glass on a chart they opened through it (records.access
    opened `chart`), to offer ending it early; None otherwise, with no query for a chart
    that no break-glass opened."""
    if not any(source.startswith("breakglass:") for source in chart.sources):
        return None
    return (
        BreakGlass.objects.filter(
            user=user, patient_id=chart.patient_id, expires_at__gt=timezone.now()
        )
        .order_by("-started_at", "-id")
        .first()
    )


def break_glass_live_by_uuid(*, user: User, glass_id: Any) -> BreakGlass:
    """One of the user's own live break-glass rows, by its uuid; anyone else's, another
    hospital's, an ended one or an unknown id: one 404."""
    row_uuid = _uuid(glass_id)
    glass = (
        BreakGlass.objects.filter(row_uuid=row_uuid, user=user, expires_at__gt=timezone.now())
        .select_related("patient")
        .first()
        if row_uuid
        else None
    )
    if glass is None:
        raise Http404("No such emergency access.")
    return glass


def break_glass_lockout_until(*, user: User, now: datetime | None = None) -> datetime | None:
    """When this user's break-glass lockout ends, or None if they are not locked out.

    Locked for BREAK_GLASS_LOCKOUT after the BREAK_GLASS_FAILURE_LIMIT-th failure within
    BREAK_GLASS_LOCKOUT; a break-glass that went through wipes the slate, as a successful
    log-in does (failures before it do not count). One query."""
    now = now or timezone.now()
    later_success = BreakGlass.objects.filter(user=user, started_at__gte=OuterRef("attempted_at"))
    recent = list(
        BreakGlassFailure.objects.filter(user=user, attempted_at__gt=now - 2 * BREAK_GLASS_LOCKOUT)
        .filter(~Exists(later_success))
        .order_by("-attempted_at", "-id")
        .values_list("attempted_at", flat=True)[:BREAK_GLASS_FAILURE_LIMIT]
    )
    if len(recent) < BREAK_GLASS_FAILURE_LIMIT:
        return None
    latest, oldest = recent[0], recent[-1]
    if latest - oldest > BREAK_GLASS_LOCKOUT or latest + BREAK_GLASS_LOCKOUT <= now:
        return None
    return latest + BREAK_GLASS_LOCKOUT


def break_glass_notices_unsent(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Break-glass rows whose e-mail notices the mail server has not accepted yet, last
    tried long enough ago that no retry of the task is still under way."""
    now = now or timezone.now()
    return list(
        BreakGlass.objects.filter(
            mailed_at__isnull=True, started_at__lte=now - timedelta(minutes=1)
        )
        .filter(Q(mail_tried_at__isnull=True) | Q(mail_tried_at__lte=now - NOTICE_RETRY_AFTER))
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )


def consent_grantee_choices() -> dict[str, QuerySet]:
    """What a patient may name as grantee: hospitals, departments, practitioners (clinicians
    and nurses: user_is_practitioner)."""
    from django.contrib.auth import get_user_model

    clinician_ids = Membership._base_manager.filter(
        is_active=True, role__in=roles_may(Action.REQUEST_ACCESS)
    ).values("user_id")
    return {
        "hospitals": Hospital.objects.order_by("name"),
        "departments": Department.objects.select_related("hospital").order_by(
            "hospital__name", "name"
        ),
        "practitioners": get_user_model()
        ._default_manager.filter(pk__in=clinician_ids, is_active=True)
        .order_by("last_name", "username"),
    }


def notifications_unread(*, user: User) -> QuerySet:
    return Notification.objects.filter(user=user, read_at__isnull=True)
