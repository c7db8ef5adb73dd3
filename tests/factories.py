"""Factories. Tenant-owned rows are created through the base manager: fixtures are set-up
code, not a request, and must not need a hospital scope."""

from __future__ import annotations

import datetime as dt

import factory
from django.contrib.auth import get_user_model

from portal.accounts.models import TOTPDevice
from portal.records.models import Patient
from portal.tenancy.models import Hospital, Membership, Role

PASSWORD = "Correct-Horse-Battery-9"


class BaseManagerFactory(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    @classmethod
    def _get_manager(cls, model_class):
        return model_class._base_manager


class HospitalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Hospital
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"hospital-{n}")
    name = factory.Sequence(lambda n: f"Hospital {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TOTPDeviceFactory(factory.django.DjangoModelFactory):
    """A confirmed device with a random secret (or `secret=`), encrypted as the portal does."""

    class Meta:
        model = TOTPDevice

    user = factory.SubFactory(UserFactory)
    name = "test device"
    confirmed = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from portal.accounts.services import totp_device_create

        return totp_device_create(**kwargs)


class MembershipFactory(BaseManagerFactory):
    class Meta:
        model = Membership
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    hospital = factory.SubFactory(HospitalFactory)
    role = Role.CLINICIAN

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Through the service: the row, its ledger event and the groups in step.
        from portal.tenancy.services import membership_create

        return membership_create(actor=None, **kwargs)


class PatientFactory(BaseManagerFactory):
    class Meta:
        model = Patient
        skip_postgeneration_save = True

    hospital = factory.SubFactory(HospitalFactory)
    mrn = factory.Sequence(lambda n: f"MRN{n:06d}")
    given_name = factory.Faker("first_name")
    family_name = factory.Faker("last_name")
    birth_date = dt.date(1980, 5, 17)
    user = None

    @factory.post_generation
    def _grant(obj, create, extracted, **kwargs):
        # As patient_register does: the hospital's clinical staff may open the chart, and the
        # registration is a ledger event (verify_ledger accounts for every patient).
        if create:
            from ledger.events import event_record
            from portal.records.services import _grant_hospital_wide, patient_search_tokens_write

            patient_search_tokens_write(patient=obj)
            if not obj.restricted:
                _grant_hospital_wide(obj, None)
            event_record(
                kind="patient.registered",
                hospital=obj.hospital_id,
                subject=obj,
                actor=None,
                patient=obj,
            )
