"""Search parameters: Observation `code`, `category`, `date` (every prefix, every precision),
`_lastUpdated` on every type, `_include`, `_sort`, unknown parameters (lenient and strict),
search by POST, and the other hospital's charts (404)."""

import datetime as dt
import json
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from portal.fhir import resources
from portal.records import services
from portal.records.models import Condition, Observation
from portal.tenancy.scoping import unscoped
from tests.fhir.test_paging import BASE, FORM, _bundle, _matches

UTC = dt.UTC
T1 = dt.datetime(2020, 3, 15, 10, 30, tzinfo=UTC)
T2 = dt.datetime(2021, 6, 1, 12, 0, tzinfo=UTC)
T3 = dt.datetime(2022, 12, 31, 23, 59, 30, tzinfo=UTC)


@pytest.fixture
def obs(chart):
    """Chart a: three observations at T1 (heart rate), T2 (glucose, a lab), T3 (weight);
    chart b: the same heart rate at T1."""
    out = {}
    with unscoped():
        for key in ("a", "b"):
            c = chart[key]
            make = dict(actor=c["clinician"], patient=c["patient"])
            out[key] = {
                "t1": services.observation_create(
                    **make, code="8867-4", display="Heart rate", value=Decimal(70),
                    unit="/min", effective_at=T1,
                ),
                "t2": services.observation_create(
                    **make, code="2339-0", display="Glucose", value=Decimal(5),
                    unit="mmol/L", effective_at=T2, category=Observation.Category.LABORATORY,
                ),
                "t3": services.observation_create(
                    **make, code="29463-7", display="Body weight", value=Decimal(70),
                    unit="kg", effective_at=T3,
                ),
            }  # fmt: skip
    return out


def _ids(bundle):
    return {m.split("/", 1)[1] for m in _matches(bundle) if m.startswith("Observation/")}


def _search(client, c, obs_of, query):
    url = f"{BASE}Observation?patient={c['patient'].pk}&{query}"
    found = _ids(_bundle(client.get(url)))
    names = {str(o.pk): name for name, o in obs_of.items()}
    names[str(c["observation"].pk)] = "fixture"  # the conftest's heart rate, 3 days ago
    return {names[i] for i in found}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("code=8867-4", {"t1", "fixture"}),
        ("code=http://loinc.org|8867-4", {"t1", "fixture"}),
        ("code=http://snomed.info/sct|8867-4", set()),
        ("code=|8867-4", set()),  # a code without a system: ours all have one
        ("code=8867-4,2339-0", {"t1", "t2", "fixture"}),
        ("code=nope", set()),
        ("category=laboratory", {"t2"}),
        ("category=vital-signs", {"t1", "t3", "fixture"}),
        (f"category={resources.OBS_CATEGORY}|laboratory", {"t2"}),
        ("category=|laboratory", set()),
        ("category=laboratory,vital-signs", {"t1", "t2", "t3", "fixture"}),
        ("category=survey", set()),
        ("code=8867-4&category=laboratory", set()),
    ],
)
def test_observation_code_and_category(client, sign_in, chart, obs, query, expected):
    sign_in(client, chart["a"]["clinician"])
    assert _search(client, chart["a"], obs["a"], query) == expected


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        # A year.
        ("2020", {"t1"}),
        ("eq2021", {"t2"}),
        ("ne2021", {"t1", "t3", "fixture"}),
        ("gt2020", {"t2", "t3", "fixture"}),
        ("sa2021", {"t3", "fixture"}),
        ("lt2021", {"t1"}),
        ("eb2022", {"t1", "t2"}),
        ("ge2021", {"t2", "t3", "fixture"}),
        ("le2021", {"t1", "t2"}),
        # A month.
        ("2021-06", {"t2"}),
        ("lt2021-06", {"t1"}),
        ("gt2021-06", {"t3", "fixture"}),
        ("ge2021-06", {"t2", "t3", "fixture"}),
        ("le2020-03", {"t1"}),
        ("2022-12", {"t3"}),  # December: the month ends with the year
        # A day.
        ("2020-03-15", {"t1"}),
        ("ne2020-03-15", {"t2", "t3", "fixture"}),
        ("gt2020-03-15", {"t2", "t3", "fixture"}),
        ("lt2021-06-01", {"t1"}),
        ("le2021-06-01", {"t1", "t2"}),
        # A dateTime, with its zone.
        ("2020-03-15T10:30:00Z", {"t1"}),
        ("2020-03-15T11:30:00+01:00", {"t1"}),
        ("gt2020-03-15T10:30:00Z", {"t2", "t3", "fixture"}),
        ("ge2020-03-15T10:30:00Z", {"t1", "t2", "t3", "fixture"}),
        ("lt2022-12-31T23:59:30Z", {"t1", "t2"}),
        ("le2022-12-31T23:59:30Z", {"t1", "t2", "t3"}),
        ("2021-06-01T12:00", {"t2"}),  # to the minute
        # Approximately: within a tenth of the distance from now (and a day).
        ("ap2020-03-15", {"t1"}),
        ("ap2021-06-02", {"t2"}),
    ],
)
def test_observation_date_prefixes_at_each_precision(client, sign_in, chart, obs, date, expected):
    sign_in(client, chart["a"]["clinician"])
    assert _search(client, chart["a"], obs["a"], urlencode({"date": date})) == expected


def test_repeated_dates_are_all_required(client, sign_in, chart, obs):
    sign_in(client, chart["a"]["clinician"])
    query = urlencode([("date", "ge2020-06"), ("date", "lt2022")])
    assert _search(client, chart["a"], obs["a"], query) == {"t2"}


@pytest.mark.parametrize("bad", ["2020-13", "yesterday", "gt", "xx2020", "2020-02-30", "20200101"])
def test_a_bad_date_is_a_400(client, sign_in, chart, bad):
    sign_in(client, chart["a"]["clinician"])
    url = f"{BASE}Observation?patient={chart['a']['patient'].pk}&{urlencode({'date': bad})}"
    response = client.get(url)
    assert response.status_code == 400
    resources.validate_resource(json.loads(response.content))
    response = client.get(url.replace("date=", "_lastUpdated="))
    assert response.status_code == 400


def test_last_updated_on_every_type(client, sign_in, chart, obs):
    a = chart["a"]
    sign_in(client, a["clinician"])
    p = a["patient"]
    with unscoped():
        Condition._base_manager.filter(pk=a["condition"].pk).update(
            created_at=dt.datetime(2019, 5, 5, tzinfo=UTC)
        )
    old = _bundle(client.get(f"{BASE}Condition?patient={p.pk}&_lastUpdated=lt2020"))
    assert _matches(old) == [f"Condition/{a['condition'].pk}"]
    new = _bundle(client.get(f"{BASE}Condition?patient={p.pk}&_lastUpdated=ge2020"))
    assert _matches(new) == []
    today = timezone.now().date().isoformat()
    tomorrow = (timezone.now() + dt.timedelta(days=1)).date().isoformat()
    client.get(f"{BASE}Patient/{p.pk}")  # an access event, today
    for url in (
        f"{BASE}Patient?family={p.family_name}",
        f"{BASE}AuditEvent?patient={p.pk}",
        f"{BASE}Consent?patient={p.pk}",
        f"{BASE}Provenance?target=Observation/{a['observation'].pk}",
        # The chart fixture holds the types the provider portal records (imported types:
        # tests/fhir/test_reports_served.py).
        *(
            f"{BASE}{t}?patient={p.pk}"
            for t in resources.RESOURCE_MODELS
            if t not in ("Condition", "DiagnosticReport", "ImagingStudy", "CarePlan", "Goal")
        ),
    ):
        if "Consent" in url:
            continue  # the chart has no consent: checked below
        assert _matches(_bundle(client.get(f"{url}&_lastUpdated=ge{today}"))), url
        assert _matches(_bundle(client.get(f"{url}&_lastUpdated=ge{tomorrow}"))) == [], url
    assert _bundle(client.get(f"{BASE}Consent?patient={p.pk}&_lastUpdated=ge{today}"))


def test_include_observation_patient(client, sign_in, chart, obs):
    a = chart["a"]
    sign_in(client, a["clinician"])
    url = f"{BASE}Observation?patient={a['patient'].pk}&_include=Observation:patient&_count=2"
    bundle = _bundle(client.get(url))
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [e["resource"]["id"] for e in included] == [str(a["patient"].pk)]
    assert included[0]["resource"]["resourceType"] == "Patient"
    assert bundle["total"] == 4 and len(_matches(bundle)) == 2
    # On the next page too (the token keeps the search), and not without asking.
    nxt = bundle["link"][[link["relation"] for link in bundle["link"]].index("next")]["url"]
    follow = _bundle(client.get(nxt.split("testserver", 1)[-1]))
    assert [e["search"]["mode"] for e in follow["entry"]].count("include") == 1
    plain = _bundle(client.get(f"{BASE}Observation?patient={a['patient'].pk}"))
    assert "include" not in {e["search"]["mode"] for e in plain["entry"]}


def test_sort_by_date_either_way(client, sign_in, chart, obs):
    a = chart["a"]
    sign_in(client, a["clinician"])
    url = f"{BASE}Observation?patient={a['patient'].pk}&code=8867-4,2339-0,29463-7"
    ascending = _matches(_bundle(client.get(f"{url}&_sort=date")))
    o = obs["a"]
    assert ascending == [f"Observation/{x.pk}" for x in (o["t1"], o["t2"], o["t3"])] + [
        f"Observation/{a['observation'].pk}"
    ]
    assert _matches(_bundle(client.get(f"{url}&_sort=-date"))) == ascending[::-1]
    assert client.get(f"{url}&_sort=value").status_code == 400


def test_unknown_parameters_are_ignored_and_said_or_refused_when_strict(client, sign_in, chart):
    a = chart["a"]
    sign_in(client, a["clinician"])
    url = f"{BASE}Observation?patient={a['patient'].pk}&value-quantity=gt5&_elements=id"
    bundle = _bundle(client.get(url))
    outcome = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    texts = [i.get("details", {}).get("text", "") for o in outcome for i in o["issue"]]
    assert any("_elements" in t and "value-quantity" in t for t in texts), texts
    assert _matches(bundle) == [f"Observation/{a['observation'].pk}"]
    strict = client.get(url, headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    resources.validate_resource(json.loads(strict.content))
    lenient = client.get(url, headers={"Prefer": "handling=lenient"})
    assert lenient.status_code == 200


def test_search_by_post_takes_the_same_parameters(client, sign_in, chart, obs):
    a = chart["a"]
    sign_in(client, a["clinician"])
    body = urlencode({"patient": a["patient"].pk, "code": "2339-0", "date": "ge2021"})
    bundle = _bundle(client.post(f"{BASE}Observation/_search", body, content_type=FORM))
    assert _matches(bundle) == [f"Observation/{obs['a']['t2'].pk}"]


def test_the_other_hospitals_chart_is_404_whatever_the_parameters(client, sign_in, chart, obs):
    sign_in(client, chart["a"]["clinician"])
    b = chart["b"]["patient"].pk
    for query in ("code=8867-4", "category=laboratory", "date=2020", "_lastUpdated=ge2000",
                  "_include=Observation:patient", "_count=1"):  # fmt: skip
        response = client.get(f"{BASE}Observation?patient={b}&{query}")
        assert response.status_code == 404, query
        body = urlencode({"patient": b, **dict([query.split("=", 1)])})
        assert client.post(f"{BASE}Observation/_search", body, content_type=FORM).status_code == 404
    # And the other hospital's clinician finds their own heart rate, not ours.
    sign_in(client, chart["b"]["clinician"])
    found = _search(client, chart["b"], obs["b"], "code=8867-4")
    assert found == {"t1", "fixture"}
