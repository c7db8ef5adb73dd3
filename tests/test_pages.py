import re

from django.test import Client

from tests import factories


def test_static_files_are_vendored_and_served(db):
    response = Client().get("/static/portal/site.css")
    assert response.status_code == 200
    assert b".skip-link" in b"".join(response.streaming_content)


def test_pages_load_nothing_from_other_hosts(client, sign_in, clinician_a, hospital_a):
    factories.PatientFactory(hospital=hospital_a)
    sign_in(client, clinician_a)
    for url in ["/accounts/login/", "/provider/"]:
        html = client.get(url).content.decode()
        external = re.findall(r'(?:src|href)="(?:https?:)?//[^"]+"', html)
        assert external == [], url


def test_layout_is_accessible_and_shows_hospital_and_role(client, sign_in, clinician_a):
    sign_in(client, clinician_a)
    html = client.get("/provider/").content.decode()
    assert '<html lang="en">' in html
    assert 'name="viewport"' in html
    assert 'href="#main"' in html and 'id="main"' in html
    assert 'aria-label="Active hospital">St Mary&#x27;s Hospital<' in html
    assert 'aria-label="Your role">Clinician<' in html


def test_login_form_fields_have_labels(client, db):
    html = client.get("/accounts/login/").content.decode()
    for field in ("id_username", "id_password"):
        assert f'for="{field}"' in html and f'id="{field}"' in html


def test_unknown_url_is_a_plain_404(client, db):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"This is not available to you" in response.content


def test_healthz(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.content == b"ok\n"


def test_pages_are_rendered_by_one_engine_that_compiles_each_template_once():
    from django.template import engines
    from django.template.loaders.cached import Loader as CachedLoader

    assert [engine.name for engine in engines.all()] == ["django"]
    (loader,) = engines["django"].engine.template_loaders
    assert isinstance(loader, CachedLoader)
