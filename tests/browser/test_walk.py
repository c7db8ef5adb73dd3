"""The portal walked in a real browser (Playwright driving Debian's chromium, never a
download), as each role of the demo, at a desktop and a phone size: every page a role's
journeys reach loads without a page error or a console error (CSP violations included), fits
the screen's width, and has no accessibility violation that axe-core rates serious or critical.

axe-core comes from npm (tests/browser/package.json, installed by `make test`) and is put into
each document through the DevTools protocol (an init script, like page.evaluate), which the
page's CSP does not govern: the pages are checked under the CSP they ship with, and a
<script> tag (Playwright's add_script_tag) would have been refused by it.

Re-run it alone with `.venv/bin/python -m pytest -q tests/browser/`; WALK_SHOTS=<dir> also keeps
a screenshot of every page there (they are always saved under the test's tmp_path).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from django.contrib.auth import get_user_model

from consent import services as consent_services
from consent.models import ProxyGrant
from portal.ops.demo import DEMO_PASSWORD, seed
from portal.records import access, audit
from portal.records.models import Patient
from portal.tenancy.models import Hospital, Membership
from portal.tenancy.scoping import unscoped
from tests.conftest import current_code
from tests.provider.test_browser import ARGS, CHROMIUM, watch_csp

User = get_user_model()
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PAGES_PER_ROLE = 40  # a crawl that finds more has found a loop of ever-new links

# Links the walk never follows: files, JSON, the raw ledger, the API, leaving the portal.
NOT_PAGES = re.compile(
    r"(/download/|\.json$|\.csv$|/receipt$|^/ledger/|^/api/|^/fhir/|^/accounts/logout/"
    r"|^/static/|^/media/|^/healthz)"
)

RUN_AXE = """async () => {
  if (typeof axe === "undefined") throw new Error("axe-core is missing in " + location.href);
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                  targets: v.nodes.slice(0, 6).map((n) => n.target.join(" ")),
                  count: v.nodes.length}));
}"""

OVERFLOW = """() => {
  const doc = document.documentElement;
  if (doc.scrollWidth <= window.innerWidth + 1) return null;
  // The widest elements that stick out, to name in the report.
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.right > window.innerWidth + 1 && r.width > 0) {
      const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
        (el.classList.length ? "." + [...el.classList].join(".") : "");
      wide.push(name + " (" + Math.round(r.right) + "px)");
    }
  }
  return {scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth, wide: wide.slice(0, 6)};
}"""


@dataclass
class Walker:
    role: str
    username: str
    totp: bool
    start: list[str]
    # Paths (prefixes) whose links the crawl follows from the start pages.
    follow: tuple[str, ...] = ()
    # ... but not these: pages another role's walk has shown already, with the same template.
    avoid: tuple[str, ...] = ()
    # Pages visited only as listed (Django admin: its filters and sorts make endless links).
    listed: list[str] = field(default_factory=list)
    # Pages that must refuse (404: missing and forbidden look the same), checked all the same.
    refused: list[str] = field(default_factory=list)
    # Checks the sign-in pages on the way in, at this size ("desktop" or "phone").
    sign_in_at: str | None = None


def _pattern(url: str) -> str:
    """The shape of a page's address: ids become `*`, so a list of fifty records is walked
    through one of them, while a tab (?tab=notes) stays a page of its own."""
    parts = urlsplit(url)
    path = re.sub(r"/[0-9a-f-]{8,}(?=/|$)|/\d+(?=/|$)", "/*", parts.path)
    query = "&".join(
        sorted(
            re.sub(r"=.*\d.*$", "=*", kv)
            for kv in parts.query.split("&")
            if kv and not kv.startswith(("cursor=", "page=", "p=", "o="))
        )
    )
    return f"{path}?{query}" if query else path


@pytest.fixture
def browser(tmp_path):
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed; `make test` installs it")
    if not AXE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(
                "axe-core is missing: `make test` installs it (npm ci --prefix tests/browser)"
            )
        pytest.skip("axe-core is not installed: npm ci --prefix tests/browser")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def demo(live_server):
    """The demo's data, small: two hospitals, each role, patient1 at both, a consent
    (patient3 shares with riverside.clinician), an access request to patient2, and a carer:
    patient4 sees patient1's records as their proxy."""
    seed(patients=4, records_per_patient=6)
    patient1 = User._default_manager.get(username="patient1")
    carer = User._default_manager.get(username="patient4")
    invitation = consent_services.proxy_invite(
        grantor=patient1, proxy_username="patient4", relationship=ProxyGrant.Relationship.CARER
    )
    consent_services.proxy_accept(invitation=invitation, actor=carer)
    _reads(patient1)
    return live_server.url


def _reads(patient: User) -> None:
    """Something in patient1's access log: a read by their clinician, and a break-glass
    read by another hospital's (flagged)."""
    st_mary = Hospital.objects.get(slug="st-mary")
    chart = Patient._base_manager.get(user=patient, hospital=st_mary)
    for username in ("stmary.clinician", "riverside.clinician"):
        reader = User._default_manager.get(username=username)
        membership = Membership._base_manager.get(user=reader)
        with unscoped():
            if membership.hospital_id != st_mary.pk:
                consent_services.break_glass_open(
                    user=reader, user_hospital=membership.hospital, patient=chart,
                    reason="Brought in unconscious; needs the allergy list",
                )  # fmt: skip
            opened = access.access_patient(reader, chart.pk)
            audit.chart_read_record(reader=reader, chart=opened, membership=membership)


def _walkers() -> list[Walker]:
    # The account pages (two-factor sign-in, API tokens) are the same for everyone: walked
    # once by a clinician and once by a patient.
    account = ("/accounts/two-factor/", "/accounts/api-tokens/")
    staff, mine = ("/provider/", *account), ("/patient/", *account)
    admin_pages = [
        "/admin/",
        "/admin/ledger/accessevent/",
        "/admin/ledger/accessevent/?q=ST100001",
        "/admin/records/patient/",
        "/admin/records/patient/?q=ST100001",
        "/admin/tenancy/membership/",
        "/admin/consent/consent/",
        "/admin/consent/breakglass/",
    ]
    return [
        Walker("clinician", "stmary.clinician", True, ["/provider/", "/provider/?q=Silva"],
               follow=staff, refused=["/provider/patients/999999999/"], sign_in_at="desktop"),
        Walker("nurse", "stmary.nurse", True, ["/provider/"], follow=("/provider/",),
               avoid=("/provider/records/",), sign_in_at="phone"),
        Walker("records clerk", "stmary.clerk", True, ["/provider/"], follow=("/provider/",),
               avoid=("/provider/records/",)),
        Walker("shared clinician", "riverside.clinician", True, ["/provider/shared/"],
               follow=("/provider/",)),
        Walker("hospital admin", "stmary.admin", True, ["/"], follow=("/provider/",),
               listed=admin_pages),
        # The auditor sees the hospital admin's pages for every hospital, in the same
        # templates: walked here are the ones only the auditor has.
        Walker("auditor", "auditor", True, ["/"], listed=[
            "/admin/", "/admin/ledger/accessevent/?q=Shaw", "/admin/ledger/health/",
            "/admin/ledger/event/", "/admin/auth/user/", "/admin/accounts/totpdevice/",
            "/admin/consent/proxygrant/", "/admin/tenancy/hospital/",
        ]),
        Walker("patient", "patient1", False, ["/patient/"], follow=mine,
               refused=["/patient/proxies/00000000-0000-0000-0000-000000000000/records/"],
               sign_in_at="phone"),
        Walker("patient with a request", "patient2", False, ["/patient/", "/patient/requests/"],
               follow=("/patient/requests/",)),
        Walker("carer (proxy)", "patient4", False, ["/patient/", "/patient/proxies/"],
               follow=("/patient/proxies/",)),
    ]  # fmt: skip


class Walk:
    """One role's browser session and what it found wrong."""

    def __init__(self, page, base: str, walker: Walker, shots: list[Path]):
        self.page, self.base, self.walker, self.shots = page, base, walker, shots
        self.problems: list[str] = []
        self.size = "desktop"
        self.count = 0
        self.errors: list[str] = []
        self.csp = watch_csp(page)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console)

    def _console(self, message) -> None:
        if message.type == "error" and not message.text.startswith("csp-violation "):
            source = (message.location or {}).get("url") or ""
            self.errors.append(f"console error: {message.text} {source}".rstrip())

    def sign_in(self) -> None:
        page, check = self.page, self.walker.sign_in_at is not None
        if check:
            self.size = self.walker.sign_in_at
            page.set_viewport_size(PHONE if self.size == "phone" else DESKTOP)
        user = User._default_manager.get(username=self.walker.username)
        self.visit(f"{self.base}/accounts/login/", check=check)
        # By field names, not labels: the walk outlives changes of wording.
        page.locator("main input[name=username]").fill(user.get_username())
        page.locator("main input[name=password]").fill(DEMO_PASSWORD)
        with page.expect_navigation():
            page.locator("main button[type=submit]").click()
        if self.walker.totp:
            assert urlsplit(page.url).path == "/accounts/login/verify/", page.url
            if check:
                self.check(expect=200, response=None)
            page.locator("main input[name=token]").fill(current_code(user))
            with page.expect_navigation():
                page.locator("main button[type=submit]").click()
        page.wait_for_load_state("load")
        assert "/accounts/login" not in page.url, f"{self.walker.username} did not get in"
        self.size = "desktop"
        page.set_viewport_size(DESKTOP)

    def visit(self, url: str, *, expect: int = 200, check: bool = True) -> list[str]:
        """Opens `url`, checks it, saves its screenshot; returns the links on it."""
        self.errors.clear()
        del self.csp[:]
        response = self.page.goto(url, wait_until="load")
        if not check:
            return []
        return self.check(expect=expect, response=response)

    def check(self, *, expect: int, response) -> list[str]:
        """Checks the page now shown (`response`: how it came, if by page.goto)."""
        page = self.page
        where = f"[{self.walker.role}, {self.size}] {urlsplit(page.url).path}" + (
            f"?{urlsplit(page.url).query}" if urlsplit(page.url).query else ""
        )
        if response is not None:
            if response.status != expect:
                self.problems.append(f"{where}: HTTP {response.status}, not {expect}")
            if "text/html" not in response.headers.get("content-type", ""):
                return []
        for error in self.errors:
            if expect == 404 and "status of 404" in error and error.endswith(page.url):
                continue  # the refusal page itself
            self.problems.append(f"{where}: {error}")
        for violation in self.csp:
            self.problems.append(f"{where}: CSP violation {violation}")
        overflow = page.evaluate(OVERFLOW)
        if overflow:
            self.problems.append(
                f"{where}: horizontal overflow, {overflow['scrollWidth']}px wide in "
                f"{overflow['innerWidth']}px: {', '.join(overflow['wide'])}"
            )
        for v in page.evaluate(RUN_AXE):
            self.problems.append(
                f"{where}: axe {v['impact']} {v['id']} ({v['help']}) on {v['count']} "
                f"element(s): {' | '.join(v['targets'])}"
            )
        self.count += 1
        slug = re.sub(r"[^a-z0-9]+", "-", _pattern(page.url).lower()).strip("-")
        role = re.sub(r"[^a-z0-9]+", "-", self.walker.role)
        name = f"{role}/{self.size}/{self.count:02d}-{slug[:60] or 'home'}.png"
        for directory in self.shots:
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
        self.shots[0].joinpath(name).write_bytes(page.screenshot(full_page=True))
        for directory in self.shots[1:]:
            shutil.copyfile(self.shots[0] / name, directory / name)
        return page.eval_on_selector_all(
            "a[href]:not([download])", "links => links.map((a) => a.getAttribute('href'))"
        )

    def crawl(self) -> list[str]:
        """Every page the role reaches from its start pages by following links (one page of
        each shape), then its listed pages; returns what it visited, in order."""
        seen: set[str] = set()
        visited: list[str] = []
        queue = [urljoin(self.base, s) for s in self.walker.start]
        while queue and len(visited) < PAGES_PER_ROLE:
            url = queue.pop(0)
            shape = _pattern(url)
            if shape in seen:
                continue
            seen.add(shape)
            visited.append(url)
            for href in self.visit(url):
                target = urljoin(self.page.url, href).split("#")[0]
                parts = urlsplit(target)
                if f"{parts.scheme}://{parts.netloc}" != self.base:
                    continue
                if (
                    NOT_PAGES.search(parts.path)
                    or not parts.path.startswith(self.walker.follow or ("-",))
                    or parts.path.startswith(self.walker.avoid or ("-",))
                ):
                    continue
                if _pattern(target) not in seen:
                    queue.append(target)
        for listed in self.walker.listed:
            url = urljoin(self.base, listed)
            visited.append(url)
            self.visit(url)
            # One object of each admin list, through its first row's link.
            first = self.page.locator("#result_list tbody tr a[href]").first
            if listed.endswith("/") and "?" not in listed and first.count():
                href = urljoin(self.page.url, first.get_attribute("href"))
                visited.append(href)
                self.visit(href)
        return visited

    def refusals(self) -> None:
        for path in self.walker.refused:
            self.visit(urljoin(self.base, path), expect=404)


@pytest.mark.parametrize("walker", _walkers(), ids=lambda w: w.role.replace(" ", "-"))
def test_every_page_of_each_role_is_clean_accessible_and_fits(walker, demo, browser, tmp_path):
    shots = [tmp_path]
    if os.environ.get("WALK_SHOTS"):
        shots.append(Path(os.environ["WALK_SHOTS"]))
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(path=str(AXE))
    page = context.new_page()
    page.set_default_timeout(30_000)
    walk = Walk(page, demo, walker, shots)
    walk.sign_in()
    visited = walk.crawl()
    walk.refusals()
    walk.size = "phone"
    page.set_viewport_size(PHONE)
    for url in visited:
        walk.visit(url)
    walk.refusals()
    context.close()
    assert len(visited) >= 3, visited
    problems = "\n".join(f"  {p}" for p in walk.problems)
    assert not walk.problems, f"{len(walk.problems)} problem(s) on the walk:\n{problems}"
