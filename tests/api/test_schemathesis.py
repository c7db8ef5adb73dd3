"""Schemathesis against /api/schema/, in-process through the Django WSGI application, with
real tokens: staff at hospital A, staff at hospital B and a patient. Bounded and
deterministic (derandomized, 25 examples per operation): zero 5xx, zero responses that
break the schema (status codes, content types, headers and bodies as documented).

One pytest test per operation, driven by hypothesis directly (schemathesis' own pytest
plugin does not run on pytest 9)."""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _operation_ids() -> list[str]:
    spec = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(op["operationId"] for item in spec["paths"].values() for op in item.values())


@pytest.fixture
def api_schema(db):
    # As Django's test client does: the test's transaction must survive each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _operation(schema, operation_id: str):
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.definition.raw.get("operationId") == operation_id:
            return operation
    raise AssertionError(f"{operation_id} is not in the served schema")


RECORD_KEYS = {"observation": "observation", "condition": "condition",
               "clinicalnote": "note", "document": "document"}  # fmt: skip


def _real_ids(case, world) -> dict:
    params = case.path_parameters or {}
    real = {}
    if "patient_id" in params:
        real["patient_id"] = world["patient"].pk
    if "record_id" in params:
        key = RECORD_KEYS.get(params.get("record_type"))
        if key is None:
            return {}
        real["record_id"] = world[key].pk
    return real


def test_every_operation_is_tested():
    assert len(_operation_ids()) >= 23


@pytest.mark.parametrize("operation_id", _operation_ids())
def test_api_matches_its_schema(api_schema, api_world, operation_id):
    operation = _operation(api_schema, operation_id)
    tag = (operation.definition.raw.get("tags") or ["staff"])[0]
    world_by_token = {
        api_world[k][t]: api_world[k] for k in ("a", "b") for t in ("staff_token", "patient_token")
    }
    if tag == "staff":
        tokens = [api_world["a"]["staff_token"], api_world["b"]["staff_token"]]
    else:
        tokens = [api_world["a"]["patient_token"]]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=25, derandomize=True, deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def run(case):
        if case.headers:  # the tests' own tokens choose the hospital
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "x-hospital"}
        for token in tokens:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, checks=CHECKS)
            real = _real_ids(case, world_by_token[token])
            if real:  # the same generated query and body against rows that exist
                case.path_parameters = {**case.path_parameters, **real}
                response = case.call(headers={"Authorization": f"Bearer {token}"})
                case.validate_response(response, checks=CHECKS)

    run()
