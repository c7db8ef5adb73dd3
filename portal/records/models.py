"""Patients and clinical records, modelled on their FHIR R4 counterparts.

Records are never hard-deleted: a correction creates a new version that `replaces` the old
one, and the old one is marked entered-in-error, so the history stays readable.
Per-record access is django-guardian object permissions in direct foreign-key tables
(PatientUserObjectPermission, PatientGroupObjectPermission, ClinicalNoteUserObjectPermission),
written only by the registration, care-team and consent services.
"""

from __future__ import annotations

import base64
import datetime
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from portal.records.categories import CHART_CATEGORIES
from portal.records.fields import (
    BlindIndexField,
    EncryptedBinaryField,
    EncryptedCharField,
    EncryptedDateField,
    EncryptedDecimalField,
    EncryptedJSONField,
    EncryptedTextField,
)
from portal.records.keys_models import HospitalKey, SiteKey  # noqa: F401  (models of this app)
from portal.tenancy.models import Hospital
from portal.tenancy.scoping import TenantManager


class Patient(models.Model):
    """A patient's registration at one hospital (MRN unique per hospital).

    One person registered at several hospitals has one Patient row per hospital, all linked
    to the same account, which then sees every registration.
    """

    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Unknown"

    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="patients")
    # Names, identifiers and contact details are encrypted (AES-GCM, per-hospital data keys);
    # search uses the keyed blind indexes next to them.
    mrn = EncryptedCharField("MRN", max_length=64)
    mrn_index = BlindIndexField(source="mrn")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="patient_registrations",
    )
    given_name = EncryptedCharField(max_length=100)
    given_name_index = BlindIndexField(source="given_name")
    family_name = EncryptedCharField(max_length=100)
    family_name_index = BlindIndexField(source="family_name")
    birth_date = EncryptedDateField()
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    phone = EncryptedCharField(max_length=40, blank=True, null=True)
    # A VIP or an employee: only the care team may open the chart.
    restricted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hospital", "mrn_index"], name="mrn_unique_per_hospital"
            )
        ]
        # Names are ciphertext in the database: order by registration, not by name.
        ordering = ["id"]
        # Category-scoped views of a chart, granted by consents and proxies that cover only
        # some categories; `view_patient` is the whole chart.
        permissions = [
            (f"view_chart_{code}", f"Can view the chart's {label.lower()}")
            for code, label in CHART_CATEGORIES
        ]

    def __str__(self) -> str:
        return f"Patient {self.pk} at hospital {self.hospital_id}"


class PatientSearchToken(models.Model):
    """A keyed search token of a patient's name part or MRN prefix (portal.records.search_tokens).

    No plaintext: each token is HMAC-SHA256 under the hospital's index key, as the blind
    indexes on Patient are. One row per token, so a partial name or MRN is an indexed
    equality lookup; written and replaced only by the patient services (and the
    `search_tokens` command that fills them for patients registered before they existed).
    """

    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="search_tokens")
    token = models.CharField(max_length=32, db_index=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "token"], name="one_search_token_per_patient"
            )
        ]

    def __str__(self) -> str:
        return f"search token of patient {self.patient_id}"


class GrantFields(models.Model):
    """What every object-permission row also says: which grant wrote it, and until when.

    One user may hold the same permission on the same chart several times over (the
    hospital-wide grant, a care-team entry, a consent, a break-glass): each grant owns its own
    row, so revoking one never removes another. `source` is "" for registration and care-team
    grants, else "consent:<uuid>", "breakglass:<uuid>" or "proxy:<uuid>". A row whose
    `expires_at` has passed grants nothing, whether or not a sweep has deleted it yet.
    """

    source = models.CharField(max_length=64, default="", blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        holder = f"user {self.user_id}" if hasattr(self, "user_id") else f"group {self.group_id}"
        return f"{holder}: permission {self.permission_id} on {self.content_object_id}"


class PatientUserObjectPermission(GrantFields, UserObjectPermissionBase):
    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        abstract = False
        unique_together = ["user", "permission", "content_object", "source"]


class PatientGroupObjectPermission(GrantFields, GroupObjectPermissionBase):
    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE)

    class Meta(GroupObjectPermissionBase.Meta):
        abstract = False
        unique_together = ["group", "permission", "content_object", "source"]


class CareTeamMember(models.Model):
    """A named member of a patient's care team (the grant that survives restriction)."""

    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="care_team")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="care_teams"
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "user"], name="one_care_team_entry")
        ]

    def __str__(self) -> str:
        return f"care team of patient {self.patient_id}: user {self.user_id}"


class RecordStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ENTERED_IN_ERROR = "entered-in-error", "Entered in error"


class ClinicalRecord(models.Model):
    """Fields every clinical record shares: owner, patient, version history, author."""

    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=20, choices=RecordStatus.choices, default=RecordStatus.ACTIVE
    )
    version = models.PositiveIntegerField(default=1)
    replaces = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="replaced_by"
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Why a correction was made (set on the version that replaces another): clinical text,
    # so encrypted like the rest; the ledger digests it, never shows it.
    correction_reason = EncryptedTextField("reason for the correction", blank=True, null=True)

    objects = TenantManager()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.pk} of patient {self.patient_id}"


def end_not_before_start(record: models.Model, start: str, end: str) -> None:
    """The one rule for every period a record holds: its end may not come before its start.
    Called by the models' clean(), so that every way in (forms, API, FHIR, imports) meets it
    through the services' full_clean(); the message names both fields."""
    first, last = getattr(record, start), getattr(record, end)
    if first is None or last is None or last >= first:
        return
    opts = record._meta
    start_label = str(opts.get_field(start).verbose_name)
    end_label = str(opts.get_field(end).verbose_name)
    raise ValidationError(
        {end: f"The {end_label} ({_when(last)}) is before the {start_label} ({_when(first)}): "
              f"it must be the same or later."}
    )  # fmt: skip


def _when(value: datetime.date) -> str:
    if isinstance(value, datetime.datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    return value.strftime("%Y-%m-%d")


# What a record says is encrypted (codes, displays, units, statuses that tell a course or a
# severity, free text, values), each value bound to its hospital, model, field and row; only
# what the database must compare stays in clear (record status and version, observation
# category, dates and times, medication request status, document type and size). Codes are
# as telling as their displays (a SNOMED code for HIV is a diagnosis): none is in clear.
# Short coded values are padded (pad_to) so that a blob's length does not name its value.
# A code may be empty: a record described in free text (nothing in the code lists fitted).
CODE_PAD = 48  # codes up to 40 characters: one length for all of them
TEXT_PAD = 32  # displays and units: lengths in steps of 32 bytes
STATUS_PAD = 32  # statuses and classes ("unable-to-assess" is 16 bytes, + 1 of padding)


class Encounter(ClinicalRecord):
    # v3 ActCode: AMB, IMP, EMER, VR (an emergency or an admission is health information).
    class_code = EncryptedCharField(max_length=20, default="AMB", pad_to=STATUS_PAD)
    type_code = EncryptedCharField(max_length=40, blank=True, pad_to=CODE_PAD)
    type_display = EncryptedCharField(max_length=200, blank=True, pad_to=TEXT_PAD)
    reason = EncryptedTextField(blank=True, null=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["patient", "period_start"])]

    def clean(self) -> None:
        end_not_before_start(self, "period_start", "period_end")


class Observation(ClinicalRecord):
    """An observation: a vital sign, a lab value, a social-history fact, a survey's answer...

    A Quantity lives in `value` and `unit` (the trend charts read them, by `code_index`).
    What those columns cannot hold is kept, encrypted, as its FHIR elements
    (EncryptedJSONField, as the other imported structures are; records.observations reads
    them): `value_fhir` the value[x] of another type ({"type": "CodeableConcept", "value":
    {...}}, or a Quantity whose details the columns would lose), `components` a panel's
    components (blood pressure: 8480-6 and 8462-4, one row for the panel), `fhir_details` the
    rest (the code's other codings, every category coding, dataAbsentReason, effective[x]'s
    type, ...).
    """

    class Category(models.TextChoices):
        # FHIR R4 observation-category codes; "" for none (or none of these).
        SOCIAL_HISTORY = "social-history", "Social history"
        VITAL_SIGNS = "vital-signs", "Vital signs"
        IMAGING = "imaging", "Imaging"
        LABORATORY = "laboratory", "Laboratory"
        PROCEDURE = "procedure", "Procedure"
        SURVEY = "survey", "Survey"
        EXAM = "exam", "Exam"
        THERAPY = "therapy", "Therapy"
        ACTIVITY = "activity", "Activity"
        NONE = "", "Other"

    # In clear: consents and proxies that cover vital signs or labs only filter on it.
    category = models.CharField(max_length=20, choices=Category.choices, blank=True)
    code = EncryptedCharField("LOINC code", max_length=20, pad_to=CODE_PAD)
    # The trend charts keep each code's newest values in SQL (a window partitioned by code):
    # they partition by this keyed token of the code, bound to the patient, so a dump shows
    # neither the code nor which patients share one.
    code_index = BlindIndexField(
        source="code", purpose="observation_code", scope="patient_id", normalize=False
    )
    display = EncryptedCharField(max_length=200, pad_to=TEXT_PAD)
    # Empty when the value is not a Quantity (value_fhir), absent (dataAbsentReason) or a
    # panel's components hold it.
    value = EncryptedDecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    unit = EncryptedCharField(max_length=32, pad_to=TEXT_PAD, blank=True, null=True)
    value_fhir = EncryptedJSONField("value (FHIR)", blank=True, null=True)
    components = EncryptedJSONField(blank=True, null=True)
    fhir_details = EncryptedJSONField("FHIR details", blank=True, null=True)
    effective_at = models.DateTimeField()
    # effectivePeriod.end, when the observation covers a period.
    effective_end = models.DateTimeField("end of the period", null=True, blank=True)
    issued = models.DateTimeField(null=True, blank=True)
    encounter = models.ForeignKey(
        Encounter, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(
                fields=["patient", "code_index", "effective_at"],
                name="records_obs_patient_code_idx",
            )
        ]

    def clean(self) -> None:
        end_not_before_start(self, "effective_at", "effective_end")
        if self.value is not None and not self.unit:
            raise ValidationError({"unit": "A measured value needs its unit."})

    @property
    def value_label(self) -> str:
        """What it says, in words (records.observations.value_label)."""
        from portal.records.observations import value_label

        return value_label(self)


class Condition(ClinicalRecord):
    code = EncryptedCharField(blank=True, max_length=40, pad_to=CODE_PAD)  # SNOMED CT
    display = EncryptedCharField(max_length=200, pad_to=TEXT_PAD)
    # active, recurrence, relapse, inactive, remission, resolved: a relapse or a remission
    # tells the course of the illness.
    clinical_status = EncryptedCharField(max_length=20, default="active", pad_to=STATUS_PAD)
    onset_date = models.DateField(null=True, blank=True)
    abatement_date = models.DateField(null=True, blank=True)

    def clean(self) -> None:
        end_not_before_start(self, "onset_date", "abatement_date")


class MedicationRequest(ClinicalRecord):
    code = EncryptedCharField(blank=True, max_length=40, pad_to=CODE_PAD)  # RxNorm
    display = EncryptedCharField(max_length=200, pad_to=TEXT_PAD)
    dosage = EncryptedTextField(blank=True, null=True)
    # In clear: a workflow state (active, on-hold, completed, stopped) that says nothing
    # without the drug.
    request_status = models.CharField(max_length=20, default="active")
    authored_on = models.DateTimeField("start (authored on)")
    # Until when the prescription may be taken or dispensed (FHIR dispenseRequest
    # .validityPeriod.end); empty: no end set.
    valid_until = models.DateTimeField("end (valid until)", null=True, blank=True)

    def clean(self) -> None:
        end_not_before_start(self, "authored_on", "valid_until")


class AllergyIntolerance(ClinicalRecord):
    code = EncryptedCharField(blank=True, max_length=40, pad_to=CODE_PAD)
    display = EncryptedCharField(max_length=200, pad_to=TEXT_PAD)
    criticality = EncryptedCharField(max_length=20, default="unable-to-assess", pad_to=STATUS_PAD)
    reaction = EncryptedTextField(blank=True, null=True)
    recorded_date = models.DateTimeField()


class Immunization(ClinicalRecord):
    vaccine_code = EncryptedCharField(blank=True, max_length=20, pad_to=CODE_PAD)  # CVX
    display = EncryptedCharField(max_length=200, pad_to=TEXT_PAD)
    occurrence = models.DateTimeField()


class Procedure(ClinicalRecord):
    code = EncryptedCharField(blank=True, max_length=40, pad_to=CODE_PAD)
    display = EncryptedCharField(max_length=200, pad_to=TEXT_PAD)
    performed_at = models.DateTimeField()


class ClinicalNote(ClinicalRecord):
    """Free text. A restricted note (for example psychotherapy) is visible only to users
    granted on that very note."""

    title = EncryptedCharField(max_length=200)
    text = EncryptedTextField()
    restricted = models.BooleanField(default=False)


class ClinicalNoteUserObjectPermission(GrantFields, UserObjectPermissionBase):
    content_object = models.ForeignKey(ClinicalNote, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        abstract = False
        unique_together = ["user", "permission", "content_object", "source"]


class Document(ClinicalRecord):
    title = EncryptedCharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    # The content's digest in clear would confirm a guessed document and link copies of one
    # document across charts.
    sha256 = EncryptedCharField(max_length=64)
    content = EncryptedBinaryField()


# --- reports, plans, goals and imaging (FHIR imports) ---------------------------------------
# Nested structures are kept as FHIR gives them (CodeableConcepts, activities, targets,
# series) in encrypted JSON, so that they come back as they came in; references to other
# records name the portal's rows by id ({"observation": 12}, {"condition": 3}) or, when
# the sender's reference named nothing the portal holds, keep only its display text.


def concept_text(concept: Any) -> str:
    """What a stored CodeableConcept says in words: its text, else its first display/code."""
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and (coding.get("display") or coding.get("code")):
            return str(coding.get("display") or coding.get("code"))
    return ""


class DiagnosticReport(ClinicalRecord):
    """A report of tests: a lab panel, an imaging report, a clinician's note. Its results
    are Observations of the same chart (`results`: [{"observation": id, "display": ...}])."""

    # In clear: a workflow state (registered, preliminary, final, amended, ...).
    report_status = models.CharField("status", max_length=20, default="final")
    code = EncryptedJSONField("test")  # CodeableConcept (LOINC)
    category = EncryptedJSONField(default=list)  # [CodeableConcept]
    effective_at = models.DateTimeField("effective time")
    issued = models.DateTimeField(null=True, blank=True)
    results = EncryptedJSONField("results", default=list)
    # [{"contentType", "data" (base64), "title"?, ...}]: the attached report text
    # (Synthea: base64 text/plain notes), as sent.
    presented_form = EncryptedJSONField("report text", default=list)
    conclusion = EncryptedTextField(blank=True, null=True)
    conclusion_code = EncryptedJSONField("conclusion (coded)", default=list)
    encounter = models.ForeignKey(
        Encounter, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["patient", "effective_at"])]

    @property
    def name(self) -> str:
        return concept_text(self.code)

    @property
    def result_ids(self) -> list[int]:
        return [r["observation"] for r in self.results or [] if "observation" in r]

    @property
    def text(self) -> str:
        """The report's attached plain text, decoded (empty if none is text)."""
        parts = []
        for form in self.presented_form or []:
            content_type = str(form.get("contentType", ""))
            if content_type.startswith("text/") and form.get("data"):
                try:
                    parts.append(base64.b64decode(form["data"]).decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    continue
        return "\n\n".join(parts)


class CarePlan(ClinicalRecord):
    """A plan of care: what is planned (activities), for which problems (`addresses`:
    [{"condition": id, "display": ...}]), towards which goals (`goals`: [{"goal": id}])."""

    # In clear: workflow states (draft, active, completed, revoked; proposal, plan, order).
    plan_status = models.CharField("status", max_length=20, default="active")
    intent = models.CharField(max_length=20, default="plan")
    category = EncryptedJSONField(default=list)  # [CodeableConcept]
    title = EncryptedTextField(blank=True, null=True)
    description = EncryptedTextField(blank=True, null=True)
    period_start = models.DateTimeField("start")
    period_end = models.DateTimeField("end", null=True, blank=True)
    # [{"detail": {"code", "status", "location": {"display"}, ...}, "reference":
    # {"display"}}]: each activity as sent, its references as display text.
    activities = EncryptedJSONField(default=list)
    addresses = EncryptedJSONField("for the problems", default=list)
    goals = EncryptedJSONField(default=list)
    encounter = models.ForeignKey(
        Encounter, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    def clean(self) -> None:
        end_not_before_start(self, "period_start", "period_end")

    @property
    def name(self) -> str:
        if self.title:
            return str(self.title)
        names = [concept_text(c) for c in self.category or []]
        return next((n for n in names if n), "Care plan")

    @property
    def activity_names(self) -> list[tuple[str, str]]:
        """(what, status) of each activity."""
        out = []
        for activity in self.activities or []:
            detail = activity.get("detail") or {}
            what = concept_text(detail.get("code")) or str(detail.get("description") or "")
            what = what or str((activity.get("reference") or {}).get("display") or "")
            out.append((what, str(detail.get("status") or "")))
        return out


class Goal(ClinicalRecord):
    """A health goal (an HbA1c below 7.0, a weight), with its targets as sent."""

    # In clear: a workflow state (proposed, accepted, active, completed, cancelled, ...).
    lifecycle_status = models.CharField("status", max_length=20, default="active")
    achievement_status = EncryptedJSONField("progress", blank=True, null=True)  # CodeableConcept
    description = EncryptedJSONField("goal")  # CodeableConcept
    targets = EncryptedJSONField(default=list)  # [Goal.target]
    addresses = EncryptedJSONField("for the problems", default=list)
    start_date = models.DateField(null=True, blank=True)
    status_date = models.DateField(null=True, blank=True)

    @property
    def name(self) -> str:
        return concept_text(self.description)

    @property
    def achievement(self) -> str:
        return concept_text(self.achievement_status)


class ImagingStudy(ClinicalRecord):
    """An imaging study (DICOM): its series and instances (uid, body site, modality, SOP
    class, number) as sent."""

    # In clear: a workflow state (registered, available, cancelled).
    study_status = models.CharField("status", max_length=20, default="available")
    started = models.DateTimeField()
    identifiers = EncryptedJSONField("study identifiers", default=list)
    modality = EncryptedJSONField(default=list)  # [Coding]
    procedure_code = EncryptedJSONField("procedures", default=list)  # [CodeableConcept]
    series = EncryptedJSONField(default=list)  # [ImagingStudy.series]
    # Counts as sent (a study may list fewer series than it has): they say nothing
    # without the modality and the body site.
    number_of_series = models.PositiveIntegerField("series", null=True, blank=True)
    number_of_instances = models.PositiveIntegerField("images", null=True, blank=True)
    description = EncryptedTextField(blank=True, null=True)
    encounter = models.ForeignKey(
        Encounter, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    @property
    def modalities(self) -> list[str]:
        """The modalities in words (the study's, else its series'), each once."""
        codings = list(self.modality or []) + [s.get("modality") for s in self.series or []]
        names: list[str] = []
        for coding in codings:
            if isinstance(coding, dict):
                name = str(coding.get("display") or coding.get("code") or "")
                if name and name not in names:
                    names.append(name)
        return names

    @property
    def name(self) -> str:
        """ "Digital Radiography of the clavicle"."""
        what = ", ".join(self.modalities) or "Imaging study"
        sites = self.body_sites
        return f"{what} of the {', '.join(s.lower() for s in sites)}" if sites else what

    @property
    def series_count(self) -> int:
        return (
            self.number_of_series if self.number_of_series is not None else len(self.series or [])
        )

    @property
    def body_sites(self) -> list[str]:
        names: list[str] = []
        for s in self.series or []:
            site = s.get("bodySite")
            name = (
                str(site.get("display") or site.get("code") or "") if isinstance(site, dict) else ""
            )
            if name and name not in names:
                names.append(name)
        return names


RECORD_MODELS: tuple[type[ClinicalRecord], ...] = (
    Encounter,
    Observation,
    Condition,
    MedicationRequest,
    AllergyIntolerance,
    Immunization,
    Procedure,
    ClinicalNote,
    Document,
    DiagnosticReport,
    ImagingStudy,
    CarePlan,
    Goal,
)


def model_name(model: type[models.Model] | models.Model) -> str:
    """`_meta.model_name`, which every installed model has (the stubs allow None)."""
    name = model._meta.model_name
    if name is None:
        raise TypeError(f"{model!r} has no model name")
    return name


class LiveGrant(models.Model):
    """The grants that are live now, one row per (user, permission, object, grant): the
    database view `records_live_grant` (migration 0005), the one written form of the time
    window. Group rows come expanded to the group's members, so a membership change applies
    at once. Chart grants name a `patient`, restricted-note grants a `note`.

    Read only through portal.records.access, which decides what the rows mean (sources,
    categories, proxies, break-glass); nothing writes here (the rows live in the guardian
    tables above, written by records.grants).
    """

    id = models.CharField(primary_key=True, max_length=100)  # "u<row>", "g<row>:<user>", "n<row>"
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, related_name="+"
    )
    group = models.ForeignKey(
        "auth.Group", on_delete=models.DO_NOTHING, null=True, related_name="+"
    )
    patient = models.ForeignKey(Patient, on_delete=models.DO_NOTHING, null=True, related_name="+")
    note = models.ForeignKey(ClinicalNote, on_delete=models.DO_NOTHING, null=True, related_name="+")
    codename = models.CharField(max_length=100)
    source = models.CharField(max_length=64)
    expires_at = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = "records_live_grant"

    def __str__(self) -> str:
        return f"user {self.user_id}: {self.codename} ({self.source or 'own hospital'})"


class ChartContents(models.Model):
    """Which record types a chart holds (an active row of each), one row per patient: the
    database view `records_chart_contents` (migration 0005). It decides nothing about who
    sees what; records.access.open_chart reads it with the chart (select_related), so that
    the chart page queries only the record types present."""

    patient = models.OneToOneField(
        Patient, on_delete=models.DO_NOTHING, primary_key=True, related_name="contents"
    )
    encounter = models.BooleanField()
    observation = models.BooleanField()
    condition = models.BooleanField()
    medicationrequest = models.BooleanField()
    allergyintolerance = models.BooleanField()
    immunization = models.BooleanField()
    procedure = models.BooleanField()
    clinicalnote = models.BooleanField()
    document = models.BooleanField()
    diagnosticreport = models.BooleanField()
    imagingstudy = models.BooleanField()
    careplan = models.BooleanField()
    goal = models.BooleanField()

    class Meta:
        managed = False
        db_table = "records_chart_contents"

    def __str__(self) -> str:
        return f"contents of patient {self.patient_id}"
