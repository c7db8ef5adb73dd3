"""The patient's own records page has the same trend charts as the clinician's, across the
hospitals they are registered at: each hospital's values told apart and named in a legend."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.records import services
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped

URL = "/patient/records/?category=vitals"


def _figure(page: str, code: str) -> str:
    return page[page.index(f'data-code="{code}"') :].split("</figure>")[0]


def _record(patient, actor, code, value, when, unit="mm[Hg]"):
    with unscoped():
        services.observation_create(
            actor=actor, patient=patient, code=code, display=code, value=Decimal(value),
            unit=unit, effective_at=when,
        )  # fmt: skip


@pytest.fixture
def two_hospitals(make_patient_user, make_staff, hospital_a, hospital_b):
    """A patient registered at both hospitals, with blood pressures and heart rates at each,
    and another patient at Riverside with values of their own."""
    user, (at_a, at_b) = make_patient_user(hospital_a, hospital_b)
    _, (stranger,) = make_patient_user(hospital_b)
    staff = {
        hospital_a.pk: make_staff(hospital_a, Role.CLINICIAN),
        hospital_b.pk: make_staff(hospital_b, Role.CLINICIAN),
    }
    start = timezone.now() - dt.timedelta(days=20)
    for i, (reg, systolic, diastolic) in enumerate(
        [(at_a, "128", "82"), (at_b, "134", "88"), (at_a, "126", "80"), (at_b, "139", "91")]
    ):
        when = start + dt.timedelta(days=4 * i)
        actor = staff[reg.hospital_id]
        _record(reg, actor, "8480-6", systolic, when)
        _record(reg, actor, "8462-4", diastolic, when)
        _record(reg, actor, "8867-4", str(70 + i), when, unit="/min")
    _record(stranger, staff[hospital_b.pk], "8480-6", "171", start)
    return {"user": user, "a": at_a, "b": at_b, "stranger": stranger, "staff": staff}


def test_values_from_both_hospitals_are_told_apart_with_a_legend(client, sign_in, two_hospitals):
    sign_in(client, two_hospitals["user"])
    page = client.get(URL).content.decode()
    bp = _figure(page, "85354-9")
    assert 'data-code="8480-6"' not in page  # one blood-pressure chart, not two
    assert 'class="trend by-hospital"' in page
    legend = re.search(r'<ul class="trend-legend">(.*?)</ul>', bp).group(1)
    names = re.findall(r"</svg>([^<]+)</li>", legend)
    # The hospitals in the order the page names them ("From ..."), which fixes their markers.
    order = re.search(r"From ([^<]+)\.</p>", page).group(1).split(", ")
    assert sorted(order) == ["Riverside General", "St Mary&#x27;s Hospital"]
    assert names == ["Systolic", "Diastolic", *order]
    h0, h1 = ("St Mary&#x27;s Hospital", "Riverside General")[:: 1 if order[0][0] == "S" else -1]
    # Each hospital its own marker shape (colour is not the only cue) and its own lines.
    plot = bp[bp.index('role="img"') : bp.index("</svg><p")]
    assert plot.count("<circle cx=") == 4 and plot.count("<rect ") == 4  # 2 readings x 2
    assert plot.count('class="mk h0"') == 4 and plot.count('class="mk h1"') == 4
    assert {"line sys h0", "line sys h1", "line dia h0", "line dia h1"} == set(
        re.findall(r'<polyline points="[^"]+" class="([^"]+)"', plot)
    )
    assert "Riverside General)</title>" in plot  # each value's tooltip names its hospital
    assert re.search(r'<circle [^>]+ class="mk h0"><title>[^<]+\(' + h0, plot)
    assert re.search(r'<rect [^>]+ class="mk h1"><title>[^<]+\(' + h1, plot)
    # The values table says where each reading was taken; the latest one is Riverside's.
    assert "<td>139</td><td>91</td><td>Riverside General</td>" in bp
    assert "<td>128</td><td>82</td><td>St Mary&#x27;s Hospital</td>" in bp
    assert "Latest: <strong>139/91 mmHg</strong>" in bp and "at Riverside General" in bp
    assert "from St Mary&#x27;s Hospital and Riverside General" in bp  # the summary
    # Heart rate: the same hospitals, the same markers.
    heart = _figure(page, "8867-4")
    heart = heart[heart.index('role="img"') : heart.index("</svg><p")]
    assert heart.count('class="mk h0"') == 2 and heart.count('class="mk h1"') == 2
    # The other Riverside patient's value is nowhere.
    assert "<td>171</td>" not in page and "171 mmHg" not in page and " 171;" not in page


def test_one_hospital_needs_no_hospital_legend(client, sign_in, make_patient_user, hospital_a,
                                               hospital_b, make_staff):  # fmt: skip
    user, (reg,) = make_patient_user(hospital_a)
    clinician = make_staff(hospital_a, Role.CLINICIAN)
    _record(reg, clinician, "8480-6", "120", timezone.now() - dt.timedelta(days=1))
    _record(reg, clinician, "8462-4", "80", timezone.now() - dt.timedelta(days=1))
    sign_in(client, user)
    page = client.get(URL).content.decode()
    bp = _figure(page, "85354-9")
    assert "by-hospital" not in page and "St Mary" not in bp
    assert re.findall(r"</svg>([^<]+)</li>", bp) == ["Systolic", "Diastolic"]


def test_the_records_page_runs_the_same_queries_whatever_the_values(client, sign_in, two_hospitals):
    sign_in(client, two_hospitals["user"])

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(URL).status_code == 200
        return len(ctx.captured_queries)

    count()  # the first request of a process warms caches
    before = count()
    when = timezone.now() - dt.timedelta(hours=5)
    for key in ("a", "b"):
        reg = two_hospitals[key]
        actor = two_hospitals["staff"][reg.hospital_id]
        for i in range(5):
            _record(reg, actor, "8310-5", "36.9", when + dt.timedelta(minutes=i), unit="Cel")
            _record(reg, actor, "8480-6", "121", when + dt.timedelta(minutes=i))
    assert count() == before
