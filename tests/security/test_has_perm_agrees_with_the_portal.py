"""`user.has_perm(perm, chart)` says what the portal does, for every shape of grant.

The attack: guardian's own ObjectPermissionBackend answered has_perm from the permission
rows alone, so an expired consent's row and a proxy's row said "yes" while every page said
404; any use of has_perm, DRF's object permissions or guardian's shortcuts would have leaked
those charts. Each grant shape below is asked both ways: has_perm, and the portal over HTTP
(the chart page, an add form, the API's chart and a restricted note's page).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from portal.records.categories import CATEGORY_CODES, category_codename

ROOT = Path(__file__).resolve().parents[2]


def _portal(client, sign_in, user, *, patient, secret):
    """What the portal lets `user` do, asked over HTTP."""
    sign_in(client, user)
    opens = client.get(f"/provider/patients/{patient.pk}/").status_code == 200
    adds = client.get(f"/provider/patients/{patient.pk}/observations/new/").status_code == 200
    categories: set[str] = set()
    if opens:
        access = client.get(f"/api/v1/patients/{patient.pk}/chart/").json()["access"]
        shown = access["categories"]
        categories = set(CATEGORY_CODES) if shown is None else set(shown)
    note = client.get(f"/provider/records/clinicalnote/{secret.pk}/").status_code == 200
    client.logout()
    return opens, adds, categories, note


def test_has_perm_agrees_with_the_portal_for_every_grant(client, sign_in, every_grant):
    w, users = every_grant
    seen = set()
    for name, user in users.items():
        for patient in (w["patient"], w["other"]):
            opens, adds, categories, note = _portal(
                client, sign_in, user, patient=patient, secret=w["secret"]
            )
            user = type(user)._default_manager.get(pk=user.pk)  # no cached permissions
            where = (name, patient.mrn)
            assert user.has_perm("records.view_patient", patient) is opens, where
            assert user.has_perm("view_patient", patient) is opens, where
            assert user.has_perm("records.change_patient", patient) is adds, where
            for category in CATEGORY_CODES:
                held = user.has_perm(f"records.{category_codename(category)}", patient)
                assert held is (category in categories), (*where, category)
            if patient == w["patient"]:
                assert user.has_perm("records.view_clinicalnote", w["secret"]) is note, where
            assert user.has_perms(["records.view_patient", "records.change_patient"], patient) is (
                opens and adds
            )
            # Another app's permission of the same name, or a model-level question, is no.
            assert not user.has_perm("consent.view_patient", patient)
            seen.add((opens, adds, frozenset(categories)))
    # The matrix covered no access, a part of a chart, a whole chart and writing.
    assert (False, False, frozenset()) in seen
    assert any(o and not a and c and c != set(CATEGORY_CODES) for o, a, c in seen)
    assert (True, True, frozenset(CATEGORY_CODES)) in seen


def test_the_attacks_of_the_report_are_refused_by_has_perm(client, sign_in, every_grant):
    """The two rows the outside test found: an expired consent's and a proxy's."""
    w, users = every_grant
    for name in ("expired", "proxy", "break_glass_ended", "scheduled", "revoked"):
        sign_in(client, users[name])
        assert client.get(f"/provider/patients/{w['patient'].pk}/").status_code == 404
        assert not users[name].has_perm("records.view_patient", w["patient"]), name
        assert not users[name].has_perm("records.view_clinicalnote", w["secret"]), name
        assert users[name].get_all_permissions(w["patient"]) == set(), name


# guardian's checker and shortcuts, and DRF's object permissions class (which asks has_perm).
AROUND_THE_MODULE = {
    "ObjectPermissionChecker", "ObjectPermissionBackend", "get_objects_for_user",
    "get_objects_for_group", "get_perms", "get_user_perms", "get_group_perms",
    "DjangoObjectPermissions",
}  # fmt: skip


def _offences(path: Path) -> list[str]:
    if path.suffix == ".html":
        text = path.read_text(encoding="utf-8")
        return ["guardian_tags"] if re.search(r"{%\s*load\b[^%]*guardian_tags", text) else []
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("has_perm", "has_perms"):
                found.append(f"line {node.lineno}: .{node.func.attr}()")
        elif isinstance(node, ast.ImportFrom):
            names = {alias.name for alias in node.names}
            if names & AROUND_THE_MODULE:
                found.append(f"line {node.lineno}: import of {sorted(names & AROUND_THE_MODULE)}")
        elif isinstance(node, ast.Attribute) and node.attr in AROUND_THE_MODULE:
            found.append(f"line {node.lineno}: {node.attr}")
    return found


def test_nothing_asks_guardian_around_the_access_module():
    """guardian's checker, shortcuts and template tags read the permission rows without
    their windows and sources; the portal never uses them (has_perm goes through
    records.backends, which asks the access module). A superuser's has_perm is True by
    Django's design, so no project code decides access with has_perm either."""
    offenders = []
    for folder in ("portal", "consent", "ledger", "templates"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".html") and "migrations" not in path.parts:
                offenders += [f"{path.relative_to(ROOT)} {o}" for o in _offences(path)]
    assert offenders == []
