"""A role, department or active change made in the admin goes through the tenancy service:
a `membership.changed` ledger event (ids and codes only) and groups brought in step."""

from __future__ import annotations

from django.contrib.auth.models import Group

from ledger.models import Event
from portal.tenancy.models import Membership, Role
from portal.tenancy.services import department_ensure


def _post(client, membership, **data):
    form = {
        "role": membership.role,
        "department": membership.department_id or "",
        "is_active": "on" if membership.is_active else "",
        **data,
    }
    form = {k: v for k, v in form.items() if v != ""}
    return client.post(f"/admin/tenancy/membership/{membership.pk}/change/", form)


def test_role_change_is_a_ledger_event_and_syncs_groups(client, sign_in, world):
    hospital = world["a"]
    member = Membership._base_manager.get(user=world["clinician_a"], hospital=hospital)
    clinical = Group.objects.get(name=f"hospital-{hospital.pk}-clinical-staff")
    assert world["clinician_a"].groups.filter(pk=clinical.pk).exists()
    before = Event.objects.filter(kind="membership.changed").count()
    sign_in(client, world["admin_a"])
    response = _post(client, member, role=Role.HOSPITAL_ADMIN)
    assert response.status_code == 302, response.content.decode()[:2000]
    member.refresh_from_db()
    assert member.role == Role.HOSPITAL_ADMIN
    assert not world["clinician_a"].groups.filter(pk=clinical.pk).exists()
    events = Event.objects.filter(kind="membership.changed").order_by("id")
    assert events.count() == before + 1
    event = events.last()
    assert event.actor_id == world["admin_a"].pk
    assert event.hospital_id == hospital.pk
    assert event.subject_type == "tenancy.membership" and event.subject_id == str(member.pk)
    assert event.attrs["role"] == "hospital_admin" and event.attrs["old_role"] == "clinician"
    assert event.attrs["user"] == world["clinician_a"].pk
    # Nothing but ids and codes in the leaf.
    assert b"clin-a" not in bytes(event.leaf) and b"Doc" not in bytes(event.leaf)

    # Back to nurse, in a department: a second event and the department's group.
    department = department_ensure(hospital=hospital, slug="cardio", name="Cardiology")
    response = _post(client, member, role=Role.NURSE, department=department.pk)
    assert response.status_code == 302
    assert world["clinician_a"].groups.filter(pk=clinical.pk).exists()
    assert world["clinician_a"].groups.filter(name=department.group_name).exists()
    assert events.count() == before + 2
    assert events.last().attrs["department"] == department.pk

    # Deactivated: out of every group. Saving with no change records nothing.
    response = _post(client, member, is_active="")
    assert response.status_code == 302
    assert not world["clinician_a"].groups.filter(pk=clinical.pk).exists()
    assert not world["clinician_a"].groups.filter(name=department.group_name).exists()
    assert events.count() == before + 3
    member.refresh_from_db()
    _post(client, member)
    assert events.count() == before + 3


def test_foreign_department_and_adding_staff(client, sign_in, world):
    from tests import factories

    foreign = department_ensure(hospital=world["b"], slug="ortho", name="Orthopaedics")
    member = Membership._base_manager.get(user=world["clinician_a"], hospital=world["a"])
    sign_in(client, world["admin_a"])
    response = _post(client, member, department=foreign.pk)
    assert response.status_code == 200  # the form again: not a choice for this admin
    member.refresh_from_db()
    assert member.department_id is None

    newcomer = factories.UserFactory()
    # The account is typed as its exact username (the form lists no accounts).
    form = {"user": newcomer.username, "hospital": world["a"].pk, "role": Role.NURSE}
    response = client.post("/admin/tenancy/membership/add/", {**form, "is_active": "on"})
    assert response.status_code == 302
    added = Membership._base_manager.get(user=newcomer)
    event = Event.objects.filter(kind="membership.changed").order_by("id").last()
    assert event.subject_id == str(added.pk) and event.attrs["created"] is True
    assert newcomer.groups.filter(name=f"hospital-{world['a'].pk}-clinical-staff").exists()


def test_auditor_cannot_put_a_department_of_another_hospital(client, sign_in, world, auditor):
    foreign = department_ensure(hospital=world["b"], slug="ortho", name="Orthopaedics")
    member = Membership._base_manager.get(user=world["clinician_a"], hospital=world["a"])
    sign_in(client, auditor)
    response = _post(client, member, department=foreign.pk)
    assert response.status_code == 200
    assert b"belongs to another hospital" in response.content


def test_membership_ensure_is_ledgered_too(world):
    from portal.tenancy.services import membership_ensure

    before = Event.objects.filter(kind="membership.changed").count()
    membership_ensure(user=world["clinician_a"], hospital=world["a"], role=Role.NURSE)
    membership_ensure(user=world["clinician_a"], hospital=world["a"], role=Role.NURSE)
    assert Event.objects.filter(kind="membership.changed").count() == before + 1


def test_departments_and_hospitals_through_services(client, sign_in, world, auditor):
    from portal.tenancy.models import Department, Hospital

    sign_in(client, world["admin_a"])
    response = client.post(
        "/admin/tenancy/department/add/",
        {"hospital": world["b"].pk, "name": "Theirs", "slug": "theirs"},
    )
    assert response.status_code == 200  # not a choice
    response = client.post(
        "/admin/tenancy/department/add/",
        {"hospital": world["a"].pk, "name": "Cardiology", "slug": "cardio"},
    )
    assert response.status_code == 302
    department = Department.objects.get(slug="cardio")
    assert department.hospital == world["a"]
    response = client.post(
        f"/admin/tenancy/department/{department.pk}/change/", {"name": "Cardiology unit"}
    )
    assert response.status_code == 302
    department.refresh_from_db()
    assert department.name == "Cardiology unit" and department.slug == "cardio"
    assert (
        client.post("/admin/tenancy/hospital/add/", {"name": "X", "slug": "x"}).status_code == 403
    )

    sign_in(client, auditor)
    response = client.post("/admin/tenancy/hospital/add/", {"name": "Hilltop", "slug": "hilltop"})
    assert response.status_code == 302
    hilltop = Hospital.objects.get(slug="hilltop")
    response = client.post(f"/admin/tenancy/hospital/{hilltop.pk}/change/", {"name": "Hilltop"})
    assert response.status_code == 302
