"""Writes of API tokens: issue (the raw token is returned once, never stored), revoke, touch."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.utils import timezone

from portal.api.models import ApiToken
from portal.api.selectors import TOKEN_PREFIX, token_hash

DEFAULT_DAYS = 90
MAX_DAYS = 365
LAST_USED_RESOLUTION = timedelta(seconds=60)


def token_issue(
    *, user: AbstractBaseUser, name: str, days: int = DEFAULT_DAYS
) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the token itself (shown once)."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError({"name": "Give the token a name (what it is for)."})
    if len(name) > 100:
        raise ValidationError({"name": "At most 100 characters."})
    if not 1 <= days <= MAX_DAYS:
        raise ValidationError({"days": f"A token lasts from 1 to {MAX_DAYS} days."})
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=raw[:10],
        token_hash=token_hash(raw),
        expires_at=timezone.now() + timedelta(days=days),
    )
    return token, raw


def token_revoke(*, token: ApiToken, actor: AbstractBaseUser) -> ApiToken:
    if token.user_id != actor.pk and not actor.is_superuser:
        raise ValidationError("This token is not yours.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def token_touch(*, token: ApiToken) -> None:
    """Record when a token was last used (at most one write a minute per token)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
