"""A partial chart never looks complete (issue 16, item 1): a category the reader is not
shown says "Not shared with you" on the chart page, never "None recorded" or "No known
allergies recorded.", and the page's header says the view is partial."""

import html
import re

import pytest

from tests.partial_chart import NOT_SHARED, partial_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def w(consent_world, make_staff):
    return partial_world(consent_world, make_staff)


def _page(client, sign_in, user, patient) -> str:
    sign_in(client, user)
    response = client.get(f"/provider/patients/{patient.pk}/")
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def _section(page: str, heading_id: str) -> str:
    """The text of the <section> labelled by `heading_id`."""
    match = re.search(rf'<section[^>]*aria-labelledby="{heading_id}".*?</section>', page, re.S)
    assert match, heading_id
    return re.sub(r"<[^>]+>", " ", match.group(0))


def _banner(page: str) -> str:
    match = re.search(r'<div[^>]*id="partial-chart".*?</div>', page, re.S)
    return re.sub(r"<[^>]+>", " ", match.group(0)) if match else ""


def test_withheld_allergies_say_not_shared_never_no_known_allergies(client, sign_in, w):
    # patient1's case: a high-criticality penicillin allergy exists, the consent does not
    # share allergies: the page must not read as "no allergies".
    page = _page(client, sign_in, w["clinician_b"], w["patient"])
    allergies = _section(page, "all-h")
    assert "Not shared with you" in allergies
    assert "No known allergies" not in page
    assert "penicillin" not in page.lower()
    for heading in ("prob-h", "med-h"):
        section = _section(page, heading)
        assert "Not shared with you" in section and "None recorded" not in section
    assert "Metformin" not in page and "Diabetes" not in page


def test_the_header_says_the_view_is_partial_and_lists_what_is_not_shared(client, sign_in, w):
    page = _page(client, sign_in, w["clinician_b"], w["patient"])
    banner = " ".join(_banner(page).split())
    assert banner.startswith("Partial chart")
    assert "Not shared with you: " + ", ".join(NOT_SHARED) in banner
    # It comes first in the page's content, before the name and the sections.
    assert page.index('id="partial-chart"') < page.index("<h1")
    # The shared parts still show.
    assert "Heart rate" in page and "Hemoglobin A1c" in page
    timeline = " ".join(_section(page, "tl-h").split())
    assert "Not shared with you: Problems, Medications, Allergies" in timeline


def test_trends_say_which_measurements_are_not_shown(client, sign_in, w):
    page = _page(client, sign_in, w["labs_only"], w["patient"])
    trends = " ".join(_section(page, "trend-h").split())
    assert "Not shared with you: Vital signs" in trends
    assert "HbA1c" in trends and "Heart rate" not in trends
    assert "Vital signs" in _banner(page)
    assert "Laboratory results" not in _banner(page)


def test_a_complete_view_has_no_banner_and_shows_the_allergy(client, sign_in, w):
    for user in (w["clinician_a"], w["whole"]):
        page = _page(client, sign_in, user, w["patient"])
        assert 'id="partial-chart"' not in page
        assert "Not shared with you" not in page
        allergies = _section(page, "all-h")
        assert "Allergy to penicillin" in allergies and "high" in allergies


def test_an_unshared_restricted_note_is_not_revealed(client, sign_in, w):
    # `whole` sees every category but not the restricted note: the page is complete as far
    # as it can tell (no banner, no word of the note).
    page = _page(client, sign_in, w["whole"], w["patient"])
    assert "Therapy" not in page and "Psychotherapy" not in page
    assert "restricted" not in _section(page, "tl-h").lower()


def test_home_hospital_empty_categories_still_say_none_recorded(client, sign_in, w):
    page = _page(client, sign_in, w["clinician_a"], w["other"])
    assert "No known allergies recorded." in _section(page, "all-h")
    assert "None recorded." in _section(page, "med-h")


def test_other_hospital_without_consent_gets_404(client, sign_in, w):
    sign_in(client, w["stranger"])
    assert client.get(f"/provider/patients/{w['patient'].pk}/").status_code == 404
