"""The Jinja2 pages (portal/jinja2.py) render what their Django twins render.

templates/jinja2/base.html is the Django base.html in Jinja2 syntax: compared byte for
byte (CSRF tokens aside, which are new on every render) for a signed-in clinician with two
hospitals, a patient registration and a message, and for an anonymous visitor. Names with
quotes, ampersands and markup check that escaping is Django's.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pytest
from django.contrib import messages
from django.template import engines
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.functional import lazystr
from django.utils.safestring import mark_safe

from portal.tenancy.models import Role
from tests import factories

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def _both(template: str, request, context=None) -> tuple[str, str]:
    django = render_to_string(template, context or {}, request=request)
    jinja = engines["jinja2"].get_template(template).render(context or {}, request)
    return TOKEN.sub("TOKEN", django), TOKEN.sub("TOKEN", jinja)


def test_base_layout_twins_for_a_clinician_with_two_hospitals(
    client, sign_in, make_staff, hospital_a, hospital_b, make_patient_user
):
    hospital_b.name = 'Riverside "General" & <Sons>'
    hospital_b.save()
    user = make_staff(hospital_a, Role.CLINICIAN, username="o'brien")
    factories.MembershipFactory(user=user, hospital=hospital_b, role=Role.HOSPITAL_ADMIN)
    factories.PatientFactory(hospital=hospital_b, user=user)  # "My records" in the header
    sign_in(client, user)
    request = client.get("/provider/").wsgi_request
    messages.info(request, "Saved <b>O'Brien</b> & co.")
    django, jinja = _both("base.html", request)
    assert "Switch hospital" in django and "My records" in django
    assert "o&#x27;brien" in django and "&lt;b&gt;O&#x27;Brien&lt;/b&gt; &amp; co." in django
    assert jinja == django


def test_base_layout_twins_for_an_anonymous_visitor(client, hospital_a, hospital_b):
    request = client.get("/accounts/login/").wsgi_request
    django, jinja = _both("base.html", request)
    assert "Sign out" not in django
    assert jinja == django


@pytest.mark.parametrize(
    "value",
    [
        'O\'Brien & "Co" <script>',
        mark_safe("<b>kept</b>"),
        lazystr("lazy 'quoted' <i>"),
        None,
        12.5,
        "",
    ],
)
def test_values_are_escaped_as_django_escapes_them(value):
    django = engines["django"].from_string("{{ v }}").render({"v": value})
    assert engines["jinja2"].from_string("{{ v }}").render({"v": value}) == django


def test_date_filter_converts_to_the_current_time_zone_as_django_does():
    when = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)  # the night Lisbon moves to summer time
    with timezone.override(zoneinfo.ZoneInfo("Europe/Lisbon")):
        for fmt in ("Y-m-d H:i", "Y-m-d", "c"):
            django = engines["django"].from_string(f'{{{{ w|date:"{fmt}" }}}}').render({"w": when})
            jinja = engines["jinja2"].from_string(f'{{{{ w|date("{fmt}") }}}}').render({"w": when})
            assert jinja == django
    assert (
        engines["jinja2"].from_string('{{ d|date("Y-m-d") }}').render({"d": dt.date(1970, 2, 3)})
        == "1970-02-03"
    )


@pytest.mark.parametrize(
    "value",
    [
        dt.date(1970, 2, 3),
        dt.date(5, 1, 9),  # Django writes four digits: 0005
        dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 25, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 2, 3, 4),  # naive: not converted
        None,
        "",
        "2026-01-02",  # not a date: Django's filter decides
    ],
)
@pytest.mark.parametrize("fmt", ["Y-m-d", "Y-m-d H:i", "c", "j M Y"])
def test_date_filter_writes_what_djangos_writes(value, fmt):
    """The filter's fast path for the chart's two formats against Django's filter."""

    def render(engine: str, source: str) -> str:
        try:
            return engines[engine].from_string(source).render({"v": value})
        except TypeError as exc:  # a time format for a date: Django's filter refuses it
            return f"TypeError: {exc}"

    with timezone.override(zoneinfo.ZoneInfo("America/St_Johns")):  # a half-hour offset
        django = render("django", f'{{{{ v|date:"{fmt}" }}}}')
        jinja = render("jinja2", f'{{{{ v|date("{fmt}") }}}}')
    assert jinja == django


def test_static_urls_are_djangos():
    from django.templatetags.static import static

    rendered = engines["jinja2"].from_string("{{ static('portal/site.css') }}").render({})
    assert rendered == static("portal/site.css")
    assert rendered == engines["jinja2"].from_string("{{ static('portal/site.css') }}").render({})


def test_the_charts_csrf_token_is_accepted_by_djangos_middleware(
    make_staff, hospital_a, hospital_b, sign_in
):
    """The Jinja2 pages' CSRF token (the backend's csrf_input, Django's get_token): a form
    on the chart posts back through Django's CsrfViewMiddleware, checks enforced."""
    from django.test import Client

    from portal.records import services

    user = make_staff(hospital_a, Role.CLINICIAN)
    patient = services.patient_register(
        hospital=hospital_a, actor=user, mrn="CSRF1", given_name="Ann", family_name="Lee",
        birth_date=dt.date(1980, 1, 2), sex="female",
    )  # fmt: skip
    client = sign_in(Client(enforce_csrf_checks=True), user)
    client.get("/provider/")  # a Django page: the CSRF cookie is set
    first = client.get(f"/provider/patients/{patient.pk}/").content.decode()
    second = client.get(f"/provider/patients/{patient.pk}/").content.decode()
    tokens = [re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
              for page in (first, second)]  # fmt: skip
    assert all(len(t) == 64 and t.isalnum() for t in tokens) and tokens[0] != tokens[1]
    assert client.post("/accounts/logout/", {"csrfmiddlewaretoken": "x" * 64}).status_code == 403
    response = client.post("/accounts/logout/", {"csrfmiddlewaretoken": tokens[0]})
    assert response.status_code == 302  # accepted: signed out
