"""Tenant scoping in the django-scopes style.

Every tenant-owned model's default manager refuses to run unless a hospital scope is active,
so a query that forgot to filter by hospital fails loudly instead of leaking another
hospital's rows. Scopes are activated by the portal decorators (from the user's memberships,
never from a client-supplied value), by the admin site, by Celery tasks (from the hospital id
they are given) and, explicitly and greppably, by `unscoped()` in maintenance code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import models


class ScopeError(RuntimeError):
    """A tenant-owned model was queried outside any hospital scope."""


class _AllHospitals:
    def __repr__(self) -> str:
        return "<all hospitals>"


ALL_HOSPITALS = _AllHospitals()
_active: ContextVar[frozenset[int] | _AllHospitals | None] = ContextVar(
    "portal_hospital_scope", default=None
)


def _hospital_id(value: Any) -> int:
    if isinstance(value, models.Model):
        return int(value.pk)
    return int(value)


@contextmanager
def hospital_scope(hospitals: Iterable[Any] | Any) -> Iterator[frozenset[int]]:
    """Limit tenant-owned queries to these hospitals (instances or ids) inside the block."""
    if isinstance(hospitals, models.Model | int | str):
        hospitals = [hospitals]
    ids = frozenset(_hospital_id(h) for h in hospitals)
    token = _active.set(ids)
    try:
        yield ids
    finally:
        _active.reset(token)


@contextmanager
def unscoped() -> Iterator[None]:
    """Run across every hospital: maintenance commands, superuser auditing, the ledger."""
    token = _active.set(ALL_HOSPITALS)
    try:
        yield
    finally:
        _active.reset(token)


def active_scope() -> frozenset[int] | _AllHospitals | None:
    return _active.get()


class TenantManager(models.Manager):
    """Default manager of tenant-owned models: scoped, or an error.

    `hospital_field` is the lookup path to the owning hospital (for example "hospital" or
    "patient__hospital").
    """

    def __init__(self, hospital_field: str = "hospital") -> None:
        super().__init__()
        self.hospital_field = hospital_field

    def get_queryset(self) -> models.QuerySet:
        scope = _active.get()
        if scope is None:
            raise ScopeError(
                f"{self.model.__name__} is tenant-owned and was queried outside a hospital "
                "scope; wrap the code in hospital_scope(...) (or unscoped() for maintenance)."
            )
        qs = super().get_queryset()
        if scope is ALL_HOSPITALS:
            return qs
        return qs.filter(**{f"{self.hospital_field}__in": scope})
