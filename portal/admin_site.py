"""The Django admin for auditors (superusers) and hospital admins.

Superusers audit every hospital; a hospital admin sees only the hospitals they administer.
The admin's own log-in page is replaced by the portal's, so two factors are always checked.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from portal.tenancy.scoping import hospital_scope, unscoped
from portal.tenancy.selectors import hospital_ids_administered


def admin_hospital_ids(request: HttpRequest) -> list[int]:
    """Hospitals the requesting hospital admin administers (memoized on the request)."""
    if not hasattr(request, "_admin_hospital_ids"):
        request._admin_hospital_ids = hospital_ids_administered(user=request.user)
    return request._admin_hospital_ids


class PortalAdminSite(admin.AdminSite):
    site_header = "Hospital Portal administration"
    site_title = "Hospital Portal admin"
    index_title = "Auditing and administration"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        if not (user.is_active and user.is_authenticated and user.is_verified()):
            return False
        return user.is_superuser or bool(admin_hospital_ids(request))

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        return redirect_to_login(request.GET.get("next") or request.get_full_path())

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (user.is_superuser or admin_hospital_ids(request)):
                raise PermissionDenied("This page is for auditors and hospital admins.")
            if not self.has_permission(request):
                # An auditor or hospital admin whose session has no second factor yet.
                return redirect_to_login(request.get_full_path())
            if user.is_superuser:
                with unscoped():
                    return inner(request, *args, **kwargs)
            with hospital_scope(admin_hospital_ids(request)):
                return inner(request, *args, **kwargs)

        return wrapper

    def get_urls(self):
        from django.urls import path

        from ledger import health

        return [
            path(
                "ledger/health/",
                self.admin_view(lambda request: health.health_view(request, self)),
                name="ledger_health",
            ),
            path(
                "ledger/health/verify/",
                self.admin_view(health.verify_view),
                name="ledger_verify",
            ),
            path(
                "ledger/health/runs/<int:run_id>.json",
                self.admin_view(health.run_status_view),
                name="ledger_run_status",
            ),
            *super().get_urls(),
        ]

    def logout(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        return redirect("accounts:home")
