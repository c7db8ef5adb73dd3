"""The API's plumbing: who may call which view (and in which hospital scope), errors as
JSON, cursor pagination, and request bodies validated by the portals' own forms."""

from __future__ import annotations

import base64
import binascii
import logging
from contextlib import ExitStack
from decimal import InvalidOperation
from typing import Any

from django import forms
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from portal.accounts.gates import Audience, Refusal, entry_refusal
from portal.api.authentication import (
    BearerTokenAuthentication,
    HospitalHeaderInvalid,
    HospitalNotAllowed,
    PortalSessionAuthentication,
    membership_for_request,
)
from portal.api.models import ApiToken, TokenAudience
from portal.api.parsers import PortalJSONParser, query_params_check
from portal.api.selectors import token_refusal
from portal.tenancy.scoping import hospital_scope

logger = logging.getLogger(__name__)


# --- errors -------------------------------------------------------------------------------


def error_response(
    message: str, status_code: int, detail: dict[str, Any] | None = None
) -> Response:
    return Response({"error": message, "detail": detail or {}}, status=status_code)


def _messages(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _messages(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_messages(v) for v in detail]
    return str(detail)


def validation_detail(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {
            ("non_field_errors" if k == "__all__" else k): v for k, v in exc.message_dict.items()
        }
    return {"non_field_errors": exc.messages}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Every error as `{"error": "...", "detail": {...}}`; never a stack trace."""
    if isinstance(exc, Http404 | exceptions.NotFound):
        return error_response("Not found.", status.HTTP_404_NOT_FOUND)
    if isinstance(exc, DjangoValidationError):
        return error_response("Invalid input.", 400, validation_detail(exc))
    if isinstance(exc, HospitalHeaderInvalid):
        return error_response("X-Hospital must be the slug of one of your hospitals.", 400)
    if isinstance(exc, HospitalNotAllowed):
        return error_response(
            "X-Hospital names a hospital where you have no active membership.", 403
        )
    if isinstance(exc, RequestDataTooBig):
        return error_response("The request body is too large.", 413)
    if isinstance(exc, exceptions.ValidationError):
        detail = _messages(exc.detail)
        if not isinstance(detail, dict):
            detail = {"non_field_errors": detail if isinstance(detail, list) else [detail]}
        return error_response("Invalid input.", 400, detail)
    if isinstance(exc, exceptions.APIException):
        response = error_response(str(exc.detail), exc.status_code)
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    # Ids and the exception's type only: no PHI, no request data.
    view = context.get("view")
    logger.error(
        "API request failed in %s: %s", type(view).__name__, type(exc).__name__, exc_info=exc
    )
    return error_response("Internal error.", status.HTTP_500_INTERNAL_SERVER_ERROR)


# --- who may call --------------------------------------------------------------------------


def _token(request: Request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


def api_token_checked(request: Request, audience: str) -> bool:
    """Whether the request came with a token, which then acts only as whom it was issued for
    (selectors.token_refusal says why not: the refusal is the answer's message)."""
    token = _token(request)
    if token is None:
        return False
    reason = token_refusal(token=token, audience=audience)
    if reason:
        raise exceptions.PermissionDenied(reason)
    return True


# The code of StaffAccess's denial of a session that has not passed its second factor.
TWO_FACTOR_MISSING = "two_factor_missing"


class StaffAccess(permissions.BasePermission):
    """Staff with an active membership: by a staff token issued after two factors, or by a
    session verified with two factors; the gate is the portal's (accounts.gates). Resolves
    the hospital the request acts in; the membership is looked up at each use, so a token of
    someone whose membership ended reaches nothing."""

    message = "This endpoint is for hospital staff signed in with two factors."

    def token_checked(self, request: Request) -> bool:
        """Whether the request came with a token the token rule accepted for staff (FHIR
        also takes its own kinds of token: portal.fhir.callers)."""
        return api_token_checked(request, TokenAudience.STAFF)

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not user.is_authenticated:
            return False
        checked = self.token_checked(request)
        # DRF's Request reads attributes it lacks from Django's request (the middleware's
        # session default) and keeps the ones set here for the view.
        membership = membership_for_request(
            request, user=user, session_default=getattr(request, "membership", None)
        )
        refusal = entry_refusal(
            request, Audience.STAFF, membership=membership, token_checked=checked
        )
        if refusal is Refusal.SIGN_IN:
            # Staff, but the session has not passed its second factor: the denial says so
            # (FHIR answers it with 401, as an unauthenticated request).
            self.code = TWO_FACTOR_MISSING
            return False
        if refusal is not None:
            return False
        request.membership = membership
        request.hospital = membership.hospital
        return True


class PatientAccess(permissions.BasePermission):
    """An account with at least one patient registration (the portal's gate,
    accounts.gates); by session or by a patient token. The registrations are left on
    `request.patient_registrations`."""

    message = "This endpoint is for patients."

    def token_checked(self, request: Request) -> bool:
        """Whether the request came with a patient token the token rule accepted (FHIR
        also takes its own kinds of token: portal.fhir.callers)."""
        return api_token_checked(request, TokenAudience.PATIENT)

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not request.user.is_authenticated:
            return False
        checked = self.token_checked(request)
        return entry_refusal(request, Audience.PATIENT, token_checked=checked) is None


class AccountAccess(permissions.BasePermission):
    """Any signed-in account acting for itself (proxies): by session or by a patient token;
    a staff token acts only at staff endpoints."""

    def token_checked(self, request: Request) -> bool:
        """Whether the request came with a patient token the token rule accepted (FHIR
        also takes its own kinds of token: portal.fhir.callers)."""
        return api_token_checked(request, TokenAudience.PATIENT)

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not request.user.is_authenticated:
            return False
        checked = self.token_checked(request)
        return entry_refusal(request, Audience.ACCOUNT, token_checked=checked) is None


class ApiView(APIView):
    """Base of every API view: token or session auth, the project's JSON parser, and the
    hospital scope of its kind.

    `audience` is "staff" (the active hospital's scope), "patient" (the hospitals of the
    account's registrations) or "account" (any signed-in account; no tenant-owned reads).
    """

    audience = "staff"
    authentication_classes = [BearerTokenAuthentication, PortalSessionAuthentication]
    parser_classes = [PortalJSONParser]

    def get_permissions(self):
        kind = {"staff": StaffAccess, "patient": PatientAccess, "account": AccountAccess}
        return [permissions.IsAuthenticated(), kind[self.audience]()]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        query_params_check(request.query_params)
        self.tenant_scope = ExitStack()
        if self.audience == "staff":
            self.tenant_scope.enter_context(hospital_scope(request.hospital))
        elif self.audience == "patient":
            hospitals = [p.hospital_id for p in request.patient_registrations]
            self.tenant_scope.enter_context(hospital_scope(hospitals))

    def finalize_response(self, request, response, *args, **kwargs):
        scope = getattr(self, "tenant_scope", None)
        if scope is not None:
            scope.close()
            self.tenant_scope = None
        return super().finalize_response(request, response, *args, **kwargs)


# --- cursor pagination ---------------------------------------------------------------------


def encode_cursor(kind: str, value: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def decode_cursor(request: Request, kinds: str) -> tuple[str, int] | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        kind, value = text.split(":", 1)
        number = int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        number, kind = -1, ""
    if kind not in kinds or not 0 <= number < 2**62:
        raise exceptions.ValidationError({"cursor": ["Invalid cursor."]})
    return kind, number


def _link(request: Request, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    return replace_query_param(request.build_absolute_uri(), "cursor", cursor)


def page_response(
    request: Request,
    results: list[Any],
    *,
    next_cursor: str | None,
    prev_cursor: str | None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """A page of `results`; `extra`: more of the page's own fields (its serializer's)."""
    return Response(
        {
            "next": _link(request, next_cursor),
            "previous": _link(request, prev_cursor),
            "results": results,
            **(extra or {}),
        }
    )


def queryset_page(
    request: Request, qs, *, size: int = 50
) -> tuple[list[Any], str | None, str | None]:
    """Keyset pagination by id, newest first: one query for the page and one to know
    whether there is a newer one, whatever the depth."""
    cursor = decode_cursor(request, "ba")
    if cursor is None or cursor[0] == "b":
        page = qs.filter(pk__lt=cursor[1]) if cursor else qs
        rows = list(page.order_by("-id")[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        newer = bool(cursor and rows and qs.filter(pk__gt=rows[0].pk).exists())
        older = more
    else:
        rows = list(qs.filter(pk__gt=cursor[1]).order_by("id")[: size + 1])
        newer = len(rows) > size
        rows = rows[:size][::-1]
        older = bool(rows)
    return (
        rows,
        encode_cursor("b", rows[-1].pk) if older and rows else None,
        encode_cursor("a", rows[0].pk) if newer and rows else None,
    )


def list_page(request: Request, items: list[Any], *, size: int = 50):
    """Cursor pagination of a list the selector already bounds (at most a few hundred)."""
    cursor = decode_cursor(request, "o")
    start = cursor[1] if cursor else 0
    rows = items[start : start + size]
    return (
        rows,
        encode_cursor("o", start + size) if start + size < len(items) else None,
        encode_cursor("o", max(start - size, 0)) if start > 0 else None,
    )


# --- request bodies: the portals' forms decide ----------------------------------------------


def form_validate(form_class: type[forms.BaseForm], data: Any, **kwargs: Any) -> forms.BaseForm:
    """Validate a JSON body with the portal's own form (one copy of every rule).

    400 for anything that is not an object or that the form refuses."""
    if not isinstance(data, dict):
        raise exceptions.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
    clean = {k: v for k, v in data.items() if v is not None}
    for key, value in clean.items():
        if isinstance(value, bool) and not isinstance(
            form_class.base_fields.get(key), forms.BooleanField
        ):
            clean[key] = "invalid"  # True would pass as 1 and as "True"
    form = form_class(clean, **kwargs)
    try:
        valid = form.is_valid()
    except (OverflowError, ValueError, TypeError, InvalidOperation):
        raise exceptions.ValidationError(
            {"non_field_errors": ["A value is out of range or of the wrong type."]}
        ) from None
    if not valid:
        errors = {
            ("non_field_errors" if k == "__all__" else k): [str(m) for m in v]
            for k, v in form.errors.items()
        }
        raise exceptions.ValidationError(errors)
    return form


def add_form_errors(exc: DjangoValidationError) -> exceptions.ValidationError:
    return exceptions.ValidationError(validation_detail(exc))


_FIELD_MAP = {
    forms.BooleanField: lambda f: serializers.BooleanField(required=False),
    forms.DecimalField: lambda f: serializers.DecimalField(
        max_digits=f.max_digits, decimal_places=f.decimal_places, required=f.required
    ),
    forms.DateTimeField: lambda f: serializers.DateTimeField(required=f.required),
    forms.DateField: lambda f: serializers.DateField(required=f.required),
}


def _to_serializer_field(field: forms.Field) -> serializers.Field:
    kwargs = {"required": field.required, "help_text": str(field.help_text or "") or None}
    if field.label:
        kwargs["label"] = str(field.label)
    if isinstance(field, forms.ModelMultipleChoiceField):
        return serializers.ListField(child=serializers.IntegerField(), **kwargs)
    if isinstance(field, forms.ModelChoiceField):
        return serializers.IntegerField(**kwargs)
    if isinstance(field, forms.MultipleChoiceField):
        return serializers.ListField(
            child=serializers.ChoiceField(choices=list(field.choices)), **kwargs
        )
    if isinstance(field, forms.ChoiceField):
        choices = [c for c in field.choices if c[0] != ""]
        return serializers.ChoiceField(choices=choices, **kwargs)
    for form_type, make in _FIELD_MAP.items():
        if isinstance(field, form_type):
            out = make(field)
            out.help_text = kwargs["help_text"]
            return out
    if isinstance(field, forms.RegexField):
        return serializers.RegexField(
            field.regex.pattern, max_length=field.max_length, allow_blank=not field.required,
            **kwargs,
        )  # fmt: skip
    if isinstance(field, forms.CharField):
        return serializers.CharField(
            max_length=field.max_length, min_length=field.min_length,
            allow_blank=not field.required, **kwargs,
        )  # fmt: skip
    return serializers.CharField(**kwargs)


def form_serializer(
    name: str, form_class: type[forms.BaseForm], *, skip: tuple[str, ...] = (), **extra: Any
) -> type:
    """A serializer describing a form's fields, for the OpenAPI schema only: the form itself
    validates (form_validate), so the rules exist once. `extra` replaces fields whose JSON
    shape differs from the form's (a slug for a hospital, a boolean for scope_all)."""
    fields = {
        key: _to_serializer_field(field)
        for key, field in form_class.base_fields.items()
        if key not in skip and not isinstance(field.widget, forms.HiddenInput)
    }
    fields.update(extra)
    return type(name, (serializers.Serializer,), fields)
