"""Issue 13, item 14: no health data in server logs.

The attack: FHIR searches by name or birth date (GET Patient?name=...&birthdate=...) put
PHI into the access log, whose lines held the whole request line. Now every FHIR search also
answers FHIR's search by POST (`POST [type]/_search`, the parameters in a form-encoded body),
with the same results and the same access events as GET; the CapabilityStatement says so;
and the project's gunicorn configuration logs paths without query strings (nor Referers),
in its access log and in its own error lines.
"""

import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from ledger.models import Event
from portal.records import services
from portal.records.models import Condition, Document
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped

ROOT = Path(__file__).resolve().parent.parent.parent
BASE = "/fhir/R4/"
FORM = "application/x-www-form-urlencoded"
RECORD_TYPES = ["Encounter", "Observation", "Condition", "MedicationRequest",
                "AllergyIntolerance", "Immunization", "Procedure", "DocumentReference"]  # fmt: skip


@pytest.fixture
def charts(make_staff, hospital_a, hospital_b):
    out = {}
    for key, hospital in (("a", hospital_a), ("b", hospital_b)):
        clinician = make_staff(hospital, Role.CLINICIAN)
        with unscoped():
            patient = services.patient_register(
                hospital=hospital, mrn=f"{key.upper()}-100", given_name="Ada",
                family_name=f"Lovelace{key.upper()}", birth_date=dt.date(1970, 12, 10),
                actor=clinician,
            )  # fmt: skip
            observation = services.observation_create(
                actor=clinician, patient=patient, code="8867-4", display="Heart rate",
                value=Decimal("72.5"), unit="/min",
                effective_at=timezone.now() - dt.timedelta(days=1),
            )  # fmt: skip
            services.record_create(
                actor=clinician, patient=patient, model=Condition, code="38341003",
                display="Hypertension", onset_date=dt.date(2019, 1, 2),
            )  # fmt: skip
            services.record_create(
                actor=clinician, patient=patient, model=Document, title="Letter",
                content_type="text/plain", size=5, sha256="0" * 64, content=b"hello",
            )  # fmt: skip
        out[key] = {"clinician": clinician, "patient": patient, "observation": observation}
    return out


def _post_form(client, url, params):
    """FHIR's search by POST: the parameters form-encoded in the body."""
    return client.post(url, urlencode(params), content_type=FORM)


def _json(response, status=200):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/fhir+json")
    return json.loads(response.content)


def _events_after(last_id):
    return [(e.kind, e.patient_id, e.attrs.get("purpose"))
            for e in Event.objects.filter(id__gt=last_id).order_by("id")]  # fmt: skip


def _last_event_id():
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_patient_search_by_post_finds_what_get_finds(client, sign_in, charts):
    a = charts["a"]
    sign_in(client, a["clinician"])
    for params in [
        {"name": "ada lovelacea"},
        {"family": "LovelaceA", "birthdate": "1970-12-10"},
        {"given": "Ada", "birthdate": "eq1970-12-10"},
        {"identifier": a["patient"].mrn},
        {"family": "Nobody"},
        {"identifier": charts["b"]["patient"].mrn},  # another hospital's: nothing
    ]:
        by_get = _json(client.get(f"{BASE}Patient", params))
        by_post = _json(_post_form(client, f"{BASE}Patient/_search", params))
        assert _unlinked(by_post) == _unlinked(by_get), params
    search = f"{BASE}Patient/_search"
    found = _json(_post_form(client, search, {"name": "ada lovelacea"}))
    assert [e["resource"]["id"] for e in found["entry"]] == [str(a["patient"].pk)]
    assert found["total"] == 1
    # The query string counts too, as FHIR says; a bad value is the same 400 as by GET.
    both = _post_form(client, f"{search}?family=LovelaceA", {"birthdate": "1970-12-10"})
    assert _json(both)["total"] == 1
    _json(_post_form(client, search, {"birthdate": "soon"}), 400)
    _json(_post_form(client, search, {}), 400)


def _unlinked(bundle: dict) -> dict:
    """A search answer without its links: each page token is encrypted afresh (a new nonce),
    so the same search's links differ byte for byte."""
    return {k: v for k, v in bundle.items() if k != "link"}


def test_every_type_searches_by_post_with_the_same_access_events(client, sign_in, charts):
    a = charts["a"]
    sign_in(client, a["clinician"])
    pid = a["patient"].pk
    for rtype in RECORD_TYPES:
        for params in ({"patient": str(pid)}, {"subject": f"Patient/{pid}"}):
            last = _last_event_id()
            by_get = _json(client.get(f"{BASE}{rtype}", params))
            get_events = _events_after(last)
            last = _last_event_id()
            by_post = _json(_post_form(client, f"{BASE}{rtype}/_search", params))
            assert _unlinked(by_post) == _unlinked(by_get), (rtype, params)
            assert _events_after(last) == get_events == [("chart.read", pid, "TREAT")], rtype
    params = {"patient": str(pid), "code": "http://loinc.org|8867-4"}
    by_post = _json(_post_form(client, f"{BASE}Observation/_search", params))
    by_get = _json(client.get(f"{BASE}Observation", params))
    assert _unlinked(by_post) == _unlinked(by_get) and by_post["total"] == 1
    # Consent, AuditEvent, Provenance.
    consents = _json(_post_form(client, f"{BASE}Consent/_search", {"patient": pid}))
    assert _unlinked(consents) == _unlinked(_json(client.get(f"{BASE}Consent", {"patient": pid})))
    audit = _json(_post_form(client, f"{BASE}AuditEvent/_search", {"patient": pid}))
    # No total for AuditEvent (the ledger decides row by row): the same entries, at least one.
    audit_by_get = _json(client.get(f"{BASE}AuditEvent", {"patient": pid}))
    assert audit["entry"] and [e["resource"]["id"] for e in audit["entry"]] == [
        e["resource"]["id"] for e in audit_by_get["entry"]
    ]
    target = {"target": f"Observation/{a['observation'].pk}"}
    provenance = _json(_post_form(client, f"{BASE}Provenance/_search", target))
    assert _unlinked(provenance) == _unlinked(_json(client.get(f"{BASE}Provenance", target)))


def test_search_by_post_keeps_every_other_rule(client, sign_in, charts):
    a, b = charts["a"], charts["b"]
    # Signed out: 401. Another hospital's chart: 404 and no access event.
    response = _post_form(client, f"{BASE}Observation/_search", {"patient": a["patient"].pk})
    assert response.status_code == 401
    sign_in(client, a["clinician"])
    last = _last_event_id()
    for rtype in (*RECORD_TYPES, "AuditEvent", "Consent"):
        response = _post_form(client, f"{BASE}{rtype}/_search", {"patient": b["patient"].pk})
        assert response.status_code == 404, rtype
    target = {"target": f"Observation/{b['observation'].pk}"}
    assert _post_form(client, f"{BASE}Provenance/_search", target).status_code == 404
    assert _events_after(last) == []
    # Only POST, only a form; unknown types are 404.
    assert client.get(f"{BASE}Patient/_search", {"name": "ada"}).status_code == 405
    assert client.get(f"{BASE}Observation/_search").status_code == 405
    response = client.post(
        f"{BASE}Patient/_search", json.dumps({"name": "ada"}), content_type="application/json"
    )
    assert _json(response, 415)["resourceType"] == "OperationOutcome"
    assert _post_form(client, f"{BASE}Claim/_search", {}).status_code == 404
    # A session's POST needs the CSRF token, as every other.
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    sign_in(strict, a["clinician"])
    response = _post_form(strict, f"{BASE}Patient/_search", {"name": "ada"})
    assert response.status_code == 403


def test_the_capability_statement_advertises_search_by_post(client):
    body = _json(client.get(f"{BASE}metadata"))
    CapabilityStatement.model_validate(body)
    (rest,) = body["rest"]
    assert "POST [type]/_search" in rest["documentation"]
    for resource in rest["resource"]:
        if resource["type"] == "Practitioner":  # read only: a SMART id_token's fhirUser
            continue
        (search,) = [i for i in resource["interaction"] if i["code"] == "search-type"]
        assert "_search" in search["documentation"], resource["type"]


def test_the_portals_own_loggers_log_no_query_string(client, sign_in, charts, caplog):
    sign_in(client, charts["a"]["clinician"])
    secret = "Zebediah"
    with caplog.at_level(logging.DEBUG):
        client.get(f"{BASE}Patient", {"name": secret, "birthdate": "not-a-date"})  # 400
        client.get(f"{BASE}Observation", {"patient": "999999", "note": secret})  # 404
        client.get(f"/provider/patients/999999/?q={secret}")  # 404
        client.get(f"{BASE}Nonsense?family={secret}")  # 404
    assert caplog.records, "Django logs 4xx answers (django.request)"
    for record in caplog.records:
        assert secret not in record.getMessage(), record.getMessage()


# --- gunicorn -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorns_access_log_has_no_query_strings(tmp_path):
    """The README's production command, briefly, against the test settings: the access log
    names the path and leaves the query string (and the Referer) out."""
    port = _free_port()
    log = tmp_path / "access.log"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", str(log),
         "--no-control-socket", "portal.wsgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2).read()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(server.stderr.read().decode()) from None
                time.sleep(0.3)
        request = urllib.request.Request(  # noqa: S310 - localhost
            f"{url}/healthz?name=Ada+Lovelace&birthdate=1970-12-10",
            headers={"Referer": f"{url}/provider/?q=Lovelace"},
        )
        urllib.request.urlopen(request, timeout=5).read()  # noqa: S310
        urllib.request.urlopen(f"{url}{BASE}metadata?identifier=A-100", timeout=5).read()  # noqa: S310
        deadline = time.monotonic() + 10
        while log.read_text().count("\n") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=20)
    lines = log.read_text().splitlines()
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in lines), lines
    assert any(f'"GET {BASE}metadata HTTP/1.1" 200' in line for line in lines), lines
    for line in lines:
        assert "?" not in line and "Lovelace" not in line and "A-100" not in line, line


def test_gunicorns_error_lines_lose_their_query_strings(tmp_path):
    """gunicorn's own 'Error handling request ...' lines, through the configured logger."""
    import runpy

    from gunicorn.config import Config

    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    cfg = Config()
    for name in ("access_log_format", "logger_class"):
        cfg.set(name, conf[name])
    cfg.set("errorlog", str(tmp_path / "error.log"))
    logger = cfg.logger_class(cfg)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("Error handling request %s %s", "GET", "/fhir/R4/Patient?name=Ada")
    logger.warning("Invalid request from ip=1.2.3.4: Invalid Request Line "
                   "'GET /provider/?q=Lovelace HTTP/1.1 x'")  # fmt: skip
    text = (tmp_path / "error.log").read_text()
    assert "Error handling request GET /fhir/R4/Patient" in text
    assert "GET /provider/ HTTP/1.1" in text
    assert "Ada" not in text and "Lovelace" not in text and "?" not in text
    # The format is gunicorn's own atoms minus the request line (%(r)s) and Referer (%(f)s).
    assert "%(U)s" in conf["access_log_format"]
    assert "%(r)s" not in conf["access_log_format"] and "%(q)s" not in conf["access_log_format"]
    assert "%(f)s" not in conf["access_log_format"]
    assert django_settings.LOGGING  # the project's own logging stays as configured
