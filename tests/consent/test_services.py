"""Consent, break-glass, access requests and proxies at the service and selector level."""

import datetime as dt

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.http import Http404
from django.utils import timezone

from consent import selectors as consent_selectors
from consent import services
from consent.models import (
    AccessRequest,
    BreakGlass,
    Consent,
    Notification,
    ProxyGrant,
    ProxyInvitation,
)
from ledger.anchoring import ledger_anchor_pending
from ledger.keys import log_signer
from ledger.models import Event
from ledger.proofs import receipt_for_event
from ledger.verifier import load_verifier_key, verify_receipt
from portal.records import access
from portal.records.chart import chart_for, records_by_category
from portal.records.models import PatientUserObjectPermission
from portal.tenancy.models import Role
from portal.tenancy.services import department_ensure, membership_ensure
from tests import factories

pytestmark = pytest.mark.django_db


def _grant(w, **kwargs):
    defaults = {
        "patient": w["patient"], "actor": w["account"], "grantee_kind": "practitioner",
        "grantee_user": w["clinician_b"],
    }  # fmt: skip
    return services.consent_grant(**{**defaults, **kwargs})


def _sees(user, patient):
    try:
        return access.access_patient(user, patient.pk)
    except Http404:
        return None


def test_without_consent_another_hospital_sees_nothing(consent_world):
    w = consent_world
    assert _sees(w["clinician_b"], w["patient"]) is None
    assert _sees(w["clinician_a"], w["patient"]) is not None


def test_grant_gives_exactly_the_granted_scope(consent_world):
    w = consent_world
    _grant(w, scope_all=False, categories=["labs"])
    opened = _sees(w["clinician_b"], w["patient"])
    assert opened is not None and opened.shared
    chart = chart_for(chart=opened)
    assert set(chart.series) == {"4548-4"}  # the lab, not the heart rate
    assert not [r for _, kind, r in chart.timeline if kind == "clinicalnote"]
    access.access_record(w["clinician_b"], "observation", w["lab"].pk)
    for kind, record in (("observation", w["vital"]), ("clinicalnote", w["note"])):
        with pytest.raises(Http404):
            access.access_record(w["clinician_b"], kind, record.pk)
    # Nothing else of hospital A: not the other patient, and never write access.
    assert _sees(w["clinician_b"], w["other"]) is None
    assert not opened.can_change


def test_restricted_notes_only_when_named(consent_world):
    w = consent_world
    _grant(w)
    with pytest.raises(Http404):
        access.access_record(w["clinician_b"], "clinicalnote", w["secret"].pk)
    access.access_record(w["clinician_b"], "clinicalnote", w["note"].pk)
    _grant(w, restricted_notes=[w["secret"]])
    access.access_record(w["clinician_b"], "clinicalnote", w["secret"].pk)


def test_revoke_ends_access_at_once_and_keeps_history(consent_world):
    w = consent_world
    consent = _grant(w)
    assert _sees(w["clinician_b"], w["patient"])
    services.consent_revoke(consent=consent, actor=w["account"])
    assert _sees(w["clinician_b"], w["patient"]) is None
    consent.refresh_from_db()
    assert consent.status == "revoked" and consent.ended_by == w["account"]
    kinds = [
        e.kind for e in consent_selectors.events_about(objects=[consent])[str(consent.row_uuid)]
    ]
    assert kinds == ["consent.granted", "consent.revoked"]
    with pytest.raises(ValidationError, match="no longer active"):
        services.consent_revoke(consent=consent, actor=w["account"])


def test_revoking_one_grant_leaves_another(consent_world):
    w = consent_world
    first, second = _grant(w), _grant(w, scope_all=False, categories=["labs"])
    services.consent_revoke(consent=first, actor=w["account"])
    patient = _sees(w["clinician_b"], w["patient"])
    assert patient is not None and patient.categories == {"labs"}
    services.consent_revoke(consent=second, actor=w["account"])
    assert _sees(w["clinician_b"], w["patient"]) is None


def test_expired_consent_denies_before_any_task_runs(consent_world):
    w = consent_world
    consent = _grant(w, period_end=timezone.now() + dt.timedelta(days=1))
    assert _sees(w["clinician_b"], w["patient"])
    # Time passes: the end is now behind us (rows moved, no sweep run).
    past = timezone.now() - dt.timedelta(seconds=1)
    Consent.objects.filter(pk=consent.pk).update(period_end=past)
    PatientUserObjectPermission.objects.filter(source=consent.source).update(expires_at=past)
    assert _sees(w["clinician_b"], w["patient"]) is None
    consent.refresh_from_db()
    assert consent.status == "active" and consent.state == "expired"
    # The sweep then writes it down, once.
    assert services.grants_expire_due() == 1
    assert services.grants_expire_due() == 0
    consent.refresh_from_db()
    assert consent.status == "expired"
    assert not PatientUserObjectPermission.objects.filter(source=consent.source).exists()


def test_future_consent_starts_later(consent_world):
    w = consent_world
    _grant(w, period_start=timezone.now() + dt.timedelta(days=2))
    assert _sees(w["clinician_b"], w["patient"]) is None


def test_hospital_and_department_grantees(consent_world, make_staff):
    w = consent_world
    cardiology = department_ensure(hospital=w["b"], slug="cardiology", name="Cardiology")
    cardiologist = make_staff(w["b"], Role.CLINICIAN)
    membership_ensure(
        user=cardiologist, hospital=w["b"], role=Role.CLINICIAN, department=cardiology
    )
    _grant(w, grantee_kind="department", grantee_department=cardiology, grantee_user=None)
    assert _sees(cardiologist, w["patient"]) and _sees(w["clinician_b"], w["patient"]) is None
    _grant(w, grantee_kind="hospital", grantee_hospital=w["b"], grantee_user=None)
    assert _sees(w["clinician_b"], w["patient"])
    # Leaving the department removes what the department was granted.
    membership_ensure(user=cardiologist, hospital=w["b"], role=Role.HOSPITAL_ADMIN)
    assert _sees(cardiologist, w["patient"]) is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"period_end": timezone.now() - dt.timedelta(days=1)}, "after the start"),
        (
            {"period_start": timezone.now() + dt.timedelta(days=5),
             "period_end": timezone.now() + dt.timedelta(days=2)},
            "after the start",
        ),
        ({"scope_all": False, "categories": []}, "at least one"),
        ({"scope_all": False, "categories": ["gossip"]}, "Unknown categories"),
        ({"grantee_user": None}, "Choose who"),
        ({"purpose": "MARKETING"}, "purpose"),
    ],
)  # fmt: skip
def test_bad_consents_change_nothing(consent_world, kwargs, message):
    w = consent_world
    before = (
        Consent.objects.count(),
        PatientUserObjectPermission.objects.count(),
        Event.objects.count(),
    )
    with pytest.raises(ValidationError, match=message):
        _grant(w, **kwargs)
    after = (
        Consent.objects.count(),
        PatientUserObjectPermission.objects.count(),
        Event.objects.count(),
    )
    assert before == after


def test_only_the_patient_can_grant(consent_world):
    w = consent_world
    with pytest.raises(ValidationError):
        _grant(w, actor=w["other_account"])
    with pytest.raises(ValidationError):
        _grant(w, patient=w["other"])  # another patient's registration


def test_break_glass_flags_notifies_and_ends_on_time(consent_world):
    w = consent_world
    with pytest.raises(ValidationError, match="reason"):
        services.break_glass_open(
            user=w["clinician_b"], user_hospital=w["b"], patient=w["patient"], reason="x"
        )
    glass = services.break_glass_open(
        user=w["clinician_b"], user_hospital=w["b"], patient=w["patient"],
        reason="Unconscious in the emergency department",
    )  # fmt: skip
    assert glass.expires_at - glass.started_at == dt.timedelta(hours=4)
    patient = _sees(w["clinician_b"], w["patient"])
    assert patient.break_glass and patient.purpose == "ETREAT"
    assert Notification.objects.filter(user=w["account"], flagged=True).exists()
    assert Notification.objects.filter(user=w["admin_a"], flagged=True).exists()
    assert not Notification.objects.filter(user=w["admin_b"]).exists()
    # The e-mails go out once, however often the task is delivered.
    assert services.break_glass_mail(glass_id=glass.pk) == 2
    assert services.break_glass_mail(glass_id=glass.pk) == 0
    assert {tuple(m.to) for m in mail.outbox} == {("pat@example.org",), ("admin-a@example.org",)}
    assert all("Unconscious" not in m.body for m in mail.outbox)  # the reason stays inside
    assert Event.objects.filter(kind="breakglass.opened", patient_id=w["patient"].pk).exists()
    # Four hours later (moved, not waited for), access has ended.
    BreakGlass.objects.filter(pk=glass.pk).update(expires_at=timezone.now())
    PatientUserObjectPermission.objects.filter(source=glass.source).update(
        expires_at=timezone.now()
    )
    assert _sees(w["clinician_b"], w["patient"]) is None
    services.grants_expire_due()  # tidies the ended rows up
    assert not PatientUserObjectPermission.objects.filter(source=glass.source).exists()


def test_access_request_approve_once(consent_world):
    w = consent_world
    request = services.access_request_create(
        requester=w["clinician_b"], requester_hospital=w["b"], patient_hospital=w["a"],
        mrn="SM-100", birth_date=dt.date(1970, 2, 3),
    )  # fmt: skip
    # Addressed to the patient (their dashboard lists it); the chart is named only on approval.
    assert request.addressee == w["patient"] and request.patient is None
    assert [r.pk for r in consent_selectors.access_requests_for_owner(user=w["account"])] == [
        request.pk
    ]
    with pytest.raises(ValidationError, match="not addressed to you"):
        services.access_request_decide(request=request, actor=w["other_account"], approve=True)
    services.access_request_decide(
        request=request, actor=w["account"], approve=True, scope_all=False, categories=["labs"]
    )
    assert _sees(w["clinician_b"], w["patient"]).categories == {"labs"}
    with pytest.raises(ValidationError, match="already been answered"):
        services.access_request_decide(request=request, actor=w["account"], approve=False)
    assert Consent.objects.filter(access_request=request).count() == 1
    request.refresh_from_db()
    assert request.status == "approved" and request.patient == w["patient"]
    assert Notification.objects.filter(user=w["clinician_b"], kind="access_request").exists()


def test_access_request_with_wrong_details_reveals_nothing(consent_world):
    w = consent_world
    request = services.access_request_create(
        requester=w["clinician_b"], requester_hospital=w["b"], patient_hospital=w["a"],
        mrn="SM-100", birth_date=dt.date(1999, 9, 9),
    )  # fmt: skip
    assert request.addressee is None and request.status == "pending"
    assert consent_selectors.access_requests_for_owner(user=w["account"]) == []
    denied = services.access_request_create(
        requester=w["clinician_b"], requester_hospital=w["b"], patient_hospital=w["a"],
        mrn="SM-100", birth_date=dt.date(1970, 2, 3),
    )  # fmt: skip
    services.access_request_decide(request=denied, actor=w["account"], approve=False)
    assert _sees(w["clinician_b"], w["patient"]) is None
    # The requester is not told of the denial: it reads as a request still waiting.
    denied.refresh_from_db()
    assert denied.status == "denied" and denied.requester_state == "pending"
    assert not Notification.objects.filter(user=w["clinician_b"]).exists()


def test_asking_twice_makes_two_requests_answered_at_once(consent_world):
    w = consent_world
    details = {
        "requester": w["clinician_b"], "requester_hospital": w["b"], "patient_hospital": w["a"],
        "mrn": "SM-100", "birth_date": dt.date(1970, 2, 3),
    }  # fmt: skip
    first = services.access_request_create(**details)
    second = services.access_request_create(**details)
    assert first.row_uuid != second.row_uuid
    second = services.access_request_decide(request=second, actor=w["account"], approve=True)
    first.refresh_from_db()
    assert first.status == second.status == "approved" and first.patient == w["patient"]
    assert Consent.objects.filter(grantee_user=w["clinician_b"]).count() == 1


def test_proxy_sees_within_grant_and_never_in_the_provider_portal(consent_world, make_patient_user):
    w = consent_world
    carer, _ = make_patient_user(w["b"])  # a carer with a patient account of their own
    invitation = services.proxy_invite(
        grantor=w["account"], proxy_username=carer.username, relationship="carer",
        scope_all=False, categories=["vitals"],
    )  # fmt: skip
    with pytest.raises(Http404):  # nothing before they accept
        access.access_patient_as_owner(carer, w["patient"].pk)
    grant = services.proxy_accept(invitation=invitation, actor=carer)
    # Later staff somewhere: the grant still opens no provider chart.
    factories.MembershipFactory(user=carer, hospital=w["a"], role=Role.CLINICIAN)
    PatientUserObjectPermission.objects.filter(user=carer, source="").delete()
    carer.groups.clear()  # not in the clinical group: only the proxy grant could show it
    opened = access.access_patient_as_owner(carer, w["patient"].pk)
    assert opened.proxy and opened.categories == {"vitals"}
    view = records_by_category(charts=[opened], category="vitals")
    assert [r.pk for r in view.records] == [w["vital"].pk]
    labs = records_by_category(charts=[opened], category="labs")
    assert labs.records == []
    assert _sees(carer, w["patient"]) is None  # proxy grants never open provider charts
    with pytest.raises(Http404):
        access.access_patient_as_owner(carer, w["other"].pk)
    services.proxy_revoke(grant=grant, actor=w["account"])
    with pytest.raises(Http404):
        access.access_patient_as_owner(carer, w["patient"].pk)
    assert ProxyGrant.objects.get(pk=grant.pk).status == "revoked"


def test_proxy_bad_input(consent_world):
    w = consent_world
    with pytest.raises(ValidationError, match="your own username"):
        services.proxy_invite(
            grantor=w["account"], proxy_username=w["account"].username, relationship="carer"
        )
    with pytest.raises(ValidationError, match="relationship"):
        services.proxy_invite(grantor=w["account"], proxy_username="someone", relationship="boss")
    with pytest.raises(ValidationError, match="Only a patient"):
        services.proxy_invite(
            grantor=w["clinician_a"], proxy_username="someone", relationship="carer"
        )
    assert not ProxyGrant.objects.exists() and not ProxyInvitation.objects.exists()


def test_every_change_is_a_verifiable_ledger_event(consent_world):
    w = consent_world
    consent = _grant(w)
    services.consent_revoke(consent=consent, actor=w["account"])
    request = services.access_request_create(
        requester=w["clinician_b"], requester_hospital=w["b"], patient_hospital=w["a"],
        mrn="SM-100", birth_date=dt.date(1970, 2, 3),
    )  # fmt: skip
    services.access_request_decide(request=request, actor=w["account"], approve=False)
    services.break_glass_open(
        user=w["clinician_b"], user_hospital=w["b"], patient=w["patient"],
        reason="Cardiac arrest on arrival",
    )  # fmt: skip
    invitation = services.proxy_invite(
        grantor=w["account"], proxy_username=w["other_account"].username, relationship="family"
    )
    services.proxy_accept(invitation=invitation, actor=w["other_account"])
    ledger_anchor_pending()
    key = load_verifier_key(log_signer().vkey())
    kinds = set()
    for event in Event.objects.filter(patient_id=w["patient"].pk).exclude(kind__endswith="created"):
        kinds.add(event.kind)
        verify_receipt(receipt_for_event(event=event), key)
    assert {"consent.granted", "consent.revoked", "accessrequest.denied", "breakglass.opened",
            "proxy.invited", "proxy.accepted", "proxy.granted"} <= kinds  # fmt: skip
    assert AccessRequest.objects.count() == 1


def test_unanswered_requests_expire(consent_world):
    w = consent_world
    request = services.access_request_create(
        requester=w["clinician_b"], requester_hospital=w["b"], patient_hospital=w["a"],
        mrn="SM-100", birth_date=dt.date(1970, 2, 3),
    )  # fmt: skip
    assert request.state == "pending"
    AccessRequest.objects.filter(pk=request.pk).update(
        created_at=timezone.now() - AccessRequest.ANSWER_WITHIN
    )
    request.refresh_from_db()
    assert request.state == "expired" and request.state_label.startswith("Expired")
    with pytest.raises(ValidationError, match="expired"):
        services.access_request_decide(request=request, actor=w["account"], approve=True)
    assert _sees(w["clinician_b"], w["patient"]) is None
    assert not Consent.objects.exists()
