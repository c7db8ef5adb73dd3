"""The portal's side of the audit trail: every read of a chart, a record or a document is an
access event, recorded by `chart_read_record` (pages, API, FHIR, the admin, downloads and
exports alike), and what the ledger must know of the portal to decide who may see an event.

A read's event is written before anything of the read is answered: inside the caller's
transaction if there is one, else as one autocommitted INSERT that is durable once it
returns. Only ids and codes reach the ledger (ledger.events.event_record).
"""

from __future__ import annotations

from typing import Literal

from django.contrib.auth.models import User

from ledger.events import event_record
from ledger.models import Event
from ledger.selectors import user_is_verified
from portal.records.access import OpenedChart, Via, chart_required
from portal.records.models import ClinicalRecord, Document, Patient
from portal.records.selectors import patient_registrations_for_user
from portal.tenancy.models import Membership
from portal.tenancy.selectors import hospital_ids_administered

# The purpose of use of an administrator's read (HL7 v3 PurposeOfUse).
PURPOSE_ADMINISTRATION = "HSYSADMIN"

ReadKind = Literal["chart.read", "record.read", "document.read"]


def read_kind(record: ClinicalRecord | None) -> ReadKind:
    if record is None:
        return "chart.read"
    return "document.read" if isinstance(record, Document) else "record.read"


def chart_read_record(
    *,
    reader: User,
    chart: OpenedChart | None = None,
    record: ClinicalRecord | None = None,
    membership: Membership | None = None,
    administration: Patient | None = None,
    app: str | None = None,
) -> Event:
    """Record that `reader` opened a chart, or one of its records or documents: the one way
    every interface (pages, API, FHIR, downloads, exports, the admin) records a read.

    `chart` is the chart as the access module opened it for `reader` (refused otherwise):
    the purpose and the break-glass flag come from the grants that opened it, so an
    emergency read is flagged wherever it is shown. `membership` is the one the reader acted
    in. `administration`: instead of a chart, the patient an auditor or hospital admin looked
    at in the admin site, whose purpose is health system administration (an auditor acts in
    no hospital; a hospital admin in the patient's).

    `app`: the client id of the third-party app the read went through (SMART on FHIR), a
    code like the other attributes (the app's name can change; the access log looks it up);
    None for the portal's own pages, API tokens and FHIR sessions, and then not recorded.

    The event belongs to the chart's hospital (its admins audit every read of their
    patients) and names the hospital the reader acted in, so the reader's admins see their
    own staff's reads; the two differ for consent, break-glass and locum reads.
    """
    if administration is not None:
        patient = administration
        purpose, break_glass, via = PURPOSE_ADMINISTRATION, False, "admin"
        auditor = reader.is_superuser
        role = "auditor" if auditor else "hospital_admin"
        acting_hospital_id = None if auditor else patient.hospital_id
    else:
        opened = chart_required(chart, user=reader)  # opened for this reader, or 404
        patient = opened.patient
        purpose, break_glass, via = opened.purpose, opened.break_glass, str(opened.via)
        if opened.via is Via.STAFF:
            membership = _staff_membership(reader, patient, membership)
        elif opened.via in (Via.PROXY, Via.OWNER):
            membership = None  # the patient portal: no hospital's staff
        role = membership.role if membership is not None else ""
        acting_hospital_id = membership.hospital_id if membership is not None else None
    attrs: dict[str, str | int | bool | None] = {
        "purpose": purpose,
        "break_glass": break_glass,
        "via": via,
        "role": role,
        "record_type": record._meta.model_name if record is not None else None,
        "record": record.pk if record is not None else None,
    }
    if app:
        attrs["app"] = app
    return event_record(
        kind=read_kind(record),
        hospital=patient.hospital_id,  # the chart's: loaded with it, no query
        actor_hospital=acting_hospital_id,
        subject=record if record is not None else patient,
        actor=reader,
        patient=patient.pk,
        attrs=attrs,
    )


def _staff_membership(
    reader: User, patient: Patient, chosen: Membership | None
) -> Membership | None:
    """The membership a staff read was made in: the chart's own hospital's when the reader
    works there too (a locum at two hospitals reads a St Mary's chart as St Mary's staff,
    whichever hospital they have chosen in the header), else the one they chose (a care
    team member from another hospital). One query, only when the two differ."""
    if chosen is not None and chosen.hospital_id == patient.hospital_id:
        return chosen
    own = (
        Membership._base_manager.filter(
            user=reader, hospital_id=patient.hospital_id, is_active=True
        )
        .order_by("id")
        .first()
    )
    return own or chosen


def event_readable_by(user: User, event: Event) -> bool:
    """The portal's rule for ledger.selectors.access_event (registered by RecordsConfig):
    hospital admins, signed in with two factors, see the events of the hospitals they
    administer (a read belongs to the chart's hospital, so they get every read of their
    patients; the reader's hospital's admins do not: a receipt's leaf names the other
    hospital's patient); patients see the events about their own registrations."""
    if user_is_verified(user) and event.hospital_id in hospital_ids_administered(user=user):
        return True
    return event.patient_id is not None and event.patient_id in {
        p.pk for p in patient_registrations_for_user(user=user)
    }
