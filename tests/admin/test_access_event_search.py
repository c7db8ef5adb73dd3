"""Auditors find things (issue 16): access events searched by staff name, username or MRN,
a bad date range said in words, events in words with links to their patient and reader, and
times to the second; as the auditor and as a hospital admin (their hospital's events only)."""

from __future__ import annotations

import re

from ledger.models import AccessEvent
from tests.admin.conftest import _read

URL = "/admin/ledger/accessevent/"


def _ids(response) -> set[int]:
    assert response.status_code == 200
    return {e.pk for e in response.context["cl"].result_list}


def _events(**filters) -> set[int]:
    return set(AccessEvent.objects.filter(**filters).values_list("pk", flat=True))


def test_auditor_searches_by_staff_name_username_and_mrn(client, sign_in, world, auditor):
    clin_a, clin_b = world["clinician_a"], world["clinician_b"]
    sign_in(client, auditor)
    by_a = _events(actor=clin_a)
    assert by_a
    for term in ("clin-a", "CLIN-A", "Doc TorA", "tora", "tora doc"):
        assert _ids(client.get(URL, {"q": term})) == by_a, term
    assert _ids(client.get(URL, {"q": "Doc"})) == by_a | _events(actor=clin_b)
    about_b = _events(patient_id=world["patient_b"].pk)
    assert about_b
    for term in ("BBB-22222", "bbb-22222", "BBB-2", "bbb22"):
        assert _ids(client.get(URL, {"q": term})) == about_b, term
    assert _ids(client.get(URL, {"q": "BB"})) == set()  # too short for a prefix
    assert _ids(client.get(URL, {"q": "Wilhelmina"})) == set()  # patients' names: never
    assert b"a patient's MRN" in client.get(URL).content  # the box says what it finds


def test_hospital_admin_searches_only_their_hospitals_events(client, sign_in, world):
    """St Mary's admin: Riverside's MRN and Riverside's staff find nothing of Riverside's
    (cross-tenant), their own are found."""
    sign_in(client, world["admin_a"])
    assert _ids(client.get(URL, {"q": "BBB-22222"})) == set()
    assert _ids(client.get(URL, {"q": "clin-b"})) == set()
    assert _ids(client.get(URL, {"q": "AAA-1"})) == _events(patient_id=world["patient_a"].pk)
    assert _ids(client.get(URL, {"q": "Doc TorA"})) == _events(actor=world["clinician_a"])
    # A Riverside clinician reading a St Mary's chart (a consent): the admin finds the read by
    # the reader's name, and sees the reader's name but no link to a user they do not manage.
    read = _read(patient=world["patient_a"], actor=world["clinician_b"], from_hospital=world["b"])
    response = client.get(URL, {"q": "TorB"})
    assert _ids(response) == {read.pk}
    page = response.content.decode()
    assert "Doc TorB" in page and f"/admin/auth/user/{world['clinician_b'].pk}/" not in page
    assert f"/admin/records/patient/{world['patient_a'].pk}/change/" in page
    assert "read from Riverside General" in page


def test_a_bad_date_range_is_said_and_lists_nothing(client, sign_in, world, auditor):
    for user in (auditor, world["admin_a"]):
        sign_in(client, user)
        for params, words in (
            ({"from": "2026-13-45"}, "Not a date"),
            ({"to": "06/12/2026"}, "Not a date"),
            ({"from": "2026-02-01", "to": "2026-01-01"}, "ends before it starts"),
        ):
            response = client.get(URL, {**params, "kind": "chart.read"})
            assert _ids(response) == set(), params
            said = " ".join(str(m) for m in response.context["messages"])
            assert words in said, said
            page = response.content.decode()
            # The typed value stays in its box, marked; the other filter is kept.
            if words == "Not a date":
                typed = next(iter(params.values()))
                assert f'value="{typed}"' in page and 'aria-invalid="true"' in page
            assert "kind=chart.read" in page
            export = client.get(URL + "export.csv", params)
            assert export.status_code == 400 and words.encode() in export.content


def test_events_are_in_words_with_links_and_seconds(client, sign_in, world, auditor):
    sign_in(client, auditor)
    page = client.get(URL).content.decode()
    assert "Opened a chart" in page and "Used emergency access" in page
    assert "Emergency treatment" in page and "Treatment" in page
    assert "through emergency access" in page and "Break-glass" in page
    assert "Clinician" in page
    assert not re.search(r">\s*(TREAT|ETREAT|chart\.read|breakglass)\s*<", page)
    assert f"/admin/records/patient/{world['patient_a'].pk}/change/" in page
    assert f"/admin/auth/user/{world['clinician_a'].pk}/change/" in page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", page)  # seconds
    # The kind and purpose filters speak words too.
    assert "Downloaded a document" in page and "Care coordination" in page
    # The page of one event: the words with their codes, to the second.
    one = AccessEvent.objects.filter(kind="chart.read", actor=world["clinician_a"]).first()
    detail = client.get(f"{URL}{one.pk}/change/").content.decode()
    assert "Opened a chart (chart.read)" in detail and "Treatment (TREAT)" in detail
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", detail)
    # The CSV keeps the codes (machine-readable).
    body = b"".join(client.get(URL + "export.csv").streaming_content).decode()
    assert ",chart.read," in body and ",TREAT," in body


def test_the_list_stays_constant_in_queries_with_links(client, sign_in, world, auditor):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests import factories

    sign_in(client, auditor)

    def count(**params) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(URL, params).status_code == 200
        return len(ctx.captured_queries)

    count(q="Doc")
    few = count(q="Doc"), count(q="AAA-11111")
    for _ in range(4):
        user = factories.UserFactory(first_name="Doc", last_name="Other")
        for _ in range(3):
            _read(patient=world["patient_a"], actor=user)
    assert (count(q="Doc"), count(q="AAA-11111")) == few
