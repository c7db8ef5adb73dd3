"""python manage.py import_fhir."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from portal.records.models import Patient
from portal.tenancy.scoping import unscoped
from tests.fhir.conftest import SYNTHEA_DIR


def test_import_command_imports_files_and_prints_a_summary(hospital_a, tmp_path):
    files = sorted(SYNTHEA_DIR.glob("*.json"))[:2]
    out = io.StringIO()
    call_command("import_fhir", "--hospital", "st-mary", *map(str, files), stdout=out)
    text = out.getvalue()
    assert "Imported 2 of 2 file(s) into st-mary" in text
    assert "skipped (not modelled): " in text and "Claim" in text
    with unscoped():
        assert Patient.objects.filter(hospital=hospital_a).count() == 2
    # Again: nothing new.
    out = io.StringIO()
    call_command("import_fhir", "--hospital", "st-mary", *map(str, files), stdout=out)
    assert "created: none" in out.getvalue()


def test_a_bad_file_fails_alone_and_loudly(hospital_a, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"resourceType": "Patient"}))
    good = sorted(SYNTHEA_DIR.glob("*.json"))[0]
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="2 file"):
        call_command(
            "import_fhir", "--hospital", "st-mary", str(bad), str(wrong), str(good),
            stdout=out, stderr=err,
        )  # fmt: skip
    assert "bad.json: not a readable JSON file" in err.getvalue()
    assert "Imported 1 of 3 file(s)" in out.getvalue()
    assert "expected 'Bundle'" in err.getvalue()
    with unscoped():
        assert Patient.objects.filter(hospital=hospital_a).count() == 1


def test_unknown_hospital(db):
    with pytest.raises(CommandError, match="No hospital"):
        call_command("import_fhir", "--hospital", "nowhere", "x.json")
