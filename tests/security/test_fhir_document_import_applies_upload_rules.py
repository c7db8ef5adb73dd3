"""Issue 13, item 10: FHIR DocumentReference import applies the upload rules.

The attack: a DocumentReference whose attachment was HTML or SVG imported (under whatever
contentType it claimed) and was served back. Now the importer holds every attachment to the
provider portal's upload rules, the very same function (portal.records.uploads): PDF, PNG,
JPEG or UTF-8 text, the type checked by content, at most DOCUMENT_MAX_BYTES. A document that
breaks them is an error for its entry: the bundle writes nothing and says which entry and why.
"""

import base64
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from ledger.models import Event
from portal.fhir.models import ImportIdentity
from portal.records.models import Document, Patient
from portal.tenancy.scoping import unscoped

BASE = "/fhir/R4/"
MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}

HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
    b"<script>alert(2)</script></svg>"
)
HIDDEN_HTML = b"Discharge letter\n\nAll well.\n<script>fetch('/fhir/R4/Patient')</script>\n"
BARE_SVG = b"  <svg width='10' height='10'><rect/></svg>"
CLAIMS = [
    "text/html", "image/svg+xml", "text/plain", "text/plain; charset=utf-8",
    "application/pdf", "image/png", "image/jpeg", "application/octet-stream", None,
]  # fmt: skip

PDF = b"%PDF-1.4\n% a letter\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16
TEXT = "Discharge letter: all well. BP < 120/80, café.".encode()


def _bundle(content: bytes, content_type: str | None) -> dict:
    attachment = {"data": base64.b64encode(content).decode(), "title": "Letter"}
    if content_type is not None:
        attachment["contentType"] = content_type
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:pat-1",
                "resource": {
                    "resourceType": "Patient",
                    "id": "pat-1",
                    "gender": "female",
                    "identifier": [{"type": MR, "value": "DOC-1"}],
                    "name": [{"family": "Doe", "given": ["Jane"]}],
                    "birthDate": "1990-02-03",
                },
            },
            {
                "fullUrl": "urn:uuid:doc-1",
                "resource": {
                    "resourceType": "DocumentReference",
                    "id": "doc-1",
                    "status": "current",
                    "subject": {"reference": "urn:uuid:pat-1"},
                    "content": [{"attachment": attachment}],
                },
            },
        ],
    }


def _counts() -> tuple[int, ...]:
    with unscoped():
        return (
            Patient.objects.count(),
            Document.objects.count(),
            ImportIdentity._base_manager.count(),
            Event.objects.count(),
        )


def _post(client, bundle):
    return client.post(BASE, json.dumps(bundle), content_type="application/fhir+json")


@pytest.fixture
def signed_in(client, sign_in, clinician_a):
    sign_in(client, clinician_a)
    return client


@pytest.mark.parametrize("claimed", CLAIMS)
@pytest.mark.parametrize("content", [HTML, SVG, HIDDEN_HTML, BARE_SVG],
                         ids=["html", "svg", "html-in-text", "bare-svg"])  # fmt: skip
def test_markup_is_refused_whatever_type_it_claims(signed_in, content, claimed):
    before = _counts()
    response = _post(signed_in, _bundle(content, claimed))
    assert response.status_code == 422, response.content[:300]
    body = json.loads(response.content)
    assert body["resourceType"] == "OperationOutcome"
    diagnostics = " ".join(i.get("diagnostics", "") for i in body["issue"])
    assert "entry 1 (DocumentReference/doc-1)" in diagnostics
    assert "accepted" in diagnostics or "does not match its type" in diagnostics
    assert _counts() == before


def test_oversized_documents_are_refused(signed_in, settings):
    settings.DOCUMENT_MAX_BYTES = 1000
    before = _counts()
    response = _post(signed_in, _bundle(b"a" * 1001, "text/plain"))
    assert response.status_code == 422
    assert "the limit is 1,000 bytes" in response.content.decode()
    assert _counts() == before
    assert _post(signed_in, _bundle(b"a" * 1000, "text/plain")).status_code == 200


def test_the_real_limit_holds_for_the_import_command(hospital_a, clinician_a, tmp_path):
    # Over HTTP a body this large is refused before the import (413); files are not.
    path = tmp_path / "big.json"
    five_mb_and_one = b"a" * (5 * 1024 * 1024 + 1)
    path.write_text(json.dumps(_bundle(five_mb_and_one, "text/plain")))
    before = _counts()
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 file"):
        call_command("import_fhir", "--hospital", hospital_a.slug, "--actor",
                     clinician_a.username, str(path), stdout=io.StringIO(), stderr=err)  # fmt: skip
    assert "the limit is 5,242,880 bytes" in err.getvalue()
    assert _counts() == before


@pytest.mark.parametrize(
    ("content", "claimed", "stored"),
    [(PDF, "application/pdf", "application/pdf"), (PNG, "image/png", "image/png"),
     (JPEG, "image/jpeg", "image/jpeg"), (TEXT, "text/plain; charset=utf-8", "text/plain")],
)  # fmt: skip
def test_allowed_documents_import_and_are_served_with_their_checked_type(
    signed_in, content, claimed, stored
):
    response = _post(signed_in, _bundle(content, claimed))
    assert response.status_code == 200, response.content[:300]
    with unscoped():
        document = Document.objects.get()
    assert document.content_type == stored and bytes(document.content) == content
    served = json.loads(signed_in.get(f"{BASE}DocumentReference/doc-{document.pk}").content)
    attachment = served["content"][0]["attachment"]
    assert attachment["contentType"] == stored
    assert base64.b64decode(attachment["data"]) == content


def test_the_provider_upload_form_applies_the_same_rule(signed_in, clinician_a, hospital_a):
    """One rule, both doors: the provider portal's form refuses markup posing as text too."""
    assert _post(signed_in, _bundle(TEXT, "text/plain")).status_code == 200
    with unscoped():
        patient = Patient.objects.get(hospital=hospital_a)
    before = _counts()
    for content in (HTML, HIDDEN_HTML, BARE_SVG):
        upload = SimpleUploadedFile("letter.txt", content, content_type="text/plain")
        response = signed_in.post(
            f"/provider/patients/{patient.pk}/documents/new/", {"title": "t", "file": upload}
        )
        assert response.status_code == 400
        assert "does not match its type" in response.content.decode()
    assert _counts() == before
