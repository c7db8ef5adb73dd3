"""The patient side of the REST API (/api/v1/me/): an account's own registrations,
records and access log (PatientAccess, in the hospitals of its registrations), and what any
signed-in account does for itself: consents, answers to access requests, proxies."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from consent import selectors as consent_selectors
from consent import services as consent_services
from consent.models import ProxyInvitation
from portal.api import serializers as out
from portal.api.base import (
    ApiView,
    add_form_errors,
    form_serializer,
    form_validate,
    list_page,
    page_response,
)
from portal.api.views.common import CURSOR_PARAM, doc, uuid_param
from portal.patient import forms as patient_forms
from portal.records import access
from portal.records.categories import CHART_CATEGORIES
from portal.records.chart import records_by_category


def _scope_all(data: Any) -> Any:
    if isinstance(data, dict) and isinstance(data.get("scope_all", True), bool):
        data = {**data, "scope_all": "all" if data.get("scope_all", True) else "some"}
    return data


# --- patients ---------------------------------------------------------------------------------


def _owned(request: Request) -> list:
    return access.owner_charts(user=request.user, patients=list(request.patient_registrations))


class MyRegistrationsView(ApiView):
    audience = "patient"

    @doc(
        summary="My registrations at every hospital", tag="patient",
        response=out.PatientPageSerializer, errors=(401, 403), parameters=(CURSOR_PARAM,),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        rows, next_cursor, prev_cursor = list_page(request, request.patient_registrations)
        return page_response(
            request, out.PatientSerializer(rows, many=True).data,
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip


class MyRecordsView(ApiView):
    audience = "patient"

    @doc(
        summary="My records of one category, across my registrations, newest first",
        tag="patient", response=out.RecordPageSerializer, errors=(401, 403),
        parameters=(
            OpenApiParameter("category", OpenApiTypes.STR, enum=out.CATEGORY_CHOICES,
                             description="Default: vitals."),
            CURSOR_PARAM,
        ),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        category = request.query_params.get("category") or "vitals"
        if category not in dict(CHART_CATEGORIES):
            raise exceptions.ValidationError(
                {"category": [f"Choose one of: {', '.join(out.CATEGORY_CHOICES)}."]}
            )
        view = records_by_category(charts=_owned(request), category=category)
        rows, next_cursor, prev_cursor = list_page(request, view.records)
        return page_response(
            request, out.RecordSerializer(rows, many=True).data,
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip


class MyAccessLogView(ApiView):
    audience = "patient"

    @doc(
        summary="Who opened my records (staff reads and break-glass), newest first",
        tag="patient", response=out.AccessLogPageSerializer, errors=(401, 403),
        parameters=(CURSOR_PARAM,),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        entries = consent_selectors.access_log_for_owner(
            user=request.user, patients=request.patient_registrations
        )
        rows, next_cursor, prev_cursor = list_page(request, entries)
        return page_response(
            request, out.AccessLogEntrySerializer(rows, many=True).data,
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip


_SCOPE_ALL = serializers.BooleanField(
    required=False, default=True, help_text="true: all records (except restricted notes); "
    "false: only the categories listed.",
)  # fmt: skip
ConsentIn = form_serializer("ConsentIn", patient_forms.ConsentForm, scope_all=_SCOPE_ALL)


class MyConsentsView(ApiView):
    audience = "patient"

    @doc(
        summary="Every consent I gave, newest first", tag="patient",
        response=out.ConsentPageSerializer, errors=(401, 403), parameters=(CURSOR_PARAM,),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        rows, next_cursor, prev_cursor = list_page(
            request, consent_selectors.consents_for_owner(user=request.user)
        )
        return page_response(
            request, out.ConsentSerializer(rows, many=True).data,
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip

    @doc(
        summary="Share (part of) one registration's records", tag="patient",
        request=ConsentIn, response=out.ConsentSerializer, status=201, errors=(401, 403),
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        form = form_validate(patient_forms.ConsentForm, _scope_all(request.data),
                             user=request.user)  # fmt: skip
        data = form.cleaned_data
        try:
            consent = consent_services.consent_grant(
                patient=data["registration"], actor=request.user,
                grantee_kind=data["grantee_kind"], grantee_hospital=data["grantee_hospital"],
                grantee_department=data["grantee_department"], grantee_user=data["grantee_user"],
                scope_all=data["scope_all"], categories=data["categories"],
                restricted_notes=data["restricted_notes"], purpose=data["purpose"],
                period_start=data["period_start_at"], period_end=data["period_end_at"],
            )  # fmt: skip
        except DjangoValidationError as exc:
            raise add_form_errors(exc) from None
        consent = consent_selectors.access_consent(request.user, consent.row_uuid)
        return Response(out.ConsentSerializer(consent).data, status=201)


class MyConsentRevokeView(ApiView):
    audience = "patient"

    @doc(
        summary="Revoke a consent (access ends now)", tag="patient", request=None,
        response=out.ConsentSerializer, parameters=(uuid_param("consent_id"),),
    )  # fmt: skip
    def post(self, request: Request, consent_id) -> Response:
        consent = consent_selectors.access_consent(request.user, consent_id)
        try:
            consent = consent_services.consent_revoke(consent=consent, actor=request.user)
        except DjangoValidationError as exc:
            raise add_form_errors(exc) from None
        return Response(
            out.ConsentSerializer(
                consent_selectors.access_consent(request.user, consent.row_uuid)
            ).data
        )


DecisionIn = form_serializer("DecisionIn", patient_forms.DecisionForm, scope_all=_SCOPE_ALL)


class MyAccessRequestsView(ApiView):
    audience = "patient"

    @doc(
        summary="Access requests addressed to me (pending by default)", tag="patient",
        response=out.OwnerAccessRequestPageSerializer, errors=(401, 403),
        parameters=(
            OpenApiParameter("status", OpenApiTypes.STR, enum=["pending", "all"]),
            CURSOR_PARAM,
        ),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status", "pending")
        if status not in ("pending", "all"):
            raise exceptions.ValidationError({"status": ["Use pending or all."]})
        found = consent_selectors.access_requests_for_owner(user=request.user)
        if status == "pending":
            found = [r for r in found if r.state == "pending"]
        rows, next_cursor, prev_cursor = list_page(request, found)
        return page_response(
            request, out.OwnerAccessRequestSerializer(rows, many=True).data,
            next_cursor=next_cursor, prev_cursor=prev_cursor,
        )  # fmt: skip


class MyAccessRequestDecideView(ApiView):
    audience = "patient"

    @doc(
        summary="Approve (a consent to the requester) or deny an access request",
        tag="patient", request=DecisionIn, response=out.OwnerAccessRequestSerializer,
        parameters=(uuid_param("request_id"),),
    )  # fmt: skip
    def post(self, request: Request, request_id) -> Response:
        access_request = consent_selectors.access_access_request(request.user, request_id)
        data = form_validate(patient_forms.DecisionForm, _scope_all(request.data)).cleaned_data
        try:
            consent_services.access_request_decide(
                request=access_request, actor=request.user,
                approve=data["decision"] == "approve", scope_all=data["scope_all"],
                categories=data["categories"], period_end=data["period_end_at"],
            )  # fmt: skip
        except DjangoValidationError as exc:
            raise add_form_errors(exc) from None
        decided = next(
            r for r in consent_selectors.access_requests_for_owner(user=request.user)
            if r.pk == access_request.pk
        )  # fmt: skip
        return Response(out.OwnerAccessRequestSerializer(decided).data)


ProxyIn = form_serializer("ProxyIn", patient_forms.ProxyForm, scope_all=_SCOPE_ALL)


class MyProxiesView(ApiView):
    audience = "account"

    @doc(
        summary="Proxy access I gave or invited (direction=given), hold for someone else "
        "(received), or am invited to (invited)",
        tag="patient", response=out.ProxyGrantPageSerializer, errors=(401, 403),
        parameters=(
            OpenApiParameter(
                "direction", OpenApiTypes.STR, enum=["given", "received", "invited"]
            ),
            CURSOR_PARAM,
        ),
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        direction = request.query_params.get("direction", "given")
        if direction not in ("given", "received", "invited"):
            raise exceptions.ValidationError({"direction": ["Use given, received or invited."]})
        if direction == "given":
            grants = consent_selectors.proxy_grants_given(user=request.user)
            for grant in grants:
                grant.grantor = request.user
            invitations = consent_selectors.proxy_invitations_given(user=request.user)
            for invitation in invitations:
                invitation.grantor = request.user
            shown = out.ProxyGrantSerializer(grants, many=True).data
            shown += out.ProxyInvitationSerializer(
                invitations, many=True, context={"request": request}
            ).data
            rows = list(zip([x.created_at for x in [*grants, *invitations]], shown, strict=True))
            items = [data for _, data in sorted(rows, key=lambda r: r[0], reverse=True)]
        elif direction == "received":
            grants = consent_selectors.proxy_grants_received(user=request.user)
            for grant in grants:
                grant.proxy = request.user
            items = out.ProxyGrantSerializer(grants, many=True).data
        else:
            items = out.ProxyInvitationSerializer(
                consent_selectors.proxy_invitations_received(user=request.user),
                many=True,
                context={"request": request},
            ).data
        rows, next_cursor, prev_cursor = list_page(request, items)
        return page_response(request, rows, next_cursor=next_cursor, prev_cursor=prev_cursor)

    @doc(
        summary="Invite another account holder to see my records", tag="patient",
        request=ProxyIn, response=out.ProxyGrantSerializer, status=201, errors=(401, 403),
        description="Creates an invitation to that username, whether or not an account by "
        "that name exists or may be a proxy (the answer is the same): it shows as invited "
        "until the account accepts it, if it exists and belongs to a patient who is nobody's "
        "staff, and expires after 14 days otherwise.",
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        data = form_validate(patient_forms.ProxyForm, _scope_all(request.data)).cleaned_data
        try:
            invitation = consent_services.proxy_invite(
                grantor=request.user, proxy_username=data["proxy_username"],
                relationship=data["relationship"], scope_all=data["scope_all"],
                categories=data["categories"], period_end=data["period_end_at"],
            )  # fmt: skip
        except DjangoValidationError as exc:
            raise add_form_errors(exc) from None
        return Response(
            out.ProxyInvitationSerializer(invitation, context={"request": request}).data,
            status=201,
        )


class MyProxyAcceptView(ApiView):
    audience = "account"

    @doc(
        summary="Accept an invitation to be someone's proxy", tag="patient", request=None,
        response=out.ProxyGrantSerializer, errors=(401, 403, 404),
        parameters=(uuid_param("grant_id"),),
    )  # fmt: skip
    def post(self, request: Request, grant_id) -> Response:
        invitation = consent_selectors.access_proxy_invitation(request.user, grant_id)
        try:
            grant = consent_services.proxy_accept(invitation=invitation, actor=request.user)
        except DjangoValidationError as exc:
            raise add_form_errors(exc) from None
        grant = consent_selectors.access_proxy_grant(request.user, grant.row_uuid)
        return Response(out.ProxyGrantSerializer(grant).data)


class MyProxyRevokeView(ApiView):
    audience = "account"

    @doc(
        summary="End a proxy grant or invitation (the patient revokes or withdraws it; the "
        "proxy steps down or declines)", tag="patient",
        request=None, response=out.ProxyGrantSerializer, errors=(401, 403, 404),
        parameters=(uuid_param("grant_id"),),
    )  # fmt: skip
    def post(self, request: Request, grant_id) -> Response:
        item = consent_selectors.access_proxy_item(request.user, grant_id)
        try:
            consent_services.proxy_end(item=item, actor=request.user)
        except DjangoValidationError as exc:
            raise add_form_errors(exc) from None
        if isinstance(item, ProxyInvitation):
            item.refresh_from_db()
            return Response(out.ProxyInvitationSerializer(item, context={"request": request}).data)
        grant = consent_selectors.access_proxy_grant(request.user, item.row_uuid)
        return Response(out.ProxyGrantSerializer(grant).data)
