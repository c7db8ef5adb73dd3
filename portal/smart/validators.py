"""DOT's request validator for SMART App Launch (OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"]).

Through DOT's documented hooks: the scope grammar (scopes.clinical_scope), the link from an
authorization code and each access token to the authorization the person gave (so a token
is only as good as a live authorization), the token response's launch context (`patient`,
`need_patient_banner`), refresh tokens only with offline_access/online_access, revocation
by the app ending the authorization (ledgered), and the id_token's `fhirUser`.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from oauth2_provider.models import get_access_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import oauth2_settings

from portal.smart import services
from portal.smart.models import SmartAuthorization, SmartCode, SmartToken
from portal.smart.scopes import scopes_valid


def fhir_base_for(request: Any) -> str:
    """The FHIR base URL, absolute, for a Django or oauthlib request (from DOT's issuer,
    which is this site's /oauth)."""
    issuer = oauth2_settings.oidc_issuer(request)
    discovery = reverse("oauth2_provider:oidc-connect-discovery-info")
    prefix = discovery.removesuffix("/.well-known/openid-configuration")
    return issuer.removesuffix(prefix) + reverse("fhir:root")


def fhir_user_reference(authorization: SmartAuthorization, base: str) -> str:
    """Who signed in, as a FHIR resource URL: the patient's registration, or staff as a
    Practitioner."""
    if authorization.audience == SmartAuthorization.Audience.PATIENT and authorization.patient_id:
        return f"{base}Patient/{authorization.patient_id}"
    return f"{base}Practitioner/{authorization.user_id}"


class SmartValidator(OAuth2Validator):
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "fhirUser": "fhirUser"}

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        return scopes_valid(scopes)

    def save_authorization_code(self, client_id, code, request, *args, **kwargs):
        super().save_authorization_code(client_id, code, request, *args, **kwargs)
        # The consent view passed the authorization it just recorded (its credentials).
        authorization_id = getattr(request, "smart_authorization_id", None)
        if authorization_id is not None:
            services.smart_code_link(
                authorization_id=authorization_id, code=code["code"], application=request.client
            )

    def _launch_context(self, request, authorization: SmartAuthorization) -> None:
        request.smart_authorization = authorization
        if authorization.patient_id is not None and (
            {"launch", "launch/patient"} & set(authorization.scopes())
        ):
            request.extra_credentials = {
                "patient": str(authorization.patient_id),
                # The app runs outside the portal's pages: it shows whose records it has.
                "need_patient_banner": True,
            }

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        if not super().validate_code(client_id, code, client, request, *args, **kwargs):
            return False
        link = (
            SmartCode.objects.select_related("authorization")
            .filter(grant__code=code, grant__application=client)
            .first()
        )
        if link is None or not link.authorization.active:
            return False  # a code not issued on the consent screen, or withdrawn since
        self._launch_context(request, link.authorization)
        return True

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        rt = request.refresh_token_instance
        access = get_access_token_model().objects.filter(source_refresh_token=rt)
        if rt.access_token_id is not None:
            access = get_access_token_model().objects.filter(pk=rt.access_token_id)
        link = (
            SmartToken.objects.select_related("authorization")
            .filter(access_token__in=access)
            .first()
        )
        if link is None or not link.authorization.active:
            return False
        self._launch_context(request, link.authorization)
        return True

    def save_bearer_token(self, token, request, *args, **kwargs):
        authorization = getattr(request, "smart_authorization", None)
        if authorization is not None and not (
            {"offline_access", "online_access"} & set(authorization.scopes())
        ):
            # SMART: refresh tokens only for apps granted offline_access or online_access.
            token.pop("refresh_token", None)
        super().save_bearer_token(token, request, *args, **kwargs)
        if authorization is not None:
            services.smart_token_link(
                authorization=authorization, access_token_value=token["access_token"]
            )

    def revoke_token(self, token, token_type_hint, request, *args, **kwargs):
        checksum = services.token_checksum(token)
        client_pk = getattr(request.client, "pk", None)
        authorization = (
            SmartAuthorization.objects.filter(
                tokens__access_token__token_checksum=checksum, application_id=client_pk
            ).first()
            or SmartAuthorization.objects.filter(
                tokens__access_token__refresh_token__token_checksum=checksum,
                application_id=client_pk,
            ).first()
        )
        super().revoke_token(token, token_type_hint, request, *args, **kwargs)
        if authorization is not None:
            # The app disconnects itself: the whole authorization ends, ledgered.
            services.smart_authorization_revoke(authorization=authorization, actor=None, via="app")

    def get_additional_claims(self, request):
        authorization = getattr(request, "smart_authorization", None)
        if authorization is None and getattr(request, "access_token", None) is not None:
            link = SmartToken.objects.filter(access_token=request.access_token).first()
            authorization = link.authorization if link is not None else None
        if authorization is None:
            return {}
        return {"fhirUser": fhir_user_reference(authorization, fhir_base_for(request))}
