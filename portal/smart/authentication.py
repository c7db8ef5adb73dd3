"""SMART access tokens on the REST framework: DOT's OAuth2Authentication, and then the
portal's rule that a token is only as good as the live authorization it was issued under.
The request's `auth` is then that grant (selectors.TokenGrant), which the FHIR caller reads
(portal.fhir.callers)."""

from __future__ import annotations

from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import exceptions

from portal.smart.selectors import TokenGrant, token_grant
from portal.tenancy.selectors import membership_list_for_user


class SmartTokenAuthentication(OAuth2Authentication):
    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None  # not a valid DOT token: the next authentication class may know it
        user, access_token = result
        grant = token_grant(access_token=access_token)
        if grant is None:
            raise exceptions.AuthenticationFailed(
                "This app's access was withdrawn, or was never given on the consent screen."
            )
        if grant.authorization.audience == "staff":
            # A staff token acts in the hospital it was authorized in (StaffAccess reads the
            # request's default membership; a membership that ended reaches nothing).
            request.membership = next(
                (
                    m
                    for m in membership_list_for_user(user=user)
                    if m.hospital_id == grant.authorization.hospital_id
                ),
                None,
            )
        return user, grant


def smart_grant(request) -> TokenGrant | None:
    """The SMART grant a request was authenticated with, if any."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, TokenGrant) else None
