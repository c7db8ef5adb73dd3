"""Provider portal forms: server-side validation with messages a clinician understands."""

from __future__ import annotations

from datetime import date

from django import forms
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from portal.records import codelists
from portal.records.catalog import DIASTOLIC, MEASURES, SYSTOLIC
from portal.records.models import ClinicalRecord, Patient
from portal.records.services import REASON_MAX
from portal.records.uploads import (
    DOCUMENT_TYPES,
    document_content_validate,
    document_rules_label,
    document_size_validate,
)

UNITS = sorted({m.unit for m in MEASURES.values()})
# The first option of every select of a clinical value: nothing is chosen for the user.
CHOOSE = ("", "Choose…")
REQUIRED_CHOICE = {"required": "Choose one from the list."}


class PatientSearchForm(forms.Form):
    q = forms.CharField(
        required=False, max_length=100, label="Find a patient",
        help_text="A name in either order (“Silva, Tom”, “tom silva”) or an MRN, whole or "
        "its first 3 or more characters (“Sil”, “SM-0”).",
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
    )  # fmt: skip


class _WhenMixin:
    def clean_effective_at(self):
        value = self.cleaned_data["effective_at"]
        if value > timezone.now() + timezone.timedelta(minutes=1):
            raise forms.ValidationError("This time is in the future.")
        return value


def _when_field() -> forms.DateTimeField:
    return forms.DateTimeField(
        label="Taken at",
        initial=lambda: timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
    )


class ObservationForm(_WhenMixin, forms.Form):
    code = forms.ChoiceField(
        label="Measurement",
        choices=[("", "Choose…")]
        + [(m.code, f"{m.display} ({m.code})") for m in MEASURES.values()],
        error_messages={"invalid_choice": "Unknown code: choose a measurement from the list."},
    )
    value = forms.DecimalField(max_digits=12, decimal_places=3)
    unit = forms.ChoiceField(
        choices=[CHOOSE] + [(u, u) for u in UNITS],
        error_messages={"invalid_choice": "Unknown unit.", **REQUIRED_CHOICE},
    )
    effective_at = _when_field()

    def __init__(self, *args, fixed_code: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fixed_code = fixed_code
        if fixed_code:
            self.fields["code"].required = False
            self.fields["code"].widget = forms.HiddenInput()

    def clean(self):
        data = super().clean()
        code = self.fixed_code or data.get("code")
        measure = MEASURES.get(code or "")
        if measure is None:
            return data
        data["code"] = code
        if data.get("unit") and data["unit"] != measure.unit:
            self.add_error("unit", f"{measure.display} is recorded in {measure.unit}.")
        value = data.get("value")
        if value is not None and not measure.low <= value <= measure.high:
            self.add_error(
                "value",
                f"{value} {measure.unit} is outside the plausible range for {measure.display} "
                f"({measure.low} to {measure.high}).",
            )
        data["measure"] = measure
        return data


class BloodPressureForm(_WhenMixin, forms.Form):
    systolic = forms.DecimalField(label="Systolic (mm[Hg])", max_digits=5, decimal_places=0)
    diastolic = forms.DecimalField(label="Diastolic (mm[Hg])", max_digits=5, decimal_places=0)
    effective_at = _when_field()

    def clean(self):
        data = super().clean()
        for name, measure in (("systolic", SYSTOLIC), ("diastolic", DIASTOLIC)):
            value = data.get(name)
            if value is not None and not measure.low <= value <= measure.high:
                self.add_error(name, f"{value} mm[Hg] is not a plausible {name} pressure.")
        s, d = data.get("systolic"), data.get("diastolic")
        if s is not None and d is not None and s <= d:
            self.add_error("diastolic", "The diastolic pressure must be lower than the systolic.")
        return data


class NoteForm(forms.Form):
    title = forms.CharField(max_length=200)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), max_length=20000)
    restricted = forms.BooleanField(
        required=False,
        label="Restricted note (for example psychotherapy): only people granted on this note "
        "may read it",
    )


class PatientRegisterForm(forms.Form):
    mrn = forms.RegexField(
        label="MRN", regex=r"^[A-Za-z0-9\-]{1,64}$",
        error_messages={"invalid": "Letters, digits and dashes only."},
    )  # fmt: skip
    given_name = forms.CharField(max_length=100)
    family_name = forms.CharField(max_length=100)
    birth_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    sex = forms.ChoiceField(
        choices=[CHOOSE, *Patient.Sex.choices], error_messages=REQUIRED_CHOICE,
        help_text="Choose Unknown if it is not known.",
    )  # fmt: skip
    phone = forms.RegexField(
        required=False, regex=r"^[0-9+() \-]{3,40}$",
        error_messages={"invalid": "Digits, spaces and + ( ) - only."},
    )  # fmt: skip

    def clean_birth_date(self):
        value = self.cleaned_data["birth_date"]
        if value > date.today():
            raise forms.ValidationError("The birth date is in the future.")
        return value


class CareTeamAddForm(forms.Form):
    username = forms.CharField(max_length=150, label="Add a colleague by username")


class DocumentUploadForm(forms.Form):
    title = forms.CharField(max_length=200)
    file = forms.FileField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Said before the upload, from the rule that checks it (portal.records.uploads).
        field = self.fields["file"]
        field.help_text = f"Accepted: {document_rules_label()}."
        field.widget.attrs.update(
            {"accept": ",".join(DOCUMENT_TYPES), "aria-describedby": "id_file-help"}
        )

    def clean_file(self):
        # The same rule as every other way a document comes in (portal.records.uploads).
        upload = self.cleaned_data["file"]
        document_size_validate(size=upload.size)
        content = upload.read()
        upload.seek(0)
        upload.declared_type = document_content_validate(
            content=content, declared_type=upload.content_type or ""
        )
        return upload


# Generic add/correct forms for the other record types (observations and blood pressure have
# their own forms with code, unit and range checks).
RECORD_FORM_FIELDS: dict[str, list[str]] = {
    "encounter": ["class_code", "type_code", "type_display", "reason", "period_start",
                  "period_end"],
    "condition": ["code", "display", "clinical_status", "onset_date", "abatement_date"],
    "medicationrequest": ["code", "display", "dosage", "request_status", "authored_on",
                          "valid_until"],
    "allergyintolerance": ["code", "display", "criticality", "reaction", "recorded_date"],
    "immunization": ["vaccine_code", "display", "occurrence"],
    "procedure": ["code", "display", "performed_at"],
    "clinicalnote": ["title", "text"],
}  # fmt: skip
RECORD_CHOICES = {
    "class_code": [CHOOSE, ("AMB", "Ambulatory"), ("IMP", "Inpatient"), ("EMER", "Emergency"),
                   ("VR", "Virtual")],
    "clinical_status": [CHOOSE] + [(c, c) for c in ("active", "recurrence", "relapse",
                                                    "inactive", "remission", "resolved")],
    "request_status": [CHOOSE] + [(c, c) for c in ("active", "on-hold", "completed",
                                                   "stopped")],
    "criticality": [CHOOSE] + [(c, c) for c in ("low", "high", "unable-to-assess")],
}  # fmt: skip
# Coded fields: (code field, display field, code list, what the list holds).
CODED: dict[str, tuple[str, str, str, str]] = {
    "encounter": ("type_code", "type_display", "encounter-types", "Type of encounter"),
    "condition": ("code", "display", "conditions", "Problem"),
    "medicationrequest": ("code", "display", "medications", "Medication"),
    "allergyintolerance": ("code", "display", "allergies", "Allergy or intolerance"),
    "immunization": ("vaccine_code", "display", "vaccines", "Vaccine"),
    "procedure": ("code", "display", "procedures", "Procedure"),
}


class CodePickerInput(forms.TextInput):
    """A text input with a searchable list of common codes (<input list> + <datalist>: the
    browser filters as one types, with no script). Free text stays possible."""

    def __init__(self, list_name: str, attrs: dict | None = None) -> None:
        super().__init__({"autocomplete": "off", **(attrs or {})})
        self.list_name = list_name

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["attrs"]["list"] = f"codes-{self.list_name}"
        return context

    def render(self, name, value, attrs=None, renderer=None):
        options = format_html_join(
            "", '<option value="{}"></option>',
            ((c.label,) for c in codelists.code_list(self.list_name)),
        )  # fmt: skip
        return format_html(
            '{}<datalist id="codes-{}">{}</datalist>',
            super().render(name, value, attrs, renderer), self.list_name, options,
        )  # fmt: skip


class _CodedRecordForm(forms.ModelForm):
    """A record form whose code comes from its display field: a pick from the list sends
    "Display (SYSTEM code)", split here; other text is kept as free text with no code. The
    API may send code and display apart (kept as given). In the portal (`pick_codes`) the
    code field is hidden and empty, so the display field alone decides."""

    coded: tuple[str, str, str, str] | None = None

    def __init__(self, *args, pick_codes: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if self.coded and pick_codes:
            code_field, display_field, list_name, what = self.coded
            self.fields[code_field].widget = forms.HiddenInput()
            system = codelists.SYSTEM_NAMES[codelists.LISTS[list_name]]
            self.fields[display_field].label = what
            self.fields[display_field].help_text = (
                f"Type to search common {system} codes and pick one, or describe it in your "
                "own words (kept as free text, without a code)."
            )

    @classmethod
    def initial_for(cls, record: ClinicalRecord, *, pick_codes: bool = False) -> dict:
        """A record's values as this form shows them (for a correction)."""
        initial = forms.model_to_dict(record, fields=cls._meta.fields)
        if cls.coded and pick_codes:
            code_field, display_field, list_name, _what = cls.coded
            code = initial.pop(code_field, "")
            if code:
                initial[display_field] = codelists.code_label(
                    code=code, display=initial.get(display_field) or "",
                    system=codelists.LISTS[list_name],
                )  # fmt: skip
        return initial

    def clean(self):
        data = super().clean()
        if not self.coded:
            return data
        code_field, display_field, list_name, what = self.coded
        text = (data.get(display_field) or "").strip()
        code = (data.get(code_field) or "").strip()
        picked = codelists.code_pick(name=list_name, text=text) if text else None
        if picked is not None:
            data[code_field], data[display_field] = picked
        elif code and not text:
            known = codelists.code_find(name=list_name, code=code)
            if known is None:
                self.add_error(display_field, "Describe it: this code is not in the list.")
            else:
                data[display_field] = known.display
        elif not text and display_field not in self.errors:
            self.add_error(display_field, f"{what}: pick one from the list or describe it.")
        return data


def record_form_class(record_type: str) -> type[forms.ModelForm]:
    from portal.records.selectors import RECORD_TYPES

    model = RECORD_TYPES[record_type]
    names = RECORD_FORM_FIELDS[record_type]
    coded = CODED.get(record_type)
    widgets = {}
    for name in names:
        field = model._meta.get_field(name)
        internal = field.get_internal_type()
        if internal == "DateTimeField":
            widgets[name] = forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            )
        elif internal == "DateField":
            widgets[name] = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    attrs: dict = {
        name: forms.ChoiceField(choices=RECORD_CHOICES[name], error_messages=REQUIRED_CHOICE)
        for name in names
        if name in RECORD_CHOICES
    }
    if coded:
        code_field, display_field, list_name, _what = coded
        # The display field carries a pick or free text; the code is optional (free text).
        attrs[display_field] = forms.CharField(
            max_length=model._meta.get_field(display_field).max_length, required=False,
            widget=CodePickerInput(list_name),
        )  # fmt: skip
        attrs[code_field] = forms.CharField(
            max_length=model._meta.get_field(code_field).max_length, required=False,
            label=f"{codelists.SYSTEM_NAMES[codelists.LISTS[list_name]]} code",
        )  # fmt: skip
    meta = type("Meta", (), {"model": model, "fields": names, "widgets": widgets})
    return type(
        f"{model.__name__}Form", (_CodedRecordForm,), {"Meta": meta, "coded": coded, **attrs}
    )


class CorrectionReasonMixin(forms.Form):
    correction_reason = forms.CharField(
        label="Reason for the correction", max_length=REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required. Shown in the record's history with the corrected version.",
        error_messages={"required": "Give the reason for this correction."},
    )  # fmt: skip


def correction_form_class(form_class: type[forms.BaseForm]) -> type[forms.BaseForm]:
    """The same form with the reason a correction must give (asked last)."""
    order = [*form_class.base_fields, "correction_reason"]
    return type(
        f"{form_class.__name__}Correction", (form_class, CorrectionReasonMixin),
        {"field_order": order},
    )  # fmt: skip


class _PatientDetailsForm(forms.Form):
    """A patient named by the details they gave the clinician: never by browsing."""

    hospital = forms.ModelChoiceField(
        queryset=None, label="Hospital where the patient is registered",
        error_messages={"invalid_choice": "Choose a hospital from the list."},
    )  # fmt: skip
    mrn = forms.CharField(label="Their MRN at that hospital", max_length=64)
    birth_date = forms.DateField(
        label="Their date of birth", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from portal.tenancy.models import Hospital

        self.fields["hospital"].queryset = Hospital.objects.order_by("name")


class AccessRequestForm(_PatientDetailsForm):
    purpose = forms.ChoiceField(label="Purpose", choices=())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from consent.models import Purpose

        self.fields["purpose"].choices = Purpose.choices


class BreakGlassForm(_PatientDetailsForm):
    reason = forms.CharField(
        label="Clinical reason for emergency access", min_length=10, max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded, reported to the patient and the hospital, and audited.",
    )  # fmt: skip
