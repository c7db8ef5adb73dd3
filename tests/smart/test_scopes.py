import pytest

from portal.smart.scopes import (
    ScopeError,
    clinical_scope,
    scope_access,
    scope_words,
    scopes_worded,
)


@pytest.mark.parametrize(
    ("scope", "level", "rtype", "categories"),
    [
        ("patient/Observation.rs", "patient", "Observation", frozenset()),
        ("patient/Observation.read", "patient", "Observation", frozenset()),  # SMART v1
        ("user/*.rs", "user", "*", frozenset()),
        ("patient/Condition.r", "patient", "Condition", frozenset()),
        ("patient/Observation.rs?category=laboratory", "patient", "Observation",
         frozenset({"laboratory"})),
        ("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/"
         "observation-category|vital-signs", "patient", "Observation",
         frozenset({"vital-signs"})),
    ],
)  # fmt: skip
def test_smart_v2_scopes_parse(scope, level, rtype, categories):
    parsed = clinical_scope(scope)
    assert (parsed.level, parsed.resource_type, parsed.categories) == (level, rtype, categories)


@pytest.mark.parametrize(
    "scope",
    [
        "patient/Observation.cruds",  # writing is not granted
        "patient/Observation.write",
        "system/*.rs",
        "patient/Claim.rs",
        "patient/Condition.rs?category=laboratory",
        "patient/Observation.rs?category=survey",
        "patient/Observation.rs?code=1234-5",
        "read",
        "",
    ],
)
def test_what_is_not_granted_is_refused(scope):
    with pytest.raises(ScopeError):
        clinical_scope(scope)


def test_scopes_map_to_types_and_chart_categories():
    access = scope_access(["patient/Observation.rs?category=laboratory", "launch/patient"])
    assert access.resource_types() == frozenset({"Observation"})
    assert access.chart_categories() == frozenset({"labs"})
    assert access.launch_patient and not access.offline
    everything = scope_access(["patient/*.rs", "offline_access"])
    assert everything.resource_types() is None and everything.chart_categories() is None
    assert everything.offline


def test_scopes_in_plain_words():
    assert scope_words("patient/Observation.rs") == (
        "Read your lab results, vital signs and other observations"
    )
    assert scope_words("patient/Observation.rs?category=laboratory") == "Read your lab results"
    assert scope_words("patient/*.rs") == "Read your health records"
    assert scope_words("offline_access").startswith("Keep access")


def test_what_an_app_may_do_is_said_once_each():
    # openid and fhirUser both say who you are: a connected app lists it once.
    assert scopes_worded(["openid", "fhirUser", "launch/patient", "patient/Observation.rs"]) == [
        "Know who you are in this portal",
        "Know which of your records you share with it",
        "Read your lab results, vital signs and other observations",
    ]
