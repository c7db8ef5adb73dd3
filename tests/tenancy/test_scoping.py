import pytest

from portal.records.models import Patient
from portal.tenancy.models import Membership
from portal.tenancy.scoping import ScopeError, hospital_scope, unscoped
from tests import factories


@pytest.fixture
def two_hospitals(hospital_a, hospital_b):
    factories.MembershipFactory(hospital=hospital_a)
    factories.MembershipFactory(hospital=hospital_b)
    factories.PatientFactory(hospital=hospital_a)
    factories.PatientFactory(hospital=hospital_b)
    return hospital_a, hospital_b


def test_tenant_manager_refuses_to_run_unscoped(two_hospitals):
    with pytest.raises(ScopeError, match="outside a hospital scope"):
        Membership.objects.all()
    with pytest.raises(ScopeError):
        Patient.objects.filter(mrn__startswith="MRN").count()
    with pytest.raises(ScopeError):
        Patient.objects.create(
            hospital=two_hospitals[0], mrn="X", given_name="a", family_name="b",
            birth_date="2000-01-01",
        )  # fmt: skip


def test_scope_limits_rows_to_the_scoped_hospital(two_hospitals):
    a, b = two_hospitals
    with hospital_scope(a):
        assert {m.hospital_id for m in Membership.objects.all()} == {a.pk}
        assert {p.hospital_id for p in Patient.objects.all()} == {a.pk}
        # Another hospital's row is simply not there, even by primary key.
        other = Patient._base_manager.get(hospital=b)
        assert not Patient.objects.filter(pk=other.pk).exists()
    with hospital_scope([a.pk, b.pk]):
        assert Patient.objects.count() == 2


def test_related_managers_are_scoped_too(two_hospitals):
    a, b = two_hospitals
    user = factories.UserFactory()
    factories.MembershipFactory(user=user, hospital=a)
    factories.MembershipFactory(user=user, hospital=b)
    with hospital_scope(b):
        assert [m.hospital_id for m in user.memberships.all()] == [b.pk]


def test_scopes_nest_and_restore(two_hospitals):
    a, b = two_hospitals
    with hospital_scope(a):
        with unscoped():
            assert Patient.objects.count() == 2
        with hospital_scope(str(b.pk)):  # ids as Celery passes them work too
            assert Patient.objects.get().hospital_id == b.pk
        assert Patient.objects.get().hospital_id == a.pk
    with pytest.raises(ScopeError):
        Patient.objects.count()
