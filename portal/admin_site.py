"""The Django admin for auditors (superusers) and hospital admins.

Superusers audit every hospital; a hospital admin sees only the hospitals they administer.
The admin's own log-in page is replaced by the portal's, so two factors are always checked,
and its log-out is the portal's, which ends the session on the server.

Bad input is answered, never a 500: a null character anywhere in a request is refused by
the site (PostgreSQL cannot even compare text with one), and the project's ModelAdmins
(PortalModelAdminMixin) and list filters (ChoiceListFilter, InputListFilter) turn any other
value they cannot use into Django's own answer to an invalid lookup (back to the list, `?e=1`)
with a message in plain words.
"""

from __future__ import annotations

from functools import wraps

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, ChangeList
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.response import SimpleTemplateResponse, TemplateResponse

from portal.tenancy.scoping import hospital_scope, unscoped
from portal.tenancy.selectors import hospital_ids_administered

NUL = "\x00"


def admin_hospital_ids(request: HttpRequest) -> list[int]:
    """Hospitals the requesting hospital admin administers (memoized on the request)."""
    if not hasattr(request, "_admin_hospital_ids"):
        request._admin_hospital_ids = hospital_ids_administered(user=request.user)
    return request._admin_hospital_ids


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


# -- bad input in lists: Django's answer to an invalid lookup, in plain words ----------------

INVALID_FILTER = "A filter value could not be used, so the whole list is shown."


class PortalChangeList(ChangeList):
    """Django's change list, with a date-hierarchy year at the calendar's edge
    (`?recorded_at__year=9999` or a number too large for a date) an invalid lookup like any
    other, where Django's own would raise ValueError or OverflowError."""

    def get_filters(self, request: HttpRequest):
        try:
            return super().get_filters(request)
        except (ValueError, OverflowError) as e:
            raise IncorrectLookupParameters(e) from e


class PortalModelAdminMixin:
    """What every ModelAdmin of the portal shares (the tenancy mixins inherit it): bad filter
    values and bad row ids are answered, not a 500, and the answer says so."""

    def get_changelist(self, request: HttpRequest, **kwargs):
        return PortalChangeList

    def changelist_view(self, request: HttpRequest, extra_context=None):
        if ERROR_FLAG in request.GET:
            # Where Django's changelist sends an invalid lookup; it says nothing itself.
            messages.warning(request, INVALID_FILTER)
        return super().changelist_view(request, extra_context)

    def response_action(self, request: HttpRequest, queryset):
        # Django filters `pk__in` with whatever was posted: a value that is not a row id
        # would be a ValueError (a 500) inside the ORM. None: back to the list, as Django
        # does for an action without rows.
        pk = self.opts.pk
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                pk.to_python(value)
        except ValidationError:
            messages.error(request, "Choose the rows from the list; nothing was changed.")
            return None
        return super().response_action(request, queryset)


class ChoiceListFilter(admin.SimpleListFilter):
    """A SimpleListFilter whose value must be one of its own lookups: anything else is an
    invalid lookup, never a query. Subclasses implement `filter(queryset, value)`."""

    def queryset(self, request: HttpRequest, queryset):
        value = self.value()
        if not value:  # absent or empty: the whole list
            return queryset
        if value not in {str(key) for key, _label in self.lookup_choices}:
            raise IncorrectLookupParameters(f"{self.parameter_name}: not a choice")
        return self.filter(queryset, value)

    def filter(self, queryset, value: str):
        raise NotImplementedError


class InputListFilter(admin.ListFilter):
    """A filter typed in (a patient id, dates): a small GET form in the sidebar.

    `form_class` names the parameters (its fields, whose labels are shown) and validates them;
    a value it does not accept is an invalid lookup. Subclasses implement
    `filter(queryset, cleaned_data)`, which sees only the parameters that were given.
    """

    template = "admin/ledger/input_filter.html"
    form_class: type[forms.Form] = forms.Form

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        names = list(self.form_class.base_fields)
        self.values = {}
        for name in names:
            if name in params:
                value = params.pop(name)
                self.values[name] = value[-1] if isinstance(value, list) else value
                self.used_parameters[name] = self.values[name]
        self.form = self.form_class({k: v for k, v in self.values.items() if v != ""})
        self.others = [
            (k, v) for k, values in request.GET.lists() for v in values if k not in names
        ]

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return list(self.form_class.base_fields)

    def queryset(self, request: HttpRequest, queryset):
        if not self.form.is_valid():
            raise IncorrectLookupParameters(self.form.errors.as_text())
        given = {k: v for k, v in self.form.cleaned_data.items() if v not in (None, "")}
        return self.filter(queryset, given) if given else queryset

    def filter(self, queryset, cleaned_data: dict):
        raise NotImplementedError

    def choices(self, changelist):
        # The template reads the form's fields; one "All" entry clears them.
        yield {
            "selected": not self.values,
            "query_string": changelist.get_query_string(remove=self.expected_parameters()),
            "display": "All",
            "inputs": [
                (name, field.label, self.values.get(name, ""))
                for name, field in self.form_class.base_fields.items()
            ],
            "others": self.others,
        }
