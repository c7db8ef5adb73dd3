"""A proxy whose grant shares only some categories is told what is not shared (issue 16,
item 1): the records page names the withheld categories, and a withheld category says
"Not shared with you", never "Nothing in this category"."""

import pytest

from consent import services as consent_services
from portal.tenancy.scoping import unscoped
from tests.partial_chart import partial_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def proxied(consent_world, make_staff):
    w = partial_world(consent_world, make_staff)
    with unscoped():
        invitation = consent_services.proxy_invite(
            grantor=w["account"], proxy_username=w["other_account"].username,
            relationship="family", scope_all=False, categories=["vitals"],
        )  # fmt: skip
        grant = consent_services.proxy_accept(invitation=invitation, actor=w["other_account"])
    return w, grant


def test_a_proxy_is_told_what_is_not_shared(client, sign_in, proxied):
    w, grant = proxied
    sign_in(client, w["other_account"])
    url = f"/patient/proxies/{grant.row_uuid}/records/"
    page = client.get(f"{url}?category=vitals").content.decode()
    assert "Heart rate" in page
    assert "Not shared with you: Laboratory results, Other observations" in page
    allergies = client.get(f"{url}?category=allergies").content.decode()
    assert "Not shared with you." in allergies
    assert "Nothing in this category" not in allergies and "penicillin" not in allergies


def test_the_owner_sees_everything_and_no_such_words(client, sign_in, proxied):
    w, _ = proxied
    sign_in(client, w["account"])
    page = client.get("/patient/records/?category=allergies").content.decode()
    assert "Allergy to penicillin" in page and "Not shared with you" not in page
