"""Response bodies (and, through base.form_serializer, request bodies) of the REST API.

Responses are built by the functions here from what the selectors return; the serializer
classes describe them in the OpenAPI schema."""

from __future__ import annotations

import base64
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rest_framework import serializers

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


# --- patients and records ----------------------------------------------------------------


class PatientSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    hospital = serializers.CharField(help_text="The hospital's slug.")
    hospital_name = serializers.CharField()
    mrn = serializers.CharField()
    given_name = serializers.CharField()
    family_name = serializers.CharField()
    birth_date = serializers.DateField()
    sex = serializers.CharField()
    phone = serializers.CharField(allow_null=True)
    restricted = serializers.BooleanField()


def patient_data(patient) -> dict[str, Any]:
    return {
        "id": patient.pk,
        "hospital": patient.hospital.slug,
        "hospital_name": patient.hospital.name,
        "mrn": patient.mrn,
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        "birth_date": patient.birth_date.isoformat(),
        "sex": patient.sex,
        "phone": patient.phone or None,
        "restricted": patient.restricted,
    }


class RecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=RECORD_TYPE_CHOICES)
    patient = serializers.IntegerField()
    hospital = serializers.IntegerField()
    status = serializers.CharField()
    version = serializers.IntegerField()
    replaces = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    date = serializers.DateTimeField(allow_null=True, help_text="When it happened.")
    display = serializers.CharField(allow_null=True)
    data = serializers.DictField(
        help_text="The type's own fields (decimals as strings; a document's content as "
        "content_base64 in the detail only)."
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def record_data(record, *, content: bool = False) -> dict[str, Any]:
    name = record._meta.model_name
    data: dict[str, Any] = {}
    for f in record._meta.concrete_fields:
        if f.name in COMMON_FIELDS or f.name == "content" or isinstance(f, BlindIndexField):
            continue  # a search token (code_index) is the database's, not the record's
        data[f.attname] = _plain(getattr(record, f.attname))
    if content and name == "document":
        data["content_base64"] = base64.b64encode(bytes(record.content)).decode("ascii")
    when = getattr(record, TIMELINE_DATE[name])
    return {
        "id": record.pk,
        "type": name,
        "patient": record.patient_id,
        "hospital": record.hospital_id,
        "status": record.status,
        "version": record.version,
        "replaces": record.replaces_id,
        "created_at": record.created_at.isoformat(),
        "date": when.isoformat() if when else None,
        "display": getattr(record, "display", None) or getattr(record, "title", None),
        "data": data,
    }


PatientPageSerializer = _page("PatientPage", PatientSerializer)
RecordPageSerializer = _page("RecordPage", RecordSerializer)


class AccessSerializer(serializers.Serializer):
    categories = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="null: the whole chart."
    )
    break_glass = serializers.BooleanField()
    shared = serializers.BooleanField()
    purpose = serializers.CharField()


class PointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    value = serializers.CharField()


class SeriesSerializer(serializers.Serializer):
    code = serializers.CharField()
    display = serializers.CharField()
    unit = serializers.CharField()
    points = PointSerializer(many=True)
    truncated = serializers.BooleanField(
        help_text="True when older values exist than the newest ones given in points."
    )


class TimelineItemSerializer(serializers.Serializer):
    type = serializers.CharField()
    id = serializers.IntegerField()
    date = serializers.DateTimeField()
    display = serializers.CharField(allow_null=True)


class ChartSerializer(serializers.Serializer):
    patient = PatientSerializer()
    access = AccessSerializer()
    can_change = serializers.BooleanField()
    problems = RecordSerializer(many=True)
    medications = RecordSerializer(many=True)
    allergies = RecordSerializer(many=True)
    series = SeriesSerializer(many=True)
    timeline = TimelineItemSerializer(many=True)


def access_data(access) -> dict[str, Any]:
    return {
        "categories": None if access.categories is None else sorted(access.categories),
        "break_glass": access.break_glass,
        "shared": access.shared,
        "purpose": access.purpose,
    }


def chart_data(chart, *, access, can_change: bool) -> dict[str, Any]:
    return {
        "patient": patient_data(chart.patient),
        "access": access_data(access),
        "can_change": can_change,
        "problems": [record_data(r) for r in chart.problems],
        "medications": [record_data(r) for r in chart.medications],
        "allergies": [record_data(r) for r in chart.allergies],
        "series": [
            {
                "code": code,
                "display": s["display"],
                "unit": s["unit"],
                "points": [{"at": at.isoformat(), "value": str(v)} for at, v in s["points"]],
                "truncated": s["truncated"],
            }
            for code, s in chart.series.items()
        ],
        "timeline": [
            {
                "type": name,
                "id": record.pk,
                "date": when.isoformat(),
                "display": getattr(record, "display", None) or getattr(record, "title", None),
            }
            for when, name, record in chart.timeline
        ],
    }


# --- consent, requests, break-glass, proxies ---------------------------------------------


class AccessRequestSerializer(serializers.Serializer):
    """Staff side: the same for every request until the patient answers (no probing)."""

    id = serializers.UUIDField()
    requester_hospital = serializers.CharField()
    purpose = serializers.CharField()
    status = serializers.CharField(
        help_text="pending, approved or expired (a request the patient did not approve, or "
        "whose details matched nobody, stays pending until it expires after 14 days)."
    )
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True, help_text="Once approved.")
    patient = serializers.IntegerField(
        allow_null=True, help_text="The chart, once the patient approved."
    )


def access_request_data(r) -> dict[str, Any]:
    """The requester's view: approved, else pending then expired, whether the details
    matched nobody or the patient denied (AccessRequest.requester_state)."""
    approved = r.requester_state == "approved"
    return {
        "id": str(r.row_uuid),
        "requester_hospital": r.requester_hospital.slug,
        "purpose": r.purpose,
        "status": r.requester_state,
        "created_at": r.created_at.isoformat(),
        "decided_at": r.decided_at.isoformat() if approved and r.decided_at else None,
        "patient": r.patient_id if approved else None,
    }


AccessRequestPageSerializer = _page("AccessRequestPage", AccessRequestSerializer)


class BreakGlassResultSerializer(serializers.Serializer):
    patient = serializers.IntegerField(help_text="Open it at /api/v1/patients/{id}/chart/.")
    break_glass = serializers.BooleanField(help_text="false: you already had access.")
    expires_at = serializers.DateTimeField(allow_null=True)
    message = serializers.CharField()


class OwnerAccessRequestSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    registration = serializers.IntegerField()
    hospital = serializers.CharField(help_text="Where the records asked for are.")
    requester = serializers.CharField()
    requester_hospital = serializers.CharField()
    purpose = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


def owner_access_request_data(r) -> dict[str, Any]:
    who = r.requester
    return {
        "id": str(r.row_uuid),
        "registration": r.addressee_id,
        "hospital": r.addressee.hospital.slug,
        "requester": who.get_full_name() or who.get_username(),
        "requester_hospital": r.requester_hospital.name,
        "purpose": r.purpose,
        "status": r.state,
        "created_at": r.created_at.isoformat(),
        "decided_at": r.decided_at.isoformat() if r.decided_at else None,
    }


OwnerAccessRequestPageSerializer = _page("OwnerAccessRequestPage", OwnerAccessRequestSerializer)


class ConsentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    registration = serializers.IntegerField()
    hospital = serializers.CharField()
    grantee_kind = serializers.CharField()
    grantee = serializers.CharField()
    scope_all = serializers.BooleanField()
    categories = serializers.ListField(child=serializers.CharField())
    restricted_notes = serializers.ListField(child=serializers.IntegerField())
    purpose = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)


def consent_data(c) -> dict[str, Any]:
    return {
        "id": str(c.row_uuid),
        "registration": c.patient_id,
        "hospital": c.patient.hospital.slug,
        "grantee_kind": c.grantee_kind,
        "grantee": c.grantee_label,
        "scope_all": c.scope_all,
        "categories": list(c.categories or []),
        "restricted_notes": [n.pk for n in c.restricted_notes.all()],
        "purpose": c.purpose,
        "period_start": c.period_start.isoformat(),
        "period_end": c.period_end.isoformat() if c.period_end else None,
        "status": c.state,
        "created_at": c.created_at.isoformat(),
        "ended_at": c.ended_at.isoformat() if c.ended_at else None,
    }


ConsentPageSerializer = _page("ConsentPage", ConsentSerializer)


class AccessLogEntrySerializer(serializers.Serializer):
    event = serializers.UUIDField(help_text="The ledger event (verify it in the portal).")
    at = serializers.DateTimeField()
    hospital = serializers.CharField(help_text="The hospital the reader acted in.")
    chart_hospital = serializers.CharField(help_text="The hospital whose records were read.")
    actor = serializers.CharField()
    purpose = serializers.CharField()
    break_glass = serializers.BooleanField()
    what = serializers.CharField()


def access_entry_data(e) -> dict[str, Any]:
    return {
        "event": str(e.event.event_id),
        "at": e.event.recorded_at.isoformat(),
        "hospital": e.hospital,
        "chart_hospital": e.chart_hospital,
        "actor": e.actor,
        "purpose": e.purpose,
        "break_glass": e.break_glass,
        "what": e.what,
    }


AccessLogPageSerializer = _page("AccessLogPage", AccessLogEntrySerializer)


class ProxyGrantSerializer(serializers.Serializer):
    """A proxy grant, or an invitation to become one (the same shape)."""

    id = serializers.UUIDField()
    grantor = serializers.CharField()
    proxy = serializers.CharField(help_text="The proxy's username (as invited, until accepted).")
    relationship = serializers.CharField()
    scope_all = serializers.BooleanField()
    categories = serializers.ListField(child=serializers.CharField())
    period_end = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField(
        help_text="A grant: active, revoked or expired. An invitation: invited (waiting for "
        "that account to accept; whether it exists is never shown), expired (not accepted "
        "within 14 days) or withdrawn."
    )
    created_at = serializers.DateTimeField()


def proxy_grant_data(g) -> dict[str, Any]:
    return {
        "id": str(g.row_uuid),
        "grantor": g.grantor.get_username(),
        "proxy": g.proxy.get_username(),
        "relationship": g.relationship,
        "scope_all": g.scope_all,
        "categories": list(g.categories or []),
        "period_end": g.period_end.isoformat() if g.period_end else None,
        "status": g.state,
        "created_at": g.created_at.isoformat(),
    }


def proxy_invitation_data(i, *, status: str) -> dict[str, Any]:
    return {
        "id": str(i.row_uuid),
        "grantor": i.grantor.get_username(),
        "proxy": i.username,
        "relationship": i.relationship,
        "scope_all": i.scope_all,
        "categories": list(i.categories or []),
        "period_end": i.period_end.isoformat() if i.period_end else None,
        "status": status,
        "created_at": i.created_at.isoformat(),
    }


ProxyGrantPageSerializer = _page("ProxyGrantPage", ProxyGrantSerializer)

CATEGORY_CHOICES = [code for code, _ in CHART_CATEGORIES]
