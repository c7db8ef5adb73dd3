"""The Django admin for auditors (superusers) and hospital admins.

Superusers audit every hospital; a hospital admin sees only the hospitals they administer.
The admin's own log-in page is replaced by the portal's, so two factors are always checked,
and its log-out is the portal's, which ends the session on the server.

Who may enter is the portal's one gate (accounts.gates, audience "admin"). Bad input is
answered, never a 500: a null character anywhere in a request is refused by the site
(PostgreSQL cannot even compare text with one); what the ModelAdmins share for other bad
values is in portal.admin_base (re-exported here for the apps' admins).
"""

from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import SimpleTemplateResponse, TemplateResponse

from portal.accounts.gates import Audience, Refusal, entry_refusal
from portal.admin_base import (
    ChoiceListFilter,
    InputListFilter,
    PortalChangeList,
    PortalModelAdminMixin,
    admin_hospital_ids,
)
from portal.tenancy.scoping import hospital_scope, unscoped

__all__ = [
    "ChoiceListFilter",
    "InputListFilter",
    "PortalAdminSite",
    "PortalChangeList",
    "PortalModelAdminMixin",
    "admin_hospital_ids",
]

NUL = "\x00"


def _has_nul(request: HttpRequest) -> bool:
    for data in (request.GET, request.POST):
        for key, values in data.lists():
            if NUL in key or any(NUL in value for value in values):
                return True
    return NUL in request.path


class PortalAdminSite(admin.AdminSite):
    site_header = "Hospital Portal administration"
    site_title = "Hospital Portal admin"
    index_title = "Auditing and administration"

    def has_permission(self, request: HttpRequest) -> bool:
        return entry_refusal(request, Audience.ADMIN) is None

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        return redirect_to_login(request.GET.get("next") or request.get_full_path())

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            refusal = entry_refusal(request, Audience.ADMIN)
            if refusal == Refusal.SIGN_IN:
                # Nobody signed in, or an auditor or admin without the second factor yet.
                return redirect_to_login(request.get_full_path())
            if refusal is not None:
                raise PermissionDenied("This page is for auditors and hospital admins.")
            user = request.user
            scope = unscoped() if user.is_superuser else hospital_scope(admin_hospital_ids(request))
            with scope:
                if _has_nul(request):
                    # No field accepts one, and PostgreSQL cannot even compare text with one.
                    response = self.bad_request(
                        request, "The request contained a null character, which no field accepts."
                    )
                else:
                    response = inner(request, *args, **kwargs)
                if isinstance(response, SimpleTemplateResponse) and not response.is_rendered:
                    # Rendered here, not after the view returns: what the template still
                    # queries (the filters' facet counts) must run inside the hospital scope.
                    response.render()
                return response

        return wrapper

    def bad_request(self, request: HttpRequest, message: str) -> HttpResponse:
        """A 400 page in the admin's layout; nothing was read or written."""
        context = {**self.each_context(request), "title": "That request could not be used"}
        context["message"] = message
        return TemplateResponse(request, "admin/bad_request.html", context, status=400)

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
        # The admin's "Log out" form posts here: the portal's own log-out (POST only), which
        # deletes the session row, so the old cookie opens nothing afterwards.
        from portal.accounts.views import logout_view

        return logout_view(request)
