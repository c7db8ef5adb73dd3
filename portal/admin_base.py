"""What every ModelAdmin of the portal shares (the tenancy mixins and the apps' admins use it).

Bad input is answered, never a 500: the project's ModelAdmins (PortalModelAdminMixin) and
list filters (ChoiceListFilter, InputListFilter) turn any value they cannot use into
Django's own answer to an invalid lookup (back to the list, `?e=1`) with a message in plain
words; a row id that names no row the admin may see is a 404, missing or forbidden alike.
Nothing here decides who may enter the admin: the site does (portal.admin_site).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, ChangeList
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest

from portal.tenancy.selectors import hospital_ids_administered_for_request


def admin_hospital_ids(request: HttpRequest) -> list[int]:
    """Hospitals the requesting hospital admin administers (from the request's memberships)."""
    return hospital_ids_administered_for_request(request=request)


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


class MissingIsNotFoundMixin:
    """A row id that names no row of this admin's queryset (missing, or outside the admin's
    hospitals) is a 404 on the change, delete and history pages alike, through the public
    `ModelAdmin.get_object` (Django's default answer is a redirect to the admin index with
    a "does not exist" message)."""

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj


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
        errors = self.form.errors if self.values else {}
        yield {
            "selected": not self.values,
            "query_string": changelist.get_query_string(remove=self.expected_parameters()),
            "display": "All",
            # (name, label, value typed, what is wrong with it: shown next to the input)
            "inputs": [
                (name, field.label, self.values.get(name, ""), " ".join(errors.get(name, [])))
                for name, field in self.form_class.base_fields.items()
            ],
            "others": self.others,
        }
