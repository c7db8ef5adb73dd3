"""Coverage: every row that holds clinical data or grants access is accounted for by its own
ledger events. Rows written, changed or deleted behind the application's back (direct SQL)
are named by verify_ledger; rows the services wrote, changed and removed verify clean."""

from __future__ import annotations

import datetime as dt
import uuid
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection, models
from django.utils import timezone

from consent import services as consent_services
from ledger import anchoring, subjects
from ledger.verification import ledger_verify
from portal.accounts.models import TOTPDevice
from portal.api.models import ApiToken
from portal.api.services import token_issue
from portal.records import services as records_services
from portal.records.models import (
    CareTeamMember,
    Condition,
    PatientGroupObjectPermission,
    PatientUserObjectPermission,
)
from portal.tenancy.models import Membership, Role
from portal.tenancy.scoping import unscoped
from portal.tenancy.selectors import hospital_clinical_group
from tests.api import conftest as api_fixtures
from tests.ledger.conftest import tamper

pytestmark = pytest.mark.django_db
# The API's two-hospital world (charts, staff and patient tokens) and its JSON client.
api_world = api_fixtures.api_world
api = api_fixtures.api


def _findings() -> list[str]:
    return [str(f) for f in ledger_verify().findings]


def _named(findings: list[str], model: type[models.Model], key: Any, problem: str) -> bool:
    ref = f"subject {model._meta.label_lower} {key}:"
    return any(f.startswith(ref) and problem in f for f in findings)


def _insert_copy(model: type[models.Model], pk: int, **values: Any) -> None:
    """INSERT a copy of one row with some columns replaced, in SQL, as an insider would."""
    q = connection.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    select, params = [], []
    for f in fields:
        if f.attname in values:
            select.append("%s")
            params.append(f.get_db_prep_save(values[f.attname], connection))
        else:
            select.append(q(f.column))
    table = q(model._meta.db_table)
    columns = ", ".join(q(f.column) for f in fields)
    tamper(
        f"INSERT INTO {table} ({columns}) SELECT {', '.join(select)} "
        f"FROM {table} WHERE {q(model._meta.pk.column)} = %s",
        (*params, pk),
    )


def _perm(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="records", codename=codename)


@pytest.fixture
def world(api_world, make_staff):
    """api_world (two hospitals, charts, tokens), a records clerk, a care team entry and a
    consent, all written through the services, then anchored."""
    a, b = api_world["a"], api_world["b"]
    clerk = make_staff(a["hospital"], Role.RECORDS_CLERK)
    nurse_b = make_staff(b["hospital"], Role.NURSE)
    colleague = make_staff(a["hospital"], Role.NURSE)
    with unscoped():
        member = records_services.care_team_add(
            patient=a["restricted"], user=colleague, actor=a["clinician"]
        )
        consent = consent_services.consent_grant(
            patient=a["patient"], actor=a["account"], grantee_kind="practitioner",
            grantee_user=b["clinician"], scope_all=False, categories=["labs"],
        )  # fmt: skip
    anchoring.ledger_anchor_pending()
    return {
        **api_world, "clerk": clerk, "nurse_b": nurse_b, "colleague": colleague,
        "member": member, "consent": consent,
    }  # fmt: skip


def test_rows_written_through_the_services_verify_clean(world):
    report = ledger_verify()
    assert [str(f) for f in report.findings] == []
    assert report.covered_rows >= PatientUserObjectPermission.objects.count() > 0


def test_permission_row_for_another_hospitals_nurse_is_named(world, api):
    a, nurse = world["a"], world["nurse_b"]
    token = token_issue(user=nurse, name="ci", audience="staff", two_factor=True)[1]
    chart = f"/api/v1/patients/{a['patient'].pk}/chart/"
    assert api(token).get(chart).status_code == 404
    tamper(
        "INSERT INTO records_patientuserobjectpermission "
        "(user_id, permission_id, content_object_id, source, starts_at, expires_at) "
        "VALUES (%s, %s, %s, '', NULL, NULL)",
        (nurse.pk, _perm("view_patient").pk, a["patient"].pk),
    )
    # The row works: she reads another hospital's chart through the API...
    assert api(token).get(chart).status_code == 200
    # ...and verify_ledger names it.
    row = PatientUserObjectPermission.objects.get(user=nurse)
    assert _named(_findings(), PatientUserObjectPermission, row.pk, "row has no event")


def test_group_membership_row_inserted_is_named(world):
    group = hospital_clinical_group(hospital_id=world["a"]["hospital"].pk)
    nurse = world["nurse_b"]
    tamper("INSERT INTO auth_user_groups (user_id, group_id) VALUES (%s, %s)", (nurse.pk, group.pk))
    row = User.groups.through.objects.get(user=nurse, group=group)
    assert _named(_findings(), User.groups.through, row.pk, "row has no event")


def _read(world, record) -> None:
    """A clinician of the chart's hospital reads the record (a `record.read` event)."""
    from portal.records import access, audit

    clinician = world["a"]["clinician"]
    chart = access.open_chart(user=clinician, patient_id=record.patient_id)
    audit.chart_read_record(reader=clinician, chart=chart, record=record)


def test_condition_inserted_into_a_chart_is_named(world):
    condition = world["a"]["condition"]
    row_uuid = uuid.uuid4()
    _insert_copy(Condition, condition.pk, row_uuid=row_uuid)
    assert _named(_findings(), Condition, row_uuid, "row has no event")


def test_record_edited_then_read_is_still_named(world):
    """A read records what was shown; it does not vouch for the row's state."""
    condition = world["a"]["condition"]
    tamper(
        "UPDATE records_condition SET onset_date = %s WHERE id = %s", ("2001-01-01", condition.pk)
    )
    _read(world, Condition._base_manager.get(pk=condition.pk))
    anchoring.ledger_anchor_pending()
    assert _named(_findings(), Condition, condition.row_uuid, "differs")


def test_records_clerk_made_clinician_is_named(world):
    membership = Membership._base_manager.get(user=world["clerk"])
    tamper("UPDATE tenancy_membership SET role = 'clinician' WHERE id = %s", (membership.pk,))
    assert _named(_findings(), Membership, membership.pk, "differs")


def test_membership_changed_before_anchoring_is_named(world):
    """The last event still pending: the row is compared with the pending event's digest."""
    from portal.tenancy import services as tenancy_services

    membership = Membership._base_manager.get(user=world["clerk"])
    tenancy_services.membership_update(
        membership=membership, role=Role.NURSE, department=None, is_active=True,
        actor=world["a"]["clinician"],
    )  # fmt: skip
    assert _findings() == []
    tamper("UPDATE tenancy_membership SET role = 'clinician' WHERE id = %s", (membership.pk,))
    assert _named(_findings(), Membership, membership.pk, "row differs from its last event")


def test_consent_widened_is_named(world):
    consent, b = world["consent"], world["b"]
    tamper(
        "INSERT INTO records_patientuserobjectpermission "
        "(user_id, permission_id, content_object_id, source, starts_at, expires_at) "
        "VALUES (%s, %s, %s, %s, NULL, NULL)",
        (b["clinician"].pk, _perm("view_patient").pk, consent.patient_id, consent.source),
    )
    tamper("UPDATE consent_consent SET scope_all = %s WHERE id = %s", (True, consent.pk))
    findings = _findings()
    row = PatientUserObjectPermission.objects.get(
        source=consent.source, permission__codename="view_patient"
    )
    assert _named(findings, PatientUserObjectPermission, row.pk, "row has no event")
    assert _named(findings, type(consent), consent.row_uuid, "differs")


def test_totp_device_inserted_is_named(world):
    device = TOTPDevice.objects.filter(user=world["clerk"]).get()
    row_uuid = uuid.uuid4()
    _insert_copy(TOTPDevice, device.pk, row_uuid=row_uuid, user_id=world["nurse_b"].pk)
    assert _named(_findings(), TOTPDevice, row_uuid, "row has no event")


def test_api_token_inserted_is_named(world):
    token = ApiToken.objects.filter(user=world["a"]["clinician"]).first()
    assert token is not None
    _insert_copy(ApiToken, token.pk, token_hash="f" * 64, user_id=world["nurse_b"].pk)
    row = ApiToken.objects.get(token_hash="f" * 64)
    assert _named(_findings(), ApiToken, row.pk, "row has no event")


def test_rows_deleted_behind_the_applications_back_are_named(world):
    member = world["member"]
    row = PatientGroupObjectPermission.objects.filter(content_object=world["a"]["patient"]).first()
    assert row is not None
    tamper("DELETE FROM records_careteammember WHERE id = %s", (member.pk,))
    tamper("DELETE FROM records_patientgroupobjectpermission WHERE id = %s", (row.pk,))
    findings = _findings()
    assert _named(findings, CareTeamMember, member.pk, "gone")
    assert _named(findings, PatientGroupObjectPermission, row.pk, "gone")


def test_removed_row_put_back_is_named(world):
    """Removal through the service verifies clean; the row put back in SQL is named."""
    member, a = world["member"], world["a"]
    with unscoped():
        records_services.care_team_remove(
            patient=a["restricted"], user=world["colleague"], actor=a["clinician"]
        )
        consent_services.consent_revoke(consent=world["consent"], actor=a["account"])
    assert _findings() == []
    anchoring.ledger_anchor_pending()
    assert _findings() == []
    tamper(
        "INSERT INTO records_careteammember (id, hospital_id, patient_id, user_id, added_by_id, "
        "added_at) VALUES (%s, %s, %s, %s, %s, %s)",
        (
            member.pk, member.hospital_id, member.patient_id, member.user_id,
            member.added_by_id, timezone.now(),
        ),
    )  # fmt: skip
    assert _named(_findings(), CareTeamMember, member.pk, "its last event (careteam.removed)")


def test_every_grant_source_is_a_registered_subject():
    """The tables the live-grant view reads, memberships, devices and tokens are covered."""
    labels = set(subjects.registered())
    assert {
        "records.patientuserobjectpermission",
        "records.patientgroupobjectpermission",
        "records.clinicalnoteuserobjectpermission",
        "records.careteammember",
        "records.patient",
        "records.condition",
        "tenancy.membership",
        "auth.user_groups",
        "accounts.totpdevice",
        "api.apitoken",
        "consent.consent",
        "consent.proxygrant",
        "consent.proxyinvitation",
        "consent.breakglass",
        "consent.accessrequest",
    } <= labels


def test_freshly_seeded_demo_verifies_clean(db):
    call_command("seed_demo", "--patients", "3", "--records-per-patient", "2", stdout=StringIO())
    assert _findings() == []
    anchoring.ledger_anchor_pending()
    report = ledger_verify()
    assert [str(f) for f in report.findings] == []
    assert report.covered_rows > 0


def test_expired_break_glass_rows_swept_with_events(world):
    a, b = world["a"], world["b"]
    with unscoped():
        consent_services.break_glass_open(
            user=b["clinician"], user_hospital=b["hospital"], patient=a["patient"],
            reason="Unconscious in the emergency department",
        )  # fmt: skip
    consent_services.grants_expire_due(now=timezone.now() + dt.timedelta(days=2))
    assert not PatientUserObjectPermission.objects.filter(source__startswith="breakglass:")
    anchoring.ledger_anchor_pending()
    assert _findings() == []


def test_backfill_accounts_for_rows_from_before_coverage(world):
    """An upgraded database: rows written before their model was covered have no event.
    `ledger_backfill` records one `backfilled` event each, once; verify_ledger is then clean."""
    nurse = world["nurse_b"]
    group = hospital_clinical_group(hospital_id=world["b"]["hospital"].pk)
    tamper("DELETE FROM auth_user_groups WHERE user_id = %s", (nurse.pk,))
    tamper("INSERT INTO auth_user_groups (user_id, group_id) VALUES (%s, %s)", (nurse.pk, group.pk))
    row = User.groups.through.objects.get(user=nurse, group=group)
    assert _named(_findings(), User.groups.through, row.pk, "row has no event")
    out = StringIO()
    call_command("ledger_backfill", stdout=out)
    assert "auth.user_groups: recorded 1 backfill event(s)" in out.getvalue()
    anchoring.ledger_anchor_pending()
    findings = _findings()
    assert not _named(findings, User.groups.through, row.pk, "")
    out = StringIO()
    call_command("ledger_backfill", stdout=out)
    assert out.getvalue().startswith("0 row(s) without an event")


def test_every_grant_path_through_the_services_is_accounted_for(every_grant):
    """Consents (granted, revoked), break-glass, proxy and restricted-note grants, a
    restriction and a care team entry: each row and each removal has its event. The one row
    the fixture writes behind the services' back (a user added to a group directly) is named."""
    _world, users = every_grant
    anchoring.ledger_anchor_pending()
    (finding,) = _findings()
    row = User.groups.through.objects.get(
        user=users["department"], group__name="security-cardiology"
    )
    assert finding.startswith(f"subject auth.user_groups {row.pk}: row has no event")


def test_admin_and_account_changes_verify_clean(world):
    """A membership deactivated (its group rows go, with events), an admin's reset of a
    user's sign-in devices (each device removed with its event)."""
    from portal.accounts import services as accounts_services
    from portal.tenancy import services as tenancy_services

    a, clerk = world["a"], world["clerk"]
    membership = Membership._base_manager.get(user=clerk)
    tenancy_services.membership_update(
        membership=membership, role=membership.role, department=None, is_active=False,
        actor=a["clinician"],
    )  # fmt: skip
    assert not User.groups.through.objects.filter(user=clerk).exists()
    admin_device = TOTPDevice.objects.filter(user=a["clinician"]).get()
    removed = accounts_services.totp_devices_reset(
        user=clerk, actor=a["clinician"], verified_by=admin_device
    )
    assert removed == 1
    assert _findings() == []
    anchoring.ledger_anchor_pending()
    assert _findings() == []
