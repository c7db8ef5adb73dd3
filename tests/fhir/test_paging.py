"""Paged FHIR searches: `_count`, Bundle.link, following `next` (and `previous`) to the end,
page tokens bound to the caller, the hospital and the URL, no PHI in links, query counts."""

import datetime as dt
import json
from decimal import Decimal
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ledger.models import Event
from portal.api.services import token_issue
from portal.fhir import paging, resources, search, selectors
from portal.records import access, services
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped
from tests import factories

BASE = "/fhir/R4/"
FORM = "application/x-www-form-urlencoded"


def _bundle(response, status=200):
    assert response.status_code == status, response.content[:500]
    body = json.loads(response.content)
    resources.validate_resource(body)
    return body


def _matches(bundle):
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle["entry"]
        if e["search"]["mode"] == "match"
    ]


def _link(bundle, relation):
    for link in bundle.get("link", []):
        if link["relation"] == relation:
            return link["url"]
    return None


def _path(url):
    """A link as a test client URL (the links are absolute)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _follow(get, url, relation="next", limit=200):
    """Every page from `url` on, following `relation`: the bundles."""
    pages = [_bundle(get(url))]
    while _link(pages[-1], relation) and len(pages) < limit:
        pages.append(_bundle(get(_path(_link(pages[-1], relation)))))
    return pages


def _observations(c, n, *, start=None, **kwargs):
    start = start or timezone.now() - dt.timedelta(days=30)
    with unscoped():
        return [
            services.observation_create(
                actor=c["clinician"],
                patient=c["patient"],
                code=kwargs.get("code", "8867-4"),
                display="Heart rate",
                value=Decimal(60 + i),
                unit="/min",
                effective_at=start + dt.timedelta(hours=i),
            )
            for i in range(n)
        ]


def _staff_token(user):
    return token_issue(user=user, name="paging", audience="staff", two_factor=True)[1]


def _bearer(client, token, hospital=None):
    headers = {"Authorization": f"Bearer {token}"}
    if hospital is not None:
        headers["X-Hospital"] = hospital.slug
    return lambda url: client.get(url, headers=headers)


def test_following_next_gives_the_unpaged_set_once_even_with_records_added_between_pages(
    client, sign_in, chart
):
    a = chart["a"]
    _observations(a, 12)
    sign_in(client, a["clinician"])
    url = f"{BASE}Observation?patient={a['patient'].pk}"
    everything = _bundle(client.get(f"{url}&_count=200"))
    unpaged = _matches(everything)
    assert len(unpaged) == 13 and everything["total"] == 13
    first = _bundle(client.get(f"{url}&_count=5"))
    assert first["total"] == 13 and len(_matches(first)) == 5
    assert _link(first, "self") and _link(first, "first") and not _link(first, "previous")
    second = _bundle(client.get(_path(_link(first, "next"))))
    added = _observations(a, 3, start=timezone.now() - dt.timedelta(days=400))  # older, later ids
    rest = _follow(client.get, _path(_link(second, "next")))
    seen = _matches(first) + _matches(second) + [m for page in rest for m in _matches(page)]
    assert len(seen) == len(set(seen))  # no duplicates
    assert seen == unpaged + [f"Observation/{o.pk}" for o in added]  # no gaps, stable order
    assert not _link(rest[-1], "next")
    # The other hospital's chart is untouched by any of it.
    assert not any(m in seen for m in [f"Observation/{chart['b']['observation'].pk}"])


def test_previous_walks_back_to_the_first_page(client, sign_in, chart):
    a = chart["a"]
    _observations(a, 9)
    sign_in(client, a["clinician"])
    url = f"{BASE}Observation?patient={a['patient'].pk}&_sort=-date&_count=4"
    forward = _follow(client.get, url)
    assert [len(_matches(p)) for p in forward] == [4, 4, 2]
    backward = _follow(client.get, _path(_link(forward[-1], "previous")), "previous")
    assert [_matches(p) for p in backward] == [_matches(p) for p in forward[-2::-1]]
    assert not _link(backward[-1], "previous")
    # Each page's own self link gives that page again.
    again = _bundle(client.get(_path(_link(forward[1], "self"))))
    assert _matches(again) == _matches(forward[1])


def test_everything_pages_across_types_and_its_total_is_the_sum(client, sign_in, chart):
    a = chart["a"]
    _observations(a, 4)
    sign_in(client, a["clinician"])
    opened = access.access_patient(a["clinician"], a["patient"].pk)
    unpaged = _matches(selectors.fhir_patient_everything(chart=opened))
    pages = _follow(client.get, f"{BASE}Patient/{a['patient'].pk}/$everything?_count=3")
    seen = [m for page in pages for m in _matches(page)]
    assert seen == unpaged and len(set(seen)) == len(seen)
    assert {p["total"] for p in pages} == {len(unpaged)}
    assert all(len(_matches(p)) <= 3 for p in pages)
    # Other query parameters of $everything are not part of it (the token is).
    assert f"Observation/{chart['b']['observation'].pk}" not in seen


def test_everything_records_a_document_read_only_on_the_page_that_shows_it(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    url = f"{BASE}Patient/{a['patient'].pk}/$everything?_count=2"
    reads = []
    for _ in range(20):
        last = Event.objects.order_by("-id").values_list("id", flat=True).first()
        bundle = _bundle(client.get(url))
        kinds = list(Event.objects.filter(id__gt=last).values_list("kind", flat=True))
        assert kinds[0] == "chart.read"  # every page opens the chart, as the portal does
        shows_document = f"DocumentReference/doc-{a['document'].pk}" in _matches(bundle)
        reads.append(("document.read" in kinds, shows_document))
        if not _link(bundle, "next"):
            break
        url = _path(_link(bundle, "next"))
    assert all(read == shown for read, shown in reads)
    assert sum(read for read, _ in reads) == 1


def test_count_is_bounded_and_checked(client, sign_in, chart, monkeypatch):
    a = chart["a"]
    _observations(a, 4)
    sign_in(client, a["clinician"])
    url = f"{BASE}Observation?patient={a['patient'].pk}"
    assert len(_matches(_bundle(client.get(url)))) == 5  # the default page holds them all
    monkeypatch.setattr(search, "MAX_COUNT", 3)
    capped = _bundle(client.get(f"{url}&_count=500"))
    assert len(_matches(capped)) == 3 and _link(capped, "next")
    only_total = _bundle(client.get(f"{url}&_count=0"))
    assert _matches(only_total) == [] and only_total["total"] == 5
    assert not _link(only_total, "next")
    assert "total" not in _bundle(client.get(f"{url}&_total=none"))
    assert client.get(f"{url}&_total=maybe").status_code == 400
    for bad in ("abc", "-1", "1.5", "1e3"):
        response = client.get(f"{url}&_count={bad}")
        assert response.status_code == 400, bad
        outcome = json.loads(response.content)
        assert outcome["resourceType"] == "OperationOutcome"
        resources.validate_resource(outcome)
    # On every search and on $everything.
    for other in (
        f"{BASE}Patient?family={a['patient'].family_name}&_count=x",
        f"{BASE}Patient/{a['patient'].pk}/$everything?_count=x",
        f"{BASE}Consent?patient={a['patient'].pk}&_count=x",
        f"{BASE}AuditEvent?patient={a['patient'].pk}&_count=x",
    ):
        assert client.get(other).status_code == 400, other


def test_every_search_pages(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    p = a["patient"]
    client.get(f"{BASE}Patient/{p.pk}")  # an access event to list
    client.get(f"{BASE}Patient/{p.pk}")
    links = {}
    for url in (
        f"{BASE}Patient?family={p.family_name}",
        f"{BASE}AuditEvent?patient={p.pk}",
        f"{BASE}Consent?patient={p.pk}",
        f"{BASE}Provenance?target=Observation/{a['observation'].pk}",
        *(f"{BASE}{t}?patient={p.pk}" for t in resources.RESOURCE_MODELS),
    ):
        pages = _follow(client.get, f"{url}&_count=1")
        seen = [m for page in pages for m in _matches(page)]
        unpaged = _matches(_bundle(client.get(url)))
        assert seen == unpaged and len(set(seen)) == len(seen), url
        assert all(_link(page, "self") for page in pages)
        links[url] = [link["url"] for page in pages for link in page["link"]]
    # Cross-tenant: none of these links opens anything to the other hospital's clinician.
    sign_in(client, chart["b"]["clinician"])
    for url, urls in links.items():
        for link in urls:
            assert client.get(_path(link)).status_code == 404, url


def test_search_by_post_pages_by_get_and_no_link_carries_what_was_searched(
    client, sign_in, chart, make_staff, hospital_a
):
    a = chart["a"]
    p = a["patient"]
    with unscoped():
        for i in range(3):
            services.patient_register(
                hospital=hospital_a, mrn=f"A-2{i}", given_name="Ada", family_name=p.family_name,
                birth_date=dt.date(1970, 12, 10), sex="female", actor=a["clinician"],
            )  # fmt: skip
    sign_in(client, a["clinician"])
    body = {"family": p.family_name, "birthdate": "1970-12-10", "_count": "2"}
    first = _bundle(client.post(f"{BASE}Patient/_search", urlencode(body), content_type=FORM))
    assert first["total"] == 4 and len(_matches(first)) == 2
    pages = [first, *_follow(client.get, _path(_link(first, "next")))[:]]
    seen = [m for page in pages for m in _matches(page)]
    assert len(seen) == 4 == len(set(seen))
    by_get = _bundle(client.get(f"{BASE}Patient?family={p.family_name}&_count=2"))
    for page in (*pages, by_get):
        for link in page["link"]:
            url = link["url"]
            assert set(parse_qs(urlsplit(url).query)) == {"_page"}
            for phi in (p.family_name, p.mrn, "1970-12-10", "Ada", "1970"):
                assert phi not in url
    # A code searched is health information too: not in the links either.
    obs = _bundle(client.get(f"{BASE}Observation?patient={p.pk}&code=8867-4&_count=1"))
    assert all("8867" not in link["url"] for link in obs["link"])


def test_a_page_token_of_another_user_is_refused(client, sign_in, chart, make_staff, hospital_a):
    a = chart["a"]
    _observations(a, 3)
    colleague = make_staff(hospital_a, Role.CLINICIAN)  # may read the same chart
    sign_in(client, a["clinician"])
    first = _bundle(client.get(f"{BASE}Observation?patient={a['patient'].pk}&_count=2"))
    next_url = _path(_link(first, "next"))
    assert client.get(next_url).status_code == 200
    sign_in(client, colleague)
    assert client.get(f"{BASE}Observation?patient={a['patient'].pk}").status_code == 200
    refused = client.get(next_url)
    assert refused.status_code == 404
    resources.validate_resource(json.loads(refused.content))
    # Cross-tenant: the other hospital's clinician, with the same token.
    sign_in(client, chart["b"]["clinician"])
    assert client.get(next_url).status_code == 404


def test_a_page_token_with_another_hospital_is_refused(client, chart, hospital_a, hospital_b):
    a = chart["a"]
    _observations(a, 3)
    user = a["clinician"]
    factories.MembershipFactory(user=user, hospital=hospital_b, role=Role.CLINICIAN)
    token = _staff_token(user)
    at_a, at_b = _bearer(client, token, hospital_a), _bearer(client, token, hospital_b)
    first = _bundle(at_a(f"{BASE}Observation?patient={a['patient'].pk}&_count=2"))
    next_url = _path(_link(first, "next"))
    assert at_a(next_url).status_code == 200
    assert at_b(next_url).status_code == 404
    # And a token issued at the other hospital is refused at the first.
    b_search = _bundle(at_b(f"{BASE}Patient?family={chart['b']['patient'].family_name}"))
    assert _matches(b_search) == [f"Patient/{chart['b']['patient'].pk}"]
    assert at_b(_path(_link(b_search, "self"))).status_code == 200
    assert at_a(_path(_link(b_search, "self"))).status_code == 404


def test_a_tampered_expired_or_misplaced_token_is_refused(client, sign_in, chart, monkeypatch):
    a = chart["a"]
    _observations(a, 3)
    sign_in(client, a["clinician"])
    first = _bundle(client.get(f"{BASE}Observation?patient={a['patient'].pk}&_count=2"))
    token = parse_qs(urlsplit(_link(first, "next")).query)["_page"][0]
    url = f"{BASE}Observation?_page="
    assert client.get(url + token).status_code == 200
    for i in (0, len(token) // 3, len(token) // 2, len(token) - 1):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        assert client.get(url + flipped).status_code == 404, i
    for junk in ("x", "a:b:c", "", "%00"):
        response = client.get(url + junk)
        assert response.status_code in (400, 404), junk  # "" is no token: a 400 (no patient)
    # The same token on another type's or chart's URL.
    assert client.get(f"{BASE}Condition?_page={token}").status_code == 404
    assert client.get(f"{BASE}Patient/{a['patient'].pk}/$everything?_page={token}").status_code == (
        404
    )
    # Expired (older than TOKEN_MAX_AGE).
    monkeypatch.setattr(paging, "TOKEN_MAX_AGE", -1)
    assert client.get(url + token).status_code == 404


def test_a_page_of_a_chart_no_longer_open_to_the_caller_is_404(client, sign_in, chart):
    """The token carries no grant: every page opens the chart again (records.access)."""
    a = chart["a"]
    _observations(a, 3)
    sign_in(client, a["clinician"])
    first = _bundle(client.get(f"{BASE}Observation?patient={a['patient'].pk}&_count=2"))
    with unscoped():
        services.patient_set_restricted(patient=a["patient"], restricted=True, actor=a["clinician"])
    assert client.get(_path(_link(first, "next"))).status_code == 404


@pytest.mark.parametrize("route", ["Observation", "$everything"])
def test_queries_per_page_do_not_grow_with_the_page_size(client, sign_in, chart, route):
    a = chart["a"]
    _observations(a, 40)
    sign_in(client, a["clinician"])
    p = a["patient"].pk
    url = (
        f"{BASE}Observation?patient={p}&code=8867-4&_include=Observation:patient"
        if route == "Observation"
        else f"{BASE}Patient/{p}/$everything?"
    )
    client.get(f"{url}&_count=1")  # warm the key caches
    counts = []
    for size in (2, 40):
        with CaptureQueriesContext(connection) as queries:
            bundle = _bundle(client.get(f"{url}&_count={size}"))
        assert len(_matches(bundle)) == size
        counts.append(len(queries))
    assert counts[1] <= counts[0], counts


def test_query_count_of_a_page_is_bounded(client, sign_in, chart, django_assert_max_num_queries):
    a = chart["a"]
    _observations(a, 30)
    sign_in(client, a["clinician"])
    url = f"{BASE}Observation?patient={a['patient'].pk}&_count=25"
    client.get(url)
    with django_assert_max_num_queries(20):
        bundle = _bundle(client.get(url))
    with django_assert_max_num_queries(20):
        _bundle(client.get(_path(_link(bundle, "next"))))


def test_the_capability_statement_names_the_paging_and_search_parameters(client):
    body = json.loads(client.get(f"{BASE}metadata").content)
    resources.validate_resource(body)
    by_type = {r["type"]: r for r in body["rest"][0]["resource"]}
    for rtype in (*resources.RESOURCE_MODELS, "Patient", "AuditEvent", "Consent", "Provenance"):
        names = {p["name"] for p in by_type[rtype]["searchParam"]}
        assert {"_count", "_lastUpdated"} <= names, rtype
    observation = by_type["Observation"]
    names = {p["name"] for p in observation["searchParam"]}
    assert {"code", "category", "date", "patient"} <= names
    assert "Observation:patient" in observation["searchInclude"]
