"""The cross-tenant and cross-patient matrix of the provider portal, and who sees what."""

from ledger.models import Event
from portal.records import services
from portal.records.models import ClinicalNote
from portal.tenancy.models import Role
from portal.tenancy.scoping import unscoped


def provider_urls(w):
    """Every provider URL that takes an id, filled with the ids of world `w`."""
    p, obs, doc = w["patient"].pk, w["observation"].pk, w["document"].pk
    return [
        ("get", f"/provider/patients/{p}/"),
        ("get", f"/provider/patients/{p}/observations/new/"),
        ("get", f"/provider/patients/{p}/blood-pressure/new/"),
        ("get", f"/provider/patients/{p}/notes/new/"),
        ("get", f"/provider/patients/{p}/care-team/"),
        ("post", f"/provider/patients/{p}/care-team/{w['clinician'].pk}/remove/"),
        ("get", f"/provider/patients/{p}/documents/new/"),
        ("get", f"/provider/documents/{doc}/download/"),
        ("get", f"/provider/records/observation/{obs}/correct/"),
        ("get", f"/provider/records/observation/{obs}/"),
        ("get", f"/provider/records/condition/{w['condition'].pk}/"),
        ("get", f"/provider/records/clinicalnote/{w['note'].pk}/"),
        ("get", f"/provider/records/document/{doc}/"),
        ("get", f"/provider/patients/{p}/records/condition/new/"),
        ("get", f"/provider/records/condition/{w['condition'].pk}/correct/"),
        ("get", f"/provider/records/clinicalnote/{w['note'].pk}/correct/"),
    ]


def test_own_hospital_urls_work(client, sign_in, world):
    sign_in(client, world["a"]["clinician"])
    for method, url in provider_urls(world["a"]):
        if method == "get":
            assert client.get(url).status_code == 200, url


def test_other_hospitals_ids_are_404_everywhere(client, sign_in, world):
    sign_in(client, world["a"]["clinician"])
    events_before = Event.objects.count()
    for method, url in provider_urls(world["b"]):
        response = getattr(client, method)(url)
        assert response.status_code == 404, url
    assert Event.objects.count() == events_before  # no access event for what was not shown


def test_unknown_ids_and_types_are_404(client, sign_in, world):
    sign_in(client, world["a"]["clinician"])
    for url in [
        "/provider/patients/999999/",
        "/provider/records/observation/999999/",
        "/provider/records/nosuchtype/1/",
        "/provider/documents/999999/download/",
    ]:
        assert client.get(url).status_code == 404, url


def test_lists_contain_no_foreign_rows(client, sign_in, world):
    sign_in(client, world["a"]["clinician"])
    page = client.get("/provider/").content.decode()
    assert world["a"]["patient"].mrn in page
    assert world["b"]["patient"].mrn not in page
    assert world["b"]["other"].mrn not in page
    # Searching for another hospital's MRN finds nothing.
    found = client.get("/provider/", {"q": world["b"]["patient"].mrn}).content.decode()
    assert "No patient you may open matches" in found


def test_restricted_patient_is_visible_to_the_care_team_only(client, sign_in, world, nurse_a):
    a = world["a"]
    with unscoped():
        services.care_team_add(patient=a["patient"], user=a["clinician"], actor=a["clinician"])
        services.patient_set_restricted(patient=a["patient"], restricted=True, actor=a["clinician"])
    sign_in(client, nurse_a)
    assert client.get(f"/provider/patients/{a['patient'].pk}/").status_code == 404
    assert a["patient"].mrn not in client.get("/provider/").content.decode()
    sign_in(client, a["clinician"])
    assert client.get(f"/provider/patients/{a['patient'].pk}/").status_code == 200
    with unscoped():
        services.patient_set_restricted(
            patient=a["patient"], restricted=False, actor=a["clinician"]
        )
    sign_in(client, nurse_a)
    assert client.get(f"/provider/patients/{a['patient'].pk}/").status_code == 200


def test_restricted_note_only_for_users_granted_on_it(client, sign_in, world, nurse_a):
    a = world["a"]
    with unscoped():
        secret = services.record_create(
            actor=a["clinician"], patient=a["patient"], model=ClinicalNote,
            title="Psychotherapy session", text="Private.", restricted=True,
        )  # fmt: skip
    sign_in(client, nurse_a)
    chart = client.get(f"/provider/patients/{a['patient'].pk}/").content.decode()
    assert "Psychotherapy session" not in chart
    assert client.get(f"/provider/records/clinicalnote/{secret.pk}/").status_code == 404
    sign_in(client, a["clinician"])  # the author was granted on writing it
    assert client.get(f"/provider/records/clinicalnote/{secret.pk}/").status_code == 200
    with unscoped():
        services.note_grant(note=secret, user=nurse_a, actor=a["clinician"])
    sign_in(client, nurse_a)
    assert client.get(f"/provider/records/clinicalnote/{secret.pk}/").status_code == 200


def test_superuser_and_hospital_admin_do_not_silently_see_charts(
    client, sign_in, world, auditor, admin_a
):
    a = world["a"]
    # An auditor is no staff member: the provider portal is not theirs.
    sign_in(client, auditor)
    assert client.get(f"/provider/patients/{a['patient'].pk}/").status_code == 403
    # A hospital admin is staff, but not clinical: no chart without a grant.
    sign_in(client, admin_a)
    assert client.get(f"/provider/patients/{a['patient'].pk}/").status_code == 404
    assert a["patient"].mrn not in client.get("/provider/").content.decode()
    # Model-level permissions do not reveal charts either.
    from django.contrib.auth.models import Permission

    admin_a.user_permissions.add(*Permission.objects.filter(codename__in=["view_patient"]))
    assert client.get(f"/provider/patients/{a['patient'].pk}/").status_code == 404


def test_opening_a_chart_record_or_document_is_an_access_event(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    before = Event.objects.count()
    client.get(f"/provider/patients/{a['patient'].pk}/")
    client.get(f"/provider/records/observation/{a['observation'].pk}/")
    client.get(f"/provider/documents/{a['document'].pk}/download/")
    events = list(Event.objects.order_by("-id")[:3])[::-1]
    assert Event.objects.count() == before + 3
    assert [e.kind for e in events] == ["chart.read", "record.read", "document.read"]
    for e in events:
        assert e.actor_id == a["clinician"].pk
        assert e.patient_id == a["patient"].pk
        # The chart's hospital, and the one the reader acted in (the same here).
        assert e.hospital_id == e.actor_hospital_id == a["hospital"].pk
        assert e.attrs["purpose"] == "TREAT" and e.attrs["role"] == Role.CLINICIAN
    assert events[1].attrs["record_type"] == "observation"
    assert events[1].attrs["record"] == a["observation"].pk


def test_patient_list_pages_by_cursor(client, sign_in, world):
    from tests import factories

    a = world["a"]
    made = [factories.PatientFactory(hospital=a["hospital"], mrn=f"PG{i:03d}") for i in range(55)]
    sign_in(client, a["clinician"])
    first = client.get("/provider/").content.decode()
    assert "PG054" in first and "PG030" in first and "PG029" not in first
    assert f"?before={made[30].pk}" in first and "?after=" not in first
    second = client.get(f"/provider/?before={made[30].pk}").content.decode()
    assert "PG029" in second and "PG005" in second and "PG004" not in second
    assert f"?after={made[29].pk}" in second
    back = client.get(f"/provider/?after={made[29].pk}").content.decode()
    assert "PG054" in back and "PG030" in back and "PG029" not in back
    assert client.get("/provider/?before=nonsense").status_code == 200


def test_paging_skips_windows_of_charts_the_user_may_not_open(world):
    from portal.records.search import patient_page_for_user
    from portal.tenancy.scoping import hospital_scope
    from tests import factories

    a = world["a"]
    visible = [factories.PatientFactory(hospital=a["hospital"]) for _ in range(5)]
    hidden = [factories.PatientFactory(hospital=a["hospital"], restricted=True) for _ in range(12)]
    with hospital_scope(a["hospital"]):
        page = patient_page_for_user(user=a["clinician"], hospital=a["hospital"], size=2)
        assert [p.pk for p in page.patients] == [visible[-1].pk, visible[-2].pk]
        assert not {p.pk for p in page.patients} & {p.pk for p in hidden}
        assert page.older == visible[-2].pk and page.newer is None
        nxt = patient_page_for_user(
            user=a["clinician"], hospital=a["hospital"], size=2, before=page.older
        )
        assert [p.pk for p in nxt.patients] == [visible[-3].pk, visible[-4].pk]
        assert nxt.newer == visible[-3].pk


def test_correcting_a_restricted_note_keeps_it_readable_by_its_grantees(
    client, sign_in, world, nurse_a
):
    from portal.records.models import ClinicalNote

    a = world["a"]
    with unscoped():
        secret = services.record_create(
            actor=a["clinician"], patient=a["patient"], model=ClinicalNote,
            title="Psychotherapy session", text="Private.", restricted=True,
        )  # fmt: skip
        services.note_grant(note=secret, user=nurse_a, actor=a["clinician"])
    sign_in(client, a["clinician"])
    response = client.post(
        f"/provider/records/clinicalnote/{secret.pk}/correct/",
        {
            "title": "Psychotherapy session",
            "text": "Private, corrected.",
            "correction_reason": "Typo",
        },  # a correction gives its reason (issue 16)
    )
    assert response.status_code == 302
    with unscoped():
        new = ClinicalNote.objects.get(replaces=secret)
    assert new.restricted
    for user in (a["clinician"], nurse_a):
        sign_in(client, user)
        assert client.get(f"/provider/records/clinicalnote/{new.pk}/").status_code == 200
    other_nurse = world["a"]["clinician"].__class__.objects.create(username="nurse.other")
    from portal.tenancy.models import Role
    from portal.tenancy.services import membership_ensure

    membership_ensure(user=other_nurse, hospital=a["hospital"], role=Role.NURSE)
    from tests import factories

    factories.TOTPDeviceFactory(user=other_nurse)
    sign_in(client, other_nurse)
    assert client.get(f"/provider/records/clinicalnote/{new.pk}/").status_code == 404


def test_a_read_that_cannot_be_recorded_is_not_answered(client, sign_in, world, monkeypatch):
    """The event is written before anything of the read is built: if it fails, no page,
    record or document content leaves (pages, downloads, the API alike)."""
    from django.db import DatabaseError

    from portal.records import audit

    a = world["a"]
    sign_in(client, a["clinician"])

    def refuse(**kwargs):
        raise DatabaseError("the outbox is unavailable")

    monkeypatch.setattr(audit, "event_record", refuse)
    client.raise_request_exception = False
    before = Event.objects.count()
    for url in (
        f"/provider/patients/{a['patient'].pk}/",
        f"/provider/records/observation/{a['observation'].pk}/",
        f"/provider/documents/{a['document'].pk}/download/",
    ):
        response = client.get(url)
        assert response.status_code == 500, url
        assert b"hello" not in response.content and b"Heart rate" not in response.content
        assert b"IentA" not in response.content
    assert Event.objects.count() == before
