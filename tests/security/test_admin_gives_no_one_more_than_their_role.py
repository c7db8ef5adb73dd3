"""Issue 13, item 7: Django admin gives no one more than their role.

The attack, over HTTP: the auditor (a superuser) edits permission groups; "Log out" in the
admin leaves the session alive; a hospital admin makes themselves a clinician and reads
charts; the membership form lists every account without a role, other hospitals' patients
included. Here each of those fails: groups, permissions and every service-written table are
read-only; the admin's own log-out form ends the session on the server; nobody adds or
changes their own membership (admin and service, superusers included); the membership form
and the admin's autocomplete list only accounts the admin may see; and another hospital's
memberships are 404.
"""

from __future__ import annotations

import datetime as dt
import json
from html.parser import HTMLParser
from importlib import import_module

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.forms.models import model_to_dict
from django.test import Client

from consent import services as consent_services
from consent.models import Consent
from ledger.events import event_record
from ledger.models import Event
from portal.records import services as records_services
from portal.tenancy import services as tenancy_services
from portal.tenancy.models import Membership, Role
from portal.tenancy.scoping import unscoped
from tests import factories
from tests.conftest import current_code

# Written only by services (or by django-axes at log-in): nobody edits them in the admin.
READ_ONLY = [
    "auth.Group",
    "auth.User",
    "records.PatientUserObjectPermission",
    "records.PatientGroupObjectPermission",
    "records.ClinicalNoteUserObjectPermission",
    "consent.Consent",
    "consent.AccessRequest",
    "consent.BreakGlass",
    "consent.ProxyGrant",
    "ledger.Event",
    "ledger.AccessEvent",
    "ledger.Entry",
    "ledger.Checkpoint",
    "ledger.VerificationRun",
    "axes.AccessAttempt",
    "axes.AccessLog",
    "axes.AccessFailureLog",
]


@pytest.fixture
def world(make_staff, hospital_a, hospital_b):
    w = {"a": hospital_a, "b": hospital_b}
    for key, hospital in (("a", hospital_a), ("b", hospital_b)):
        w[f"admin_{key}"] = make_staff(hospital, Role.HOSPITAL_ADMIN, username=f"admin-{key}")
        w[f"clinician_{key}"] = make_staff(hospital, Role.CLINICIAN, username=f"clin-{key}")
        w[f"account_{key}"] = factories.UserFactory(username=f"patient-of-{key}")
    w["auditor"] = factories.UserFactory(username="auditor-x", is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=w["auditor"])
    w["newcomer"] = factories.UserFactory(username="newcomer")  # no role, no chart anywhere
    with unscoped():
        w["patient_a"] = records_services.patient_register(
            hospital=hospital_a, mrn="SEC-A-1", given_name="Ada", family_name="Lovelace",
            birth_date=dt.date(1970, 1, 2), user=w["account_a"], actor=w["clinician_a"],
        )  # fmt: skip
        w["patient_b"] = records_services.patient_register(
            hospital=hospital_b, mrn="SEC-B-1", given_name="Bea", family_name="Brontes",
            birth_date=dt.date(1980, 3, 4), user=w["account_b"], actor=w["clinician_b"],
        )  # fmt: skip
        consent_services.consent_grant(
            patient=w["patient_b"], actor=w["account_b"],
            grantee_kind=Consent.GranteeKind.HOSPITAL, grantee_hospital=hospital_a,
        )  # fmt: skip
        consent_services.break_glass_open(
            user=w["clinician_b"], user_hospital=hospital_b, patient=w["patient_b"],
            reason="Unconscious, allergies unknown",
        )  # fmt: skip
    with transaction.atomic():
        event_record(
            kind="chart.read", hospital=hospital_a.pk, subject=w["patient_a"],
            actor=w["clinician_a"], patient=w["patient_a"],
            attrs={"purpose": "TREAT", "break_glass": False, "via": "staff", "role": "clinician"},
        )  # fmt: skip
    # A failed log-in, so that django-axes has rows too.
    Client().post("/accounts/login/", {"username": "admin-a", "password": "not the password"})
    return w


def _url(model, view: str, *args) -> str:
    from django.urls import reverse

    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _snapshot(model) -> list[dict]:
    with unscoped():
        return [model_to_dict(obj) for obj in model._default_manager.order_by("pk")]


# -- groups, permissions and every table services write: read-only ---------------------------


def test_the_auditor_cannot_change_permission_groups(client, sign_in, world):
    auditor = world["auditor"]
    group = Group.objects.get(name=f"hospital-{world['a'].pk}-clinical-staff")
    perms_before = set(group.permissions.values_list("pk", flat=True))
    members_before = set(group.user_set.values_list("pk", flat=True))
    any_permission = Permission.objects.order_by("pk").first()
    sign_in(client, auditor)

    page = client.get(_url(Group, "change", group.pk))
    assert page.status_code in (200, 403)
    if page.status_code == 200:  # shown read-only: no form to save
        assert b'name="_save"' not in page.content
        assert b'name="permissions"' not in page.content

    response = client.post(
        _url(Group, "change", group.pk), {"name": "pwned", "permissions": [any_permission.pk]}
    )
    assert response.status_code == 403
    response = client.post(_url(Group, "add"), {"name": "mine", "permissions": [1, 2, 3]})
    assert response.status_code == 403
    response = client.post(_url(Group, "delete", group.pk), {"post": "yes"})
    assert response.status_code == 403
    response = client.post(
        _url(Group, "changelist"),
        {"action": "delete_selected", "_selected_action": [group.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)

    group.refresh_from_db()
    assert group.name == f"hospital-{world['a'].pk}-clinical-staff"
    assert set(group.permissions.values_list("pk", flat=True)) == perms_before
    assert set(group.user_set.values_list("pk", flat=True)) == members_before
    assert not Group.objects.filter(name="mine").exists()
    # Permissions themselves have no admin at all.
    assert not admin.site.is_registered(Permission)
    assert client.get("/admin/auth/permission/").status_code == 404


@pytest.mark.parametrize("label", READ_ONLY)
def test_service_written_tables_are_read_only_for_the_auditor(client, sign_in, world, label):
    model = apps.get_model(label)
    assert admin.site.is_registered(model), label
    sign_in(client, world["auditor"])
    before = _snapshot(model)
    events = Event.objects.count()

    assert client.get(_url(model, "add")).status_code == 403
    assert client.post(_url(model, "add"), {}).status_code == 403
    listing = client.get(_url(model, "changelist"))
    assert listing.status_code == 200
    assert b'value="delete_selected"' not in listing.content
    with unscoped():
        obj = model._default_manager.order_by("pk").first()
        data = {k: v for k, v in model_to_dict(obj).items() if v is not None} if obj else {}
    if obj is not None:
        assert client.post(_url(model, "change", obj.pk), data).status_code == 403
        assert client.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
        client.post(
            _url(model, "changelist"),
            {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"},
        )
    if label == "auth.User":
        target = world["clinician_a"]
        response = client.post(
            f"/admin/auth/user/{target.pk}/password/",
            {"password1": "Pwned-Pass-2026!", "password2": "Pwned-Pass-2026!"},
        )
        assert response.status_code == 403
        target.refresh_from_db()
        assert not target.check_password("Pwned-Pass-2026!")
    assert _snapshot(model) == before
    assert Event.objects.count() == events


# -- log-out ends the session -----------------------------------------------------------------


class _Forms(HTMLParser):
    """Every <form> of a page: its attributes and its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"attrs": attrs, "inputs": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["inputs"][attrs["name"]] = attrs.get("value", "")


def _forms(response) -> list[dict]:
    parser = _Forms()
    parser.feed(response.content.decode())
    return parser.forms


def _post_form(client, page_url: str, fields: dict):
    """GET a page, then POST its (only) form with its CSRF token and these fields."""
    page = client.get(page_url)
    assert page.status_code == 200, page_url
    (form,) = [f for f in _forms(page) if "csrfmiddlewaretoken" in f["inputs"]]
    action = form["attrs"].get("action") or page_url
    return client.post(action, {**form["inputs"], **fields})


@pytest.mark.parametrize("who", ["auditor", "admin_a"])
def test_the_admins_log_out_ends_the_session_on_the_server(world, who):
    user = world[who]
    client = Client(enforce_csrf_checks=True)
    # Both factors, through the real forms.
    response = _post_form(
        client, "/accounts/login/", {"username": user.username, "password": factories.PASSWORD}
    )
    assert response.status_code == 302 and response.url.endswith("/accounts/login/verify/")
    response = _post_form(client, "/accounts/login/verify/", {"token": current_code(user)})
    assert response.status_code == 302
    index = client.get("/admin/")
    assert index.status_code == 200
    old_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    store = import_module(settings.SESSION_ENGINE).SessionStore
    assert store().exists(old_key)

    # The admin's own "Log out": its form, as the page has it.
    (logout,) = [f for f in _forms(index) if f["attrs"].get("id") == "logout-form"]
    assert logout["attrs"]["method"].lower() == "post"
    response = client.post(logout["attrs"]["action"], logout["inputs"])
    assert response.status_code == 302

    assert not store().exists(old_key)  # the session row is gone
    after = client.get("/admin/")
    assert after.status_code == 302 and after.url.startswith("/accounts/login/")
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = old_key
    again = replay.get("/admin/")
    assert again.status_code == 302 and again.url.startswith("/accounts/login/")
    assert replay.get("/admin/auth/user/").status_code == 302


# -- nobody changes their own membership ----------------------------------------------------


def _membership(user, hospital) -> Membership:
    return Membership._base_manager.get(user=user, hospital=hospital)


def _change(client, membership, **data):
    form = {"role": membership.role, "is_active": "on", **data}
    return client.post(f"/admin/tenancy/membership/{membership.pk}/change/", form)


def test_a_hospital_admin_cannot_make_themselves_a_clinician(client, sign_in, world):
    me, a = world["admin_a"], world["a"]
    own = _membership(me, a)
    events = Event.objects.filter(kind="membership.changed").count()
    sign_in(client, me)

    page = client.get(f"/admin/tenancy/membership/{own.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert _change(client, own, role=Role.CLINICIAN).status_code == 403
    assert _change(client, own, role=Role.NURSE, is_active="").status_code == 403
    own.refresh_from_db()
    assert own.role == Role.HOSPITAL_ADMIN and own.is_active

    # Nor a second membership for themselves (nor one at all).
    response = client.post(
        "/admin/tenancy/membership/add/",
        {"user": me.username, "hospital": a.pk, "role": Role.CLINICIAN, "is_active": "on"},
    )
    assert response.status_code == 200  # the form again, with its error
    assert Membership._base_manager.filter(user=me).count() == 1

    # The service refuses it whoever calls it.
    with pytest.raises(PermissionDenied):
        tenancy_services.membership_update(
            membership=own, role=Role.CLINICIAN, department=None, is_active=True, actor=me
        )
    with pytest.raises(PermissionDenied):
        tenancy_services.membership_create(
            user=me, hospital=world["b"], role=Role.CLINICIAN, actor=me
        )
    own.refresh_from_db()
    assert own.role == Role.HOSPITAL_ADMIN
    assert not Membership._base_manager.filter(user=me, hospital=world["b"]).exists()
    assert Event.objects.filter(kind="membership.changed").count() == events

    # And so no chart opens for them.
    assert client.get(f"/provider/patients/{world['patient_a'].pk}/").status_code in (
        302, 403, 404,
    )  # fmt: skip


def test_a_superuser_cannot_change_their_own_membership_either(client, sign_in, world):
    auditor, a = world["auditor"], world["a"]
    own = tenancy_services.membership_create(
        user=auditor, hospital=a, role=Role.RECORDS_CLERK, actor=world["admin_a"]
    )
    sign_in(client, auditor)
    assert _change(client, own, role=Role.CLINICIAN).status_code == 403
    own.refresh_from_db()
    assert own.role == Role.RECORDS_CLERK
    response = client.post(
        "/admin/tenancy/membership/add/",
        {"user": auditor.username, "hospital": world["b"].pk, "role": Role.CLINICIAN,
         "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 200
    assert not Membership._base_manager.filter(user=auditor, hospital=world["b"]).exists()
    with pytest.raises(PermissionDenied):
        tenancy_services.membership_update(
            membership=own, role=Role.CLINICIAN, department=None, is_active=True, actor=auditor
        )
    # Someone else's membership the auditor still may change.
    other = _membership(world["clinician_a"], a)
    assert _change(client, other, role=Role.NURSE).status_code == 302
    other.refresh_from_db()
    assert other.role == Role.NURSE


# -- pickers list only accounts the admin may see -----------------------------------------


def _add(client, username: str, hospital):
    return client.post(
        "/admin/tenancy/membership/add/",
        {"user": username, "hospital": hospital.pk, "role": Role.NURSE, "is_active": "on"},
    )


def test_the_membership_form_lists_no_accounts_and_refuses_other_hospitals(client, sign_in, world):
    sign_in(client, world["admin_a"])
    page = client.get("/admin/tenancy/membership/add/")
    assert page.status_code == 200
    body = page.content.decode()
    for other in ("patient-of-b", "clin-b", "admin-b", "auditor-x", "newcomer", "patient-of-a"):
        assert other not in body  # no account is listed, not even the admin's own hospital's
    (form,) = [f for f in _forms(page) if f["attrs"].get("id") == "membership_form"]
    assert "user" in form["inputs"]  # a text box to type the username into, not a <select>

    # Another hospital's patient or staff, a superuser, an unknown name: one answer, nothing added.
    memberships = Membership._base_manager.count()
    answers = set()
    for username in ("patient-of-b", "clin-b", "auditor-x", "no-such-account", "admin-a"):
        response = _add(client, username, world["a"])
        assert response.status_code == 200, username
        errors = response.context["adminform"].form.errors["user"]
        answers.add(tuple(errors))
    assert len(answers) == 1
    assert Membership._base_manager.count() == memberships

    # An account tied to no other hospital (new, or this hospital's own patient) can be added.
    assert _add(client, "newcomer", world["a"]).status_code == 302
    assert _add(client, "patient-of-a", world["a"]).status_code == 302
    assert Membership._base_manager.filter(user=world["newcomer"], hospital=world["a"]).exists()


def _autocomplete(client, model_name: str, field_name: str, term: str = "", app="tenancy"):
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": app, "model_name": model_name, "field_name": field_name, "term": term},
    )
    if response.status_code != 200:
        return response.status_code, []
    return 200, [r["text"] for r in json.loads(response.content)["results"]]


@pytest.mark.parametrize(
    "source",
    [
        ("tenancy", "membership", "user"),
        ("records", "patient", "user"),
        ("consent", "consent", "grantee_user"),
        ("consent", "breakglass", "user"),
        ("otp_totp", "totpdevice", "user"),
    ],
)
def test_the_autocomplete_view_lists_no_other_hospitals_accounts(client, sign_in, world, source):
    app, model_name, field_name = source
    sign_in(client, world["admin_a"])
    seen = set()
    for term in ("", "patient", "of-b", "clin", "admin", "auditor", "newcomer"):
        status, texts = _autocomplete(client, model_name, field_name, term, app=app)
        assert status in (200, 403, 404)
        seen.update(texts)
    for other in ("patient-of-b", "clin-b", "admin-b", "auditor-x", "newcomer", "patient-of-a"):
        assert not any(other in text for text in seen), (other, seen)
    # Hospitals too: only their own.
    status, hospitals = _autocomplete(client, "membership", "hospital")
    assert status in (200, 403, 404)
    assert world["b"].name not in hospitals


# -- cross-tenant: another hospital's memberships are 404 ---------------------------------


def test_a_hospital_admin_gets_404_on_another_hospitals_memberships(client, sign_in, world):
    theirs = _membership(world["clinician_b"], world["b"])
    sign_in(client, world["admin_a"])
    base = f"/admin/tenancy/membership/{theirs.pk}"
    for path in (f"{base}/change/", f"{base}/history/", f"{base}/"):
        response = client.get(path)
        assert response.status_code in (404, 302), path
        if response.status_code == 302:  # Django's bare object URL redirects to change/
            assert client.get(response.url).status_code == 404
    assert _change(client, theirs, role=Role.HOSPITAL_ADMIN).status_code == 404
    # Nothing is deleted in the tenancy admin: the same refusal for theirs and for a missing id.
    missing = "/admin/tenancy/membership/987654321/delete/"
    for method in (client.get, client.post):
        answer = method(f"{base}/delete/", {"post": "yes"})
        assert answer.status_code in (403, 404)
        assert answer.status_code == method(missing, {"post": "yes"}).status_code
    theirs.refresh_from_db()
    assert theirs.role == Role.CLINICIAN and theirs.is_active
    listing = client.get("/admin/tenancy/membership/")
    assert b"clin-b" not in listing.content
