"""Reads of API tokens."""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404
from django.utils import timezone

from portal.api.models import ApiToken

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


def tokens_for_user(*, user: AbstractBaseUser) -> list[ApiToken]:
    return list(ApiToken.objects.filter(user=user).order_by("-created_at", "-id")[:100])


def access_token(user: AbstractBaseUser, token_id: Any) -> ApiToken:
    """One of the account's own tokens, or 404."""
    try:
        pk = int(token_id)
    except (TypeError, ValueError):
        pk = None
    token = ApiToken.objects.filter(pk=pk, user_id=user.pk).first() if pk is not None else None
    if token is None:
        raise Http404("No such token.")
    return token
