"""Response bodies (and, through base.form_serializer, request bodies) of the REST API.

The serializers here are the one shape of every response: the views serialize what the
selectors return with them, and drf-spectacular describes the same classes in the OpenAPI
schema. Values the models hold in another shape (a record's own fields, a chart's series
by code, an invitation's status as its reader may know it) have their own fields here."""

from __future__ import annotations

import base64
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from portal.records import observations
from portal.records.access import RECORD_TYPES
from portal.records.categories import CHART_CATEGORIES
from portal.records.chart import TIMELINE_DATE
from portal.records.fields import BlindIndexField

RECORD_TYPE_CHOICES = sorted(RECORD_TYPES)
COMMON_FIELDS = {
    "id", "row_uuid", "hospital", "patient", "status", "version", "replaces", "recorded_by",
    "created_at",
}  # fmt: skip


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="What went wrong, in words.")
    detail = serializers.DictField(
        help_text="Field name (or non_field_errors) to messages; empty when there is nothing "
        "more to say."
    )


def _page(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    return type(
        name,
        (serializers.Serializer,),
        {
            "next": serializers.URLField(allow_null=True, help_text="The next (older) page."),
            "previous": serializers.URLField(allow_null=True, help_text="The newer page."),
            "results": item(many=True),
        },
    )


# --- fields for values the models hold in another shape ----------------------------------


class IsoDateTimeField(serializers.DateTimeField):
    """A moment as Python writes it (`isoformat()`, the offset it was stored with), the
    API's format since its first version."""

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class BlankAsNullField(serializers.CharField):
    """Text that may be empty: null when it is."""

    def to_representation(self, value: Any) -> str | None:
        return str(value) or None

    def get_attribute(self, instance: Any) -> Any:
        return super().get_attribute(instance) or None


class ListOrEmptyField(serializers.ListField):
    """A list column that may be null: [] when it is."""

    def get_attribute(self, instance: Any) -> Any:
        return list(super().get_attribute(instance) or [])


class SortedListField(serializers.ListField):
    def to_representation(self, data: Any) -> list[Any]:
        return super().to_representation(sorted(data))


class IdListField(serializers.ListField):
    """The ids of a to-many relation (prefetched by the selector: no query per row)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.IntegerField(), **kwargs)

    def get_attribute(self, instance: Any) -> list[int]:
        return [row.pk for row in super().get_attribute(instance).all()]


class UsernameField(serializers.CharField):
    def to_representation(self, user: Any) -> str:
        return user.get_username()


class PersonField(serializers.CharField):
    """A user by full name, else username."""

    def to_representation(self, user: Any) -> str:
        return user.get_full_name() or user.get_username()


def record_type(record: Any) -> str:
    return record._meta.model_name


def record_display(record: Any) -> str | None:
    return (
        getattr(record, "display", None)
        or getattr(record, "title", None)
        or getattr(record, "name", None)  # reports, care plans, goals, imaging studies
    )


class RecordTypeField(serializers.ChoiceField):
    def to_representation(self, record: Any) -> str:
        return record_type(record)


class RecordDisplayField(serializers.CharField):
    def to_representation(self, record: Any) -> str | None:
        return record_display(record)


class RecordDateField(IsoDateTimeField):
    """When it happened (each type's own date field: TIMELINE_DATE)."""

    def to_representation(self, record: Any) -> str | None:
        when = getattr(record, TIMELINE_DATE[record_type(record)])
        return when.isoformat() if when else None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class RecordDataField(serializers.DictField):
    """The type's own fields; a document's content (base64) when the serializer's context
    says `content` (the detail only)."""

    def to_representation(self, record: Any) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in record._meta.concrete_fields:
            if f.name in COMMON_FIELDS or f.name == "content" or isinstance(f, BlindIndexField):
                continue  # a search token (code_index) is the database's, not the record's
            data[f.attname] = _plain(getattr(record, f.attname))
        if record_type(record) == "observation":
            # Its FHIR parts as structures, not JSON text, and the value in words.
            data["value_fhir"] = observations.value(record)
            if data["value_fhir"] is not None:
                kind, content = data["value_fhir"]
                data["value_fhir"] = {"type": kind, "value": content}
            data["components"] = observations.components(record)
            data["fhir_details"] = observations.details(record)
            data["value_text"] = record.value_label
        if self.context.get("content") and record_type(record) == "document":
            data["content_base64"] = base64.b64encode(bytes(record.content)).decode("ascii")
        return data


# --- patients and records ----------------------------------------------------------------


class PatientSerializer(serializers.Serializer):
    # The selectors load the hospital with the patient: no query per row.

    id = serializers.IntegerField()
    hospital = serializers.CharField(source="hospital.slug", help_text="The hospital's slug.")
    hospital_name = serializers.CharField(source="hospital.name")
    mrn = serializers.CharField()
    given_name = serializers.CharField()
    family_name = serializers.CharField()
    birth_date = serializers.DateField()
    sex = serializers.CharField()
    phone = BlankAsNullField(allow_null=True)
    restricted = serializers.BooleanField()


class RecordSerializer(serializers.Serializer):
    # context={"content": True} adds a document's content (the detail only).

    id = serializers.IntegerField()
    type = RecordTypeField(choices=RECORD_TYPE_CHOICES, source="*")
    patient = serializers.IntegerField(source="patient_id")
    hospital = serializers.IntegerField(source="hospital_id")
    status = serializers.CharField()
    version = serializers.IntegerField()
    replaces = serializers.IntegerField(source="replaces_id", allow_null=True)
    created_at = IsoDateTimeField()
    date = RecordDateField(source="*", allow_null=True, help_text="When it happened.")
    display = RecordDisplayField(source="*", allow_null=True)
    data = RecordDataField(
        source="*",
        help_text="The type's own fields (decimals as strings; a document's content as "
        "content_base64 in the detail only; an observation's value also as value_fhir, its "
        "FHIR value[x] {type, value}, and in words as value_text).",
    )


class WithheldSerializer(serializers.Serializer):
    # Serializes a records.categories.Category: one category the reader is not shown.

    category = serializers.ChoiceField(choices=[code for code, _ in CHART_CATEGORIES])
    label = serializers.CharField(help_text="Its name, as the portal's pages say it.")


WITHHELD_HELP = (
    "The categories of the chart you are not shown (a consent that shares only some): "
    "records of these may exist. Empty: nothing is withheld."
)

PatientPageSerializer = _page("PatientPage", PatientSerializer)
RecordPageSerializer = _page("RecordPage", RecordSerializer)


# A staff record list: a page that also says what the list leaves out.
ChartRecordPageSerializer = type(
    "ChartRecordPage",
    (RecordPageSerializer,),
    {
        "withheld": WithheldSerializer(
            many=True,
            help_text="The categories of this record type you are not shown (observations: "
            "vital signs, laboratory results): the list leaves out what they hold. Empty: "
            "the list is complete.",
        )
    },
)


class AccessSerializer(serializers.Serializer):
    categories = SortedListField(
        child=serializers.CharField(), allow_null=True, help_text="null: the whole chart."
    )
    break_glass = serializers.BooleanField()
    shared = serializers.BooleanField()
    purpose = serializers.CharField()


class PointSerializer(serializers.Serializer):
    # Serializes an (at, value) pair.

    at = IsoDateTimeField()
    value = serializers.CharField()

    def to_representation(self, point: tuple[datetime, Any]) -> dict[str, Any]:
        at, value = point
        return super().to_representation({"at": at, "value": value})


class SeriesListSerializer(serializers.ListSerializer):
    """The chart's series, a dict by code, as a list."""

    def to_representation(self, data: dict[str, dict[str, Any]]) -> list[Any]:
        return super().to_representation([{"code": code, **s} for code, s in data.items()])


class SeriesSerializer(serializers.Serializer):
    code = serializers.CharField()
    display = serializers.CharField()
    unit = serializers.CharField()
    points = PointSerializer(many=True)
    truncated = serializers.BooleanField(
        help_text="True when older values exist than the newest ones given in points."
    )

    class Meta:
        list_serializer_class = SeriesListSerializer


class TimelineItemSerializer(serializers.Serializer):
    # Serializes a (date, type, record) triple.

    type = serializers.CharField()
    id = serializers.IntegerField(source="record.pk")
    date = IsoDateTimeField()
    display = RecordDisplayField(source="record", allow_null=True)

    def to_representation(self, item: tuple[datetime, str, Any]) -> dict[str, Any]:
        when, name, record = item
        return super().to_representation({"date": when, "type": name, "record": record})


class ChartSerializer(serializers.Serializer):
    # Serializes {"chart": Chart, "access": ChartAccess, "can_change": bool}.

    patient = PatientSerializer(source="chart.patient")
    access = AccessSerializer()
    can_change = serializers.BooleanField()
    actions = serializers.ListField(
        child=serializers.CharField(),
        help_text="What you may do on this chart (records.access.Action values), by your role.",
    )
    problems = RecordSerializer(many=True, source="chart.problems")
    medications = RecordSerializer(many=True, source="chart.medications")
    allergies = RecordSerializer(many=True, source="chart.allergies")
    series = SeriesSerializer(many=True, source="chart.series")
    timeline = TimelineItemSerializer(many=True, source="chart.timeline")
    withheld = WithheldSerializer(many=True, source="chart.withheld", help_text=WITHHELD_HELP)


# --- consent, requests, break-glass, proxies ---------------------------------------------


class AccessRequestSerializer(serializers.Serializer):
    """Staff side: the same for every request until the patient answers (no probing)."""

    # The requester's view: approved, else pending then expired, whether the details
    # matched nobody or the patient denied (AccessRequest.requester_state).

    id = serializers.UUIDField(source="row_uuid")
    requester_hospital = serializers.CharField(source="requester_hospital.slug")
    purpose = serializers.CharField()
    status = serializers.CharField(
        source="requester_state",
        help_text="pending, approved or expired (a request the patient did not approve, or "
        "whose details matched nobody, stays pending until it expires after 14 days).",
    )
    created_at = IsoDateTimeField()
    decided_at = IsoDateTimeField(allow_null=True, help_text="Once approved.")
    patient = serializers.IntegerField(
        source="patient_id", allow_null=True, help_text="The chart, once the patient approved."
    )

    def to_representation(self, r: Any) -> dict[str, Any]:
        data = super().to_representation(r)
        if r.requester_state != "approved":
            data["decided_at"] = data["patient"] = None
        return data


AccessRequestPageSerializer = _page("AccessRequestPage", AccessRequestSerializer)


class BreakGlassResultSerializer(serializers.Serializer):
    # Serializes a break-glass attempt's outcome (its patient, and its grant or None).

    ALREADY = "You already have access to this chart."
    GRANTED = (
        "Emergency access granted for 4 hours. Every read is flagged and the patient and the "
        "hospital are told."
    )

    patient = serializers.IntegerField(
        source="patient.pk", help_text="Open it at /api/v1/patients/{id}/chart/."
    )
    break_glass = serializers.BooleanField(help_text="false: you already had access.")
    expires_at = IsoDateTimeField(allow_null=True)
    message = serializers.CharField()

    def to_representation(self, outcome: Any) -> dict[str, Any]:
        glass = outcome.glass
        return super().to_representation({
            "patient": outcome.patient, "break_glass": glass is not None,
            "expires_at": glass.expires_at if glass is not None else None,
            "message": self.GRANTED if glass is not None else self.ALREADY,
        })  # fmt: skip


class OwnerAccessRequestSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="row_uuid")
    registration = serializers.IntegerField(source="addressee_id")
    hospital = serializers.CharField(
        source="addressee.hospital.slug", help_text="Where the records asked for are."
    )
    requester = PersonField()
    requester_hospital = serializers.CharField(source="requester_hospital.name")
    purpose = serializers.CharField()
    status = serializers.CharField(source="state")
    created_at = IsoDateTimeField()
    decided_at = IsoDateTimeField(allow_null=True)


OwnerAccessRequestPageSerializer = _page("OwnerAccessRequestPage", OwnerAccessRequestSerializer)


class ConsentSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="row_uuid")
    registration = serializers.IntegerField(source="patient_id")
    hospital = serializers.CharField(source="patient.hospital.slug")
    grantee_kind = serializers.CharField()
    grantee = serializers.CharField(source="grantee_label")
    scope_all = serializers.BooleanField()
    categories = ListOrEmptyField(child=serializers.CharField())
    restricted_notes = IdListField()
    purpose = serializers.CharField()
    period_start = IsoDateTimeField()
    period_end = IsoDateTimeField(allow_null=True)
    status = serializers.CharField(source="state")
    created_at = IsoDateTimeField()
    ended_at = IsoDateTimeField(allow_null=True)


ConsentPageSerializer = _page("ConsentPage", ConsentSerializer)


class AccessLogEntrySerializer(serializers.Serializer):
    event = serializers.UUIDField(
        source="event.event_id", help_text="The ledger event (verify it in the portal)."
    )
    at = IsoDateTimeField(source="event.recorded_at")
    hospital = serializers.CharField(
        help_text="The hospital the reader acted in; empty for an auditor, a proxy or you."
    )
    chart_hospital = serializers.CharField(help_text="The hospital whose records were read.")
    actor = serializers.CharField()
    purpose = serializers.CharField(help_text="The recorded purpose of use, in words.")
    channel = serializers.CharField(
        help_text="How the reader came to see the records (the recorded way in), in words."
    )
    app = serializers.CharField(
        help_text="The name of the third-party app the read went through; empty for none."
    )
    break_glass = serializers.BooleanField()
    what = serializers.CharField()


AccessLogPageSerializer = _page("AccessLogPage", AccessLogEntrySerializer)


class ProxyGrantSerializer(serializers.Serializer):
    """A proxy grant, or an invitation to become one (the same shape)."""

    id = serializers.UUIDField(source="row_uuid")
    grantor = UsernameField()
    proxy = UsernameField(help_text="The proxy's username (as invited, until accepted).")
    relationship = serializers.CharField()
    scope_all = serializers.BooleanField()
    categories = ListOrEmptyField(child=serializers.CharField())
    period_end = IsoDateTimeField(allow_null=True)
    status = serializers.CharField(
        source="state",
        help_text="A grant: active, revoked or expired. An invitation: invited (waiting for "
        "that account to accept; whether it exists is never shown), expired (not accepted "
        "within 14 days) or withdrawn.",
    )
    created_at = IsoDateTimeField()


class InvitationStatusField(serializers.CharField):
    """What an invitation's reader is told: the inviting patient, what they may know
    (grantor_state: a decline looks unanswered); the invited account, its own answer."""

    def to_representation(self, invitation: Any) -> str:
        if invitation.grantor_id == self.context["request"].user.pk:
            return invitation.grantor_state
        return invitation.status


class ProxyInvitationSerializer(ProxyGrantSerializer):
    """An invitation, in the grant's shape; needs `context={"request": request}`."""

    proxy = serializers.CharField(source="username")
    status = InvitationStatusField(source="*")


ProxyGrantPageSerializer = _page("ProxyGrantPage", ProxyGrantSerializer)

CATEGORY_CHOICES = [code for code, _ in CHART_CATEGORIES]
