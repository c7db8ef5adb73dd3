"""Reads of API tokens, and the one rule of which endpoints a token may act at."""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth.models import User
from django.http import Http404
from django.utils import timezone

from portal.accounts.selectors import user_is_staff_member
from portal.api.models import ApiToken, TokenAudience
from portal.records.selectors import patient_registrations_for_user

TOKEN_PREFIX = "hpt_"  # noqa: S105 - a prefix that marks portal tokens, not a secret


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def token_authenticate(*, raw: str) -> ApiToken | None:
    """The live token with this value (not revoked, not expired, its user active), or None."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = (
        ApiToken.objects.filter(token_hash=token_hash(raw), revoked_at__isnull=True)
        .select_related("user")
        .first()
    )
    if token is None or token.expires_at <= timezone.now() or not token.user.is_active:
        return None
    return token


def token_refusal(*, token: ApiToken, audience: str) -> str | None:
    """Why `token` may not act at an endpoint for `audience` ("staff", or "patient" for the
    patient and account endpoints), or None if it may.

    A token acts only as whom it was issued for: staff endpoints take staff tokens issued
    after two factors, the others take patient tokens. What the account is today does not
    widen a token (a membership given later is not a staff token); whether a staff token's
    membership is still active is checked at each use, by the staff gate.
    """
    if audience == TokenAudience.STAFF:
        if token.audience != TokenAudience.STAFF:
            return "This is a patient token: staff endpoints take a staff token."
        if not token.two_factor:
            return (
                "This staff token was not issued after a two-factor sign-in, so it is no "
                "longer accepted: create a new one on the API tokens page."
            )
        return None
    if token.audience != TokenAudience.PATIENT:
        return "This is a staff token: patient endpoints take a patient token."
    return None


def token_audiences_for_user(*, user: User) -> list[str]:
    """Whom a new token of this account may act as: staff for a member of a hospital,
    patient for anyone else and for a member who is also a patient somewhere (they choose)."""
    if not user_is_staff_member(user=user):
        return [TokenAudience.PATIENT]
    if patient_registrations_for_user(user=user):
        return [TokenAudience.STAFF, TokenAudience.PATIENT]
    return [TokenAudience.STAFF]


def tokens_for_user(*, user: User) -> list[ApiToken]:
    """The account's newest 100 tokens; each carries `refusal`, why it is refused even where
    its own audience is asked (a staff token from before two factors were recorded)."""
    tokens = list(ApiToken.objects.filter(user=user).order_by("-created_at", "-id")[:100])
    for token in tokens:
        token.refusal = token_refusal(token=token, audience=token.audience)
    return tokens


def access_token(user: User, token_id: Any) -> ApiToken:
    """One of the account's own tokens, or 404."""
    try:
        pk = int(token_id)
    except (TypeError, ValueError):
        pk = None
    token = ApiToken.objects.filter(pk=pk, user_id=user.pk).first() if pk is not None else None
    if token is None:
        raise Http404("No such token.")
    return token
