"""Reads of SMART App Launch: the smart-configuration document, the apps a patient
connected, EHR-launchable apps, and what an access token stands for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Max
from django.http import Http404, HttpRequest
from django.urls import reverse
from oauth2_provider.models import get_application_model

from portal.records.models import Patient
from portal.smart.models import SmartApp, SmartAuthorization, SmartToken
from portal.smart.scopes import SUPPORTED_SCOPES, ScopeAccess, scope_access, scopes_worded

CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "context-ehr-patient",
    "context-standalone-patient",
    "context-banner",
    "permission-v1",
    "permission-v2",
    "permission-patient",
    "permission-user",
    "permission-offline",
    "permission-online",
    "sso-openid-connect",
]


def smart_configuration(*, request: HttpRequest) -> dict[str, Any]:
    """/.well-known/smart-configuration (SMART App Launch 2.x, "Conformance")."""

    def url(name: str) -> str:
        return request.build_absolute_uri(reverse(name))

    issuer = url("oauth2_provider:oidc-connect-discovery-info").removesuffix(
        "/.well-known/openid-configuration"
    )
    return {
        "issuer": issuer,
        "jwks_uri": url("oauth2_provider:jwks-info"),
        "authorization_endpoint": url("oauth2_provider:authorize"),
        "token_endpoint": url("oauth2_provider:token"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "scopes_supported": SUPPORTED_SCOPES,
        "response_types_supported": ["code"],
        "management_endpoint": url("smart:connected_apps"),
        "introspection_endpoint": url("oauth2_provider:introspect"),
        "revocation_endpoint": url("oauth2_provider:revoke-token"),
        "userinfo_endpoint": url("oauth2_provider:user-info"),
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    }


def ehr_launch_apps() -> list[SmartApp]:
    """Apps staff may launch from a chart; one query."""
    return list(
        SmartApp.objects.filter(ehr_launch=True)
        .exclude(launch_url="")
        .select_related("application")
        .order_by("application__name")
    )


def ehr_launch_app(*, app_id: Any) -> SmartApp:
    try:
        return SmartApp.objects.select_related("application").get(pk=int(app_id), ehr_launch=True)
    except (ValueError, TypeError, SmartApp.DoesNotExist):
        raise Http404("No such app.") from None


def application_by_client_id(*, client_id: str):
    return get_application_model().objects.filter(client_id=client_id).first()


@dataclass
class ConnectedApp:
    authorization: SmartAuthorization
    name: str
    patient: Patient | None
    permissions: list[str]
    last_used: Any


def connected_apps_for(*, user: User) -> list[ConnectedApp]:
    """The live authorizations a person gave, with what each allows and when a token of it
    was last issued (its last connection); two queries whatever the number."""
    rows = list(
        SmartAuthorization.objects.filter(user=user, revoked_at__isnull=True)
        .select_related("application", "patient__hospital")
        .annotate(last_token=Max("tokens__created_at"))
        .order_by("-created_at")
    )
    return [
        ConnectedApp(
            authorization=row,
            name=row.application.name,
            patient=row.patient,
            permissions=scopes_worded(row.scopes()),
            last_used=row.last_token or row.created_at,
        )
        for row in rows
    ]


def connected_app_access(*, user: User, authorization_id: Any) -> SmartAuthorization:
    """A live authorization the user gave; 404 otherwise (another's looks missing)."""
    row = (
        SmartAuthorization.objects.filter(
            row_uuid=authorization_id, user=user, revoked_at__isnull=True
        ).first()
        if _is_uuid(authorization_id)
        else None
    )
    if row is None:
        raise Http404("No such app.")
    return row


def _is_uuid(value: Any) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class TokenGrant:
    """What a SMART access token stands for: the live authorization it was issued under and
    what its scopes allow."""

    authorization: SmartAuthorization
    access: ScopeAccess
    app_name: str
    client_id: str

    @property
    def patient_id(self) -> int | None:
        return self.authorization.patient_id


def token_grant(*, access_token: Any) -> TokenGrant | None:
    """The grant behind a valid DOT access token (DRF's OAuth2Authentication gives it as
    request.auth), or None if it was not issued under a live authorization; one query."""
    link = (
        SmartToken.objects.select_related("authorization__application")
        .filter(access_token=access_token, authorization__revoked_at__isnull=True)
        .first()
    )
    if link is None:
        return None
    authorization = link.authorization
    return TokenGrant(
        authorization=authorization,
        # The token's own scopes (never more than the authorization's).
        access=scope_access(set(access_token.scope.split()) & set(authorization.scopes())),
        app_name=authorization.application.name,
        client_id=authorization.application.client_id,
    )
