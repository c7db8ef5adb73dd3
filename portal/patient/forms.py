"""Patient portal forms. Choices are limited to what the account may name: its own
registrations and restricted notes; another patient's id is simply not a valid choice."""

from __future__ import annotations

from datetime import datetime, time

from django import forms
from django.utils import timezone

from consent.models import Consent, ProxyGrant, Purpose
from consent.selectors import consent_grantee_choices
from portal import wording
from portal.records.categories import CHART_CATEGORIES
from portal.records.models import ClinicalNote, Patient, RecordStatus

DATE = {"widget": forms.DateInput(attrs={"type": "date"})}


def _end_of(day) -> datetime | None:
    """An end date is inclusive: access ends when that day is over in the site's time zone
    (portal.wording.end_of_day; every page shows that day back with period_end_label)."""
    if day is None:
        return None
    return wording.end_of_day(day)


class ScopeFields(forms.Form):
    scope_all = forms.TypedChoiceField(
        label="What may they see?", coerce=lambda v: v == "all", initial="all",
        choices=[("all", "All my records (except restricted notes)"),
                 ("some", "Only the categories I tick")],
        widget=forms.RadioSelect,
    )  # fmt: skip
    categories = forms.MultipleChoiceField(
        choices=CHART_CATEGORIES, required=False, widget=forms.CheckboxSelectMultiple
    )
    period_end = forms.DateField(
        label="Until (inclusive; leave empty for no end date)", required=False, **DATE
    )

    def clean(self):
        data = super().clean()
        if data.get("scope_all") is False and not data.get("categories"):
            self.add_error("categories", "Tick at least one category, or choose all records.")
        end = data.get("period_end")
        if end is not None and end < timezone.localdate():
            self.add_error("period_end", "This date is in the past.")
        data["period_end_at"] = _end_of(end)
        return data


class ConsentForm(ScopeFields):
    registration = forms.ModelChoiceField(
        queryset=Patient._base_manager.none(), label="Records at", empty_label=None,
        error_messages={"invalid_choice": "Choose one of your own registrations."},
    )  # fmt: skip
    grantee_kind = forms.ChoiceField(
        label="Share with", choices=Consent.GranteeKind.choices, widget=forms.RadioSelect
    )
    grantee_hospital = forms.ModelChoiceField(
        queryset=None, required=False, label="Hospital",
        error_messages={"invalid_choice": "That hospital does not exist."},
    )  # fmt: skip
    grantee_department = forms.ModelChoiceField(
        queryset=None, required=False, label="Department or team",
        error_messages={"invalid_choice": "That department does not exist."},
    )  # fmt: skip
    grantee_user = forms.ModelChoiceField(
        queryset=None, required=False, label="Practitioner",
        help_text="A clinician or nurse at any hospital.",
        error_messages={"invalid_choice": "That practitioner does not exist."},
    )  # fmt: skip
    restricted_notes = forms.ModelMultipleChoiceField(
        queryset=ClinicalNote._base_manager.none(), required=False,
        label="Restricted notes to share too (practitioner only)",
        widget=forms.CheckboxSelectMultiple,
    )  # fmt: skip
    purpose = forms.ChoiceField(choices=Purpose.choices, initial=Purpose.TREATMENT)
    period_start = forms.DateField(label="From", required=False, **DATE)

    field_order = [
        "registration", "grantee_kind", "grantee_hospital", "grantee_department", "grantee_user",
        "scope_all", "categories", "restricted_notes", "purpose", "period_start", "period_end",
    ]  # fmt: skip

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        choices = consent_grantee_choices()
        self.fields["registration"].queryset = Patient._base_manager.filter(
            user=user
        ).select_related("hospital")
        self.fields["registration"].label_from_instance = lambda p: p.hospital.name
        self.fields["grantee_hospital"].queryset = choices["hospitals"]
        self.fields["grantee_department"].queryset = choices["departments"]
        self.fields["grantee_user"].queryset = choices["practitioners"]
        self.fields["grantee_user"].label_from_instance = lambda u: (
            u.get_full_name() or u.get_username()
        )
        self.fields["restricted_notes"].queryset = ClinicalNote._base_manager.filter(
            patient__user=user, restricted=True, status=RecordStatus.ACTIVE
        )
        self.fields["restricted_notes"].label_from_instance = lambda n: (
            f"{n.title} ({n.created_at:%Y-%m-%d})"
        )
        if not self.fields["restricted_notes"].queryset.exists():
            del self.fields["restricted_notes"]  # nothing to offer: do not show the question

    def clean(self):
        data = super().clean()
        kind = data.get("grantee_kind")
        needed = {
            Consent.GranteeKind.HOSPITAL: "grantee_hospital",
            Consent.GranteeKind.DEPARTMENT: "grantee_department",
            Consent.GranteeKind.PRACTITIONER: "grantee_user",
        }.get(kind)
        if needed and not data.get(needed) and needed not in self.errors:
            self.add_error(needed, "Choose who may see your records.")
        start = data.get("period_start")
        today = timezone.localdate()
        if start is not None and start < today:
            self.add_error("period_start", "The start cannot be in the past.")
        end = data.get("period_end")
        if start and end and end < start and "period_end" not in self.errors:
            self.add_error(
                "period_end",
                f"The end date (Until, {end:%Y-%m-%d}) is before the start date (From, "
                f"{start:%Y-%m-%d}): it must be the same day or later.",
            )
        start_at = None
        if start is not None and start > today:
            start_at = datetime.combine(start, time.min, tzinfo=timezone.get_default_timezone())
        data["period_start_at"] = start_at
        data.setdefault("restricted_notes", [])
        if data.get("restricted_notes") and kind != Consent.GranteeKind.PRACTITIONER:
            self.add_error("restricted_notes", "Restricted notes can go to one practitioner only.")
        return data


class DecisionForm(ScopeFields):
    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("deny", "Deny")], widget=forms.RadioSelect
    )
    field_order = ["decision", "scope_all", "categories", "period_end"]


class ProxyForm(ScopeFields):
    proxy_username = forms.CharField(
        label="Their username", max_length=150,
        help_text="They must have a patient account here, and accept your invitation.",
    )  # fmt: skip
    relationship = forms.ChoiceField(choices=ProxyGrant.Relationship.choices)
    field_order = ["proxy_username", "relationship", "scope_all", "categories", "period_end"]
