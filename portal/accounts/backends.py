"""Django's ModelBackend, with the user read on every signed-in request as a prepared
statement instead of a queryset built and compiled each time."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError

from portal import hotsql


def _user_sql() -> str:
    User = get_user_model()
    cols = hotsql.columns(User, "u")
    return (
        f"SELECT {cols.sql} FROM {hotsql.table(User)} u "  # noqa: S608
        f"WHERE u.{hotsql.column(User, User._meta.pk.name)} = %s"
    )


class ModelBackend(DjangoModelBackend):
    def get_user(self, user_id: Any) -> AbstractBaseUser | None:
        User = get_user_model()
        try:
            pk = User._meta.pk.to_python(user_id)
        except (ValidationError, TypeError, ValueError):  # a malformed id is no user
            return None
        found = hotsql.rows(hotsql.statement("auth.user", _user_sql), [pk])
        if not found:
            return None
        user = hotsql.columns(User, "u").load(found[0])
        return user if self.user_can_authenticate(user) else None
