"""Issue 13, item 12: nothing that carries health data is kept by a browser or a proxy, and
every page runs under a strict Content-Security-Policy.

Over HTTP (Django's test client): every kind of answer a signed-in person or a bearer token
gets (provider pages, the chart, records, a document download, the patient portal and its
exports, the API by session and by token, FHIR, the admin, the API docs) says
`Cache-Control: no-store` and carries a CSP that allows no inline script or style; and no
HTML page holds an inline script, style, style attribute or event handler that the policy
would refuse, or loads anything from another site.

In chromium (live server): staff and a patient sign in through the real forms (TOTP
included), open the chart, the patient portal, the admin and the API docs without a single
CSP violation, the trend charts render with the site's styles, the pages' scripts still work
(print, the admin's actions, sidebar and theme, Swagger UI, ReDoc), and an injected inline
script is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone

from ledger import anchoring
from portal.records import services
from portal.records.models import ClinicalNote, Condition, Document
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories
from tests.conftest import current_code
from tests.provider.test_browser import browser_page, watch_csp  # noqa: F401 - a fixture


@pytest.fixture
def site(make_staff, hospital_a, hospital_b):
    """A patient with an account and a chart at St Mary's (a trend of three values, a problem,
    a note, a document), the chart's clinician, a hospital admin, the auditor, and the same
    kind of chart at Riverside."""
    clinician = make_staff(hospital_a, Role.CLINICIAN, username="dr.csp")
    admin = make_staff(hospital_a, Role.HOSPITAL_ADMIN, username="admin.csp")
    make_staff(hospital_b, Role.CLINICIAN)
    auditor = factories.UserFactory(username="auditor.csp", is_superuser=True, is_staff=True)
    factories.TOTPDeviceFactory(user=auditor)
    account = factories.UserFactory(username="pat.csp")
    now = timezone.now()
    with unscoped():
        patient = services.patient_register(
            hospital=hospital_a, mrn="CSP-1", given_name="Cora", family_name="Secure",
            birth_date=dt.date(1968, 5, 6), user=account, actor=clinician,
        )  # fmt: skip
        for hours, value in ((30, 72), (20, 80), (10, 76)):
            services.observation_create(
                actor=clinician, patient=patient, code="8867-4", display="Heart rate",
                value=Decimal(value), unit="/min", effective_at=now - dt.timedelta(hours=hours),
            )  # fmt: skip
        condition = services.record_create(
            actor=clinician, patient=patient, model=Condition, code="44054006",
            display="Diabetes mellitus type 2", onset_date=dt.date(2020, 1, 1),
        )  # fmt: skip
        note = services.record_create(
            actor=clinician, patient=patient, model=ClinicalNote, title="Visit", text="Well."
        )
        document = services.record_create(
            actor=clinician, patient=patient, model=Document, title="Scan",
            content_type="text/plain", size=5, sha256="0" * 64, content=b"hello",
        )  # fmt: skip
        services.patient_register(
            hospital=hospital_b, mrn="CSP-2", given_name="Other", family_name="Hospital",
            birth_date=dt.date(1970, 1, 1),
        )  # fmt: skip
    return {
        "clinician": clinician, "admin": admin, "auditor": auditor, "account": account,
        "patient": patient, "condition": condition, "note": note, "document": document,
    }  # fmt: skip


# --- what a response must say ---------------------------------------------------------------


def _directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def _cache_control(response) -> set[str]:
    return {
        part.split("=", 1)[0].strip().lower()
        for part in response.get("Cache-Control", "").split(",")
        if part.strip()
    }


def _policy_problems(response) -> list[str]:
    """What is wrong with the response's Content-Security-Policy (empty when strict)."""
    header = response.get("Content-Security-Policy")
    if not header:
        return ["no Content-Security-Policy header"]
    policy = _directives(header)
    problems = []
    if policy.get("default-src") != ["'self'"]:
        problems.append(f"default-src is {policy.get('default-src')}")
    for kind in ("script", "style"):
        sources = policy.get(f"{kind}-src", policy.get("default-src", []))
        # A nonce or a hash allows one element, never whatever markup an attacker adds.
        loose = [s for s in sources if s != "'self'" and not s.startswith(("'nonce-", "'sha"))]
        if loose:
            problems.append(f"{kind}-src allows {loose}")
        for narrower in (f"{kind}-src-attr", f"{kind}-src-elem"):
            if narrower in policy and policy[narrower] != ["'none'"]:
                problems.append(f"{narrower} is {policy[narrower]}")
    for directive in ("img-src", "font-src", "connect-src", "worker-src"):
        allowed = {
            "img-src": {"'self'", "data:"}, "worker-src": {"'self'", "blob:"}
        }.get(directive, {"'self'"})  # fmt: skip
        extra = set(policy.get(directive, policy.get("default-src", []))) - allowed
        if extra:
            problems.append(f"{directive} allows {sorted(extra)}")
    expected = {
        "object-src": [["'none'"]],
        "base-uri": [["'none'"], ["'self'"]],
        "frame-ancestors": [["'none'"]],
        "form-action": [["'self'"]],
    }
    for directive, choices in expected.items():
        if policy.get(directive) not in choices:
            problems.append(f"{directive} is {policy.get(directive)}")
    return problems


class _InlineFinder(HTMLParser):
    """Everything in a page that a strict CSP refuses, or that comes from another site."""

    def __init__(self, nonce: str | None) -> None:
        super().__init__()
        self.nonce = nonce
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        nonced = self.nonce is not None and attrs.get("nonce") == self.nonce
        if tag == "script" and not attrs.get("src") and not nonced:
            self.found.append("an inline <script>")
        if tag == "style" and not nonced:
            self.found.append("a <style> block")
        for name, value in attrs.items():
            if name == "style":
                self.found.append(f"style={value!r} on <{tag}>")
            if name.startswith("on"):
                self.found.append(f"{name}= on <{tag}>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.found.append(f"{name}=javascript: on <{tag}>")
        external = attrs.get("src") if tag == "script" else None
        if tag == "link":
            external = attrs.get("href")
        if external and re.match(r"^([a-z]+:)?//", external):
            self.found.append(f"<{tag}> from another site: {external}")


def _page_problems(response) -> list[str]:
    if not response.get("Content-Type", "").startswith("text/html"):
        return []
    match = re.search(r"'nonce-([^']+)'", response.get("Content-Security-Policy", ""))
    finder = _InlineFinder(match.group(1) if match else None)
    finder.feed(response.content.decode())
    return finder.found


def _check(response, label: str, status: int = 200) -> list[str]:
    problems = []
    if response.status_code != status:
        problems.append(f"answered {response.status_code}, not {status}")
    if "no-store" not in _cache_control(response):
        problems.append(f"Cache-Control is {response.get('Cache-Control')!r}")
    problems += _policy_problems(response) + _page_problems(response)
    return [f"{label}: {p}" for p in problems]


def _signed_in(sign_in, user) -> Client:
    return sign_in(Client(), user)


def _token_from_page(client: Client) -> str:
    """A token issued the way people get one: the API tokens page of a signed-in session."""
    response = client.post("/accounts/api-tokens/", {"name": "csp test", "days": "30"})
    assert response.status_code == 200, response.content
    return re.search(r'id="new-token">([^<]+)<', response.content.decode()).group(1)


# --- over HTTP ------------------------------------------------------------------------------


def test_every_authenticated_answer_is_no_store_under_a_strict_policy(site, sign_in):
    patient, account = site["patient"], site["account"]
    staff = _signed_in(sign_in, site["clinician"])
    person = _signed_in(sign_in, account)
    auditor = _signed_in(sign_in, site["auditor"])
    hospital_admin = _signed_in(sign_in, site["admin"])
    staff_token = _token_from_page(staff)
    patient_token = _token_from_page(person)
    bearer = Client()  # no cookies at all: only the token authenticates these
    problems: list[str] = []

    def get(client: Client, url: str, label: str, status: int = 200, **headers) -> None:
        problems.extend(_check(client.get(url, headers=headers), label, status))

    # The provider portal (the chart is the Jinja2 page).
    get(staff, "/provider/", "provider home")
    get(staff, f"/provider/patients/{patient.pk}/", "chart")
    get(staff, f"/provider/records/condition/{site['condition'].pk}/", "record")
    get(staff, f"/provider/records/clinicalnote/{site['note'].pk}/", "note")
    get(staff, f"/provider/patients/{patient.pk}/observations/new/", "record form")
    get(staff, f"/provider/documents/{site['document'].pk}/download/", "document download")
    get(staff, "/provider/shared/", "shared with me")
    get(staff, "/provider/break-glass/", "break-glass form")
    get(staff, "/accounts/api-tokens/", "API tokens page")
    get(staff, "/provider/patients/999999/", "a chart that is not there", status=404)
    # The patient portal and its exports.
    get(person, "/patient/", "patient home")
    get(person, "/patient/records/", "patient records")
    get(person, "/patient/access/", "patient access log")
    get(person, "/patient/consents/", "patient consents")
    get(person, "/patient/proxies/", "patient proxies")
    get(person, "/patient/export.json", "export (JSON)")
    get(person, "/patient/export/", "export (print)")
    # The API and FHIR, by session and by bearer token.
    get(staff, f"/api/v1/patients/{patient.pk}/chart/", "API chart by session")
    get(person, "/api/v1/me/records/", "API my records by session")
    auth = {"Authorization": f"Bearer {staff_token}"}
    get(bearer, f"/api/v1/patients/{patient.pk}/chart/", "API chart by token", **auth)
    get(bearer, f"/api/v1/patients/{patient.pk}/", "API patient by token", **auth)
    get(bearer, "/api/v1/patients/?q=Secure", "API patient search by token", **auth)
    get(bearer, f"/fhir/R4/Patient/{patient.pk}", "FHIR patient by token", **auth)
    get(bearer, f"/fhir/R4/Observation?patient={patient.pk}", "FHIR search by token", **auth)
    get(bearer, f"/fhir/R4/Patient/{patient.pk}/$everything", "FHIR everything by token", **auth)
    mine = {"Authorization": f"Bearer {patient_token}"}
    get(bearer, "/api/v1/me/records/", "API my records by patient token", **mine)
    get(bearer, "/api/v1/me/access-log/", "API my access log by patient token", **mine)
    get(bearer, "/api/v1/me/records/", "a token that is not valid", status=401,
        Authorization="Bearer not-a-token")  # fmt: skip
    # The admin: the auditor and a hospital admin.
    get(auditor, "/admin/", "admin index")
    get(auditor, "/admin/ledger/accessevent/", "admin access events")
    get(auditor, "/admin/ledger/accessevent/export.csv", "admin access events CSV")
    get(auditor, "/admin/ledger/health/", "admin ledger health")
    get(auditor, f"/admin/records/patient/{patient.pk}/change/", "admin patient")
    get(hospital_admin, "/admin/", "hospital admin index")
    get(hospital_admin, "/admin/records/patient/", "hospital admin patients")
    # The API docs, signed in and not.
    for who, client in (("signed in", staff), ("anonymous", Client())):
        get(client, "/api/docs/", f"Swagger UI ({who})")
        get(client, "/api/docs/?script", f"Swagger UI's script ({who})")
        get(client, "/api/redoc/", f"ReDoc ({who})")
        get(client, "/api/schema/", f"API schema ({who})")
    # The log-in pages, before anyone is signed in.
    get(Client(), "/accounts/login/", "log-in page")
    half = Client()
    half.post("/accounts/login/", {"username": "dr.csp", "password": factories.PASSWORD})
    get(half, "/accounts/login/verify/", "second-factor page")

    assert not problems, "\n".join(problems)


def test_the_public_ledger_key_and_static_files_stay_cacheable(site, sign_in):
    """The exceptions: what anyone may fetch and nobody's data is in. Signed in, even the
    key is no-store (a response to a credentialed request is never shared)."""
    key = Client().get("/ledger/key")
    assert key.status_code == 200
    assert "public" in _cache_control(key) and "no-store" not in _cache_control(key)
    assert not _policy_problems(key)
    css = Client().get("/static/portal/site.css")
    assert css.status_code == 200
    assert "no-store" not in _cache_control(css)
    signed_in = _signed_in(sign_in, site["clinician"]).get("/ledger/key")
    assert "no-store" in _cache_control(signed_in)
    assert "public" not in _cache_control(signed_in)
    by_token = Client().get("/ledger/key", headers={"Authorization": "Bearer x"})
    assert "no-store" in _cache_control(by_token)


# --- in the browser -------------------------------------------------------------------------

# The record's "Print" button calls window.print(): counted instead of opening a dialog.
COUNT_PRINTS = "window.print = () => { window.__printed = (window.__printed || 0) + 1; };"


def _sign_in(page, base: str, user, *, totp: bool) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if totp:
        page.wait_for_url("**/accounts/login/verify/")
        page.get_by_label("6-digit code").fill(current_code(user))
        page.get_by_role("button", name="Continue").click()


def _open(page, url: str):
    response = page.goto(url)
    assert response.status == 200, url
    headers = response.all_headers()
    assert "no-store" in headers.get("cache-control", ""), url
    assert "'unsafe-inline'" not in headers.get("content-security-policy", "-"), url
    assert headers.get("content-security-policy"), f"{url}: no CSP"
    return response


def _color(page, selector: str, prop: str) -> str:
    return page.eval_on_selector(
        selector, f"(el) => getComputedStyle(el).getPropertyValue({prop!r})"
    )


def test_pages_work_in_the_browser_under_the_policy(
    live_server,
    browser_page,  # noqa: F811 - the fixture imported above
    site,
    tmp_path,
):
    """(Screenshots of the chart, the admin and the API docs under the policy: tmp_path.)"""
    page = browser_page
    base = live_server.url
    violations = watch_csp(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script(COUNT_PRINTS)
    patient = site["patient"]

    # A clinician signs in with TOTP and opens the chart: the trend draws, with the site's CSS.
    _sign_in(page, base, site["clinician"], totp=True)
    page.wait_for_url("**/provider/")
    _open(page, f"{base}/provider/patients/{patient.pk}/")
    trend = page.locator('figure[data-code="8867-4"]')
    assert "Latest: 76 /min" in trend.inner_text()
    assert trend.locator("svg[role=img] polyline.line").count() == 1
    assert trend.locator("svg circle").count() == 3
    assert _color(page, ".site-header", "background-color") == "rgb(13, 43, 78)"
    assert _color(page, "svg polyline.line", "stroke") == "rgb(11, 92, 173)"
    assert _color(page, "svg polyline.line", "fill") == "none"
    page.screenshot(path=f"{tmp_path}/chart.png", full_page=True)
    _open(page, f"{base}/provider/records/condition/{site['condition'].pk}/")
    _open(page, f"{base}/accounts/api-tokens/")

    # The API docs: Swagger UI lists the operations and opens one; ReDoc renders, styled.
    _open(page, f"{base}/api/docs/")
    page.locator(".swagger-ui .info .title").filter(has_text="Hospital Portal API").wait_for()
    # "Try it out" on one operation: Swagger UI calls the API with the session (connect-src).
    shared = page.locator(".opblock").filter(has=page.locator('[data-path="/api/v1/shared/"]'))
    shared.locator(".opblock-summary").click()
    shared.get_by_role("button", name="Try it out").click()
    shared.get_by_role("button", name="Execute").click()
    status = shared.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert _color(page, ".swagger-ui .info .title", "color") == "rgb(59, 65, 81)"
    page.screenshot(path=f"{tmp_path}/swagger.png")
    _open(page, f"{base}/api/redoc/")
    page.locator("#redoc-container h1").filter(has_text="Hospital Portal API").wait_for()
    page.locator("#redoc-container .menu-content").wait_for()
    # ReDoc's own styles are <style> elements; they are applied (they carry the nonce).
    assert page.locator("style[data-styled]").count() >= 1
    assert _color(page, "#redoc-container .menu-content", "display") == "flex"
    page.get_by_placeholder("Search...").fill("chart")  # the search runs in a worker
    results = page.locator('[data-role="search:results"]')
    results.get_by_text("Chart summary", exact=False).wait_for()
    page.screenshot(path=f"{tmp_path}/redoc.png")

    # The patient signs in (no TOTP: they did not turn it on) and prints their record.
    page.context.clear_cookies()
    _sign_in(page, base, site["account"], totp=False)
    page.wait_for_url("**/patient/")
    _open(page, f"{base}/patient/records/")
    _open(page, f"{base}/patient/access/")
    _open(page, f"{base}/patient/export/")
    page.get_by_role("button", name="Print").click()
    assert page.evaluate("window.__printed") == 1

    # The auditor signs in with TOTP and uses the admin's scripts.
    page.context.clear_cookies()
    anchoring.ledger_anchor_pending()  # the lag chart needs anchored events
    _sign_in(page, base, site["auditor"], totp=True)
    page.wait_for_url("**/")
    _open(page, f"{base}/admin/")
    theme = page.evaluate("document.documentElement.dataset.theme || 'auto'")
    page.locator("button.theme-toggle").first.click()
    assert page.evaluate("document.documentElement.dataset.theme") != theme
    _open(page, f"{base}/admin/ledger/accessevent/")
    page.locator("#action-toggle").check()
    counter = page.locator(".action-counter")
    assert re.search(r"\b[1-9]\d* of [1-9]\d* selected", counter.inner_text())
    assert _color(page, "form.input-filter", "padding-left") == "15px"
    page.screenshot(path=f"{tmp_path}/admin.png", full_page=True)
    # The access events' list has no app sidebar (its table takes the width); another list does.
    _open(page, f"{base}/admin/records/patient/")
    sidebar = page.locator("#toggle-nav-sidebar")
    was_open = page.evaluate("document.querySelector('#main').classList.contains('shifted')")
    sidebar.click()
    assert page.evaluate("document.querySelector('#main').classList.contains('shifted')") != (
        was_open
    )
    _open(page, f"{base}/admin/ledger/health/")
    assert page.locator("figure.lag svg polyline.p95").count() == 1
    assert _color(page, ".lag-p95", "color") == "rgb(192, 57, 43)"
    page.screenshot(path=f"{tmp_path}/ledger-health.png", full_page=True)
    _open(page, f"{base}/admin/records/patient/{patient.pk}/change/")
    _open(page, f"{base}/admin/tenancy/hospital/add/")  # the slug follows the name (script)
    page.get_by_label("Name").press_sequentially("North Shore Clinic")
    assert page.get_by_label("Slug").input_value() == "north-shore-clinic"

    assert not errors, errors
    assert not violations, json.dumps(violations, indent=1)

    # The policy is enforced, not only sent: markup put into the page (as an injection would)
    # runs no script and applies no style.
    page.evaluate(INJECT)
    refused = {"script-src-attr", "script-src-elem", "style-src-attr"}
    for _ in range(40):  # violation events are queued after the refusals
        if {v["directive"] for v in violations} >= refused:
            break
        page.wait_for_timeout(50)
    assert {v["directive"] for v in violations} == refused, violations
    assert page.evaluate("window.__injected") is None
    assert _color(page, "#injected", "color") != "rgb(255, 0, 0)"


INJECT = """() => {
  const script = document.createElement("script");
  script.textContent = "window.__injected = 'script';";
  document.body.append(script);
  const div = document.createElement("div");
  div.innerHTML = '<p id="injected" style="color: red">x</p>' +
    '<img src="/static/portal/none.png" onerror="window.__injected = \\'handler\\'">';
  document.body.append(div);
}"""
