"""Object permissions answered by the access module, so `user.has_perm(perm, obj)` (and so
DRF's object permissions) cannot disagree with the portal.

django-guardian's own ObjectPermissionBackend is not configured: it reads the permission
tables without their time windows and sources, so it said yes for an expired consent's rows
and for a proxy's rows, which open no chart. guardian still holds the grants (its direct
foreign-key tables, written only by records.grants); this backend decides from them through
records.access.object_permissions_for, the same rule every page, API and FHIR view asks.

One difference stays, by Django's design: `User.has_perm` answers True for any active
superuser without asking a backend, while the portal opens no chart to a superuser. The
portal therefore never decides access with `has_perm` (tests/security checks it).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend

from portal.records.access import object_permissions_for

APP_LABEL = "records"


class ChartPermissionBackend(BaseBackend):
    """Object permissions on charts and records; model-level permissions stay with Django's
    ModelBackend, which grants no object permission."""

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if obj is None:
            return set()
        return {f"{APP_LABEL}.{c}" for c in object_permissions_for(user=user_obj, obj=obj)}

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if obj is None:
            return False
        app_label, _, codename = perm.rpartition(".")
        if app_label not in ("", APP_LABEL):
            return False
        return codename in object_permissions_for(user=user_obj, obj=obj)
