"""Writes of API tokens: issue (the raw token is returned once, never stored), revoke, touch.
Issuing and revoking are ledger events (ids and codes only)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ledger.events import event_record
from portal.accounts.selectors import user_is_staff_member
from portal.api.models import ApiToken, TokenAudience
from portal.api.selectors import TOKEN_PREFIX, token_hash

DEFAULT_DAYS = 90
MAX_DAYS = 365
LAST_USED_RESOLUTION = timedelta(seconds=60)


def token_canonical(token: ApiToken) -> dict[str, Any]:
    """What a token's ledger digest covers: whom it acts as and for how long (not its name,
    nor when it was last used)."""
    return {
        "user": token.user_id, "audience": token.audience, "two_factor": token.two_factor,
        "expires_at": token.expires_at.isoformat(),
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }  # fmt: skip


def _token_event(*, kind: str, token: ApiToken, actor: User | None) -> None:
    # An account's own credential: it belongs to no hospital.
    event_record(
        kind=kind, hospital=None, subject=token, actor=actor,
        attrs={"user": token.user_id, "audience": token.audience, "two_factor": token.two_factor},
    )  # fmt: skip


@transaction.atomic
def token_issue(
    *, user: User, name: str, audience: str, two_factor: bool,
    days: int = DEFAULT_DAYS, actor: User | None = None,
) -> tuple[ApiToken, str]:  # fmt: skip
    """A new token for `user` acting as `audience`; returns the row and the token itself
    (shown once).

    `two_factor` is whether the account proved two factors when asking for it (a verified
    session; an administrator's `issue_token --counts-as-two-factor`). A staff token exists
    only with two factors and a membership; what it may reach is fixed here, whatever
    memberships the account gets later. `actor` is who issued it (None: from the shell).
    """
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError({"name": "Give the token a name (what it is for)."})
    if len(name) > 100:
        raise ValidationError({"name": "At most 100 characters."})
    if not 1 <= days <= MAX_DAYS:
        raise ValidationError({"days": f"A token lasts from 1 to {MAX_DAYS} days."})
    if audience not in TokenAudience.values:
        raise ValidationError({"audience": "Choose staff or patient."})
    if audience == TokenAudience.STAFF:
        if not two_factor:
            raise ValidationError(
                {"audience": "A staff token is issued only after signing in with two factors."}
            )
        if not user_is_staff_member(user=user):
            raise ValidationError({"audience": "Only hospital staff can have a staff token."})
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=raw[:10],
        token_hash=token_hash(raw),
        audience=audience,
        two_factor=bool(two_factor),
        expires_at=timezone.now() + timedelta(days=days),
    )
    _token_event(kind="api_token.issued", token=token, actor=actor)
    return token, raw


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: User) -> ApiToken:
    if token.user_id != actor.pk and not actor.is_superuser:
        raise ValidationError("This token is not yours.")
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        _token_event(kind="api_token.revoked", token=token, actor=actor)
    return token


def token_touch(*, token: ApiToken) -> None:
    """Record when a token was last used (at most one write a minute per token)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
