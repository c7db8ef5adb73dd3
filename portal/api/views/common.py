"""What the staff and patient views share: their OpenAPI descriptions (the error
responses, the X-Hospital header, cursors, path parameters)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from portal.api import serializers as out
from portal.api.authentication import HOSPITAL_HEADER

# --- schema helpers --------------------------------------------------------------------------

ERR = out.ErrorSerializer
HOSPITAL_PARAM = OpenApiParameter(
    HOSPITAL_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Slug of one of your own hospitals to act in (token requests default to "
    "your first membership, session requests to the portal's active hospital).",
)  # fmt: skip
CURSOR_PARAM = OpenApiParameter(
    "cursor", OpenApiTypes.STR, description="Opaque cursor from a previous page's next/previous."
)


def type_param(choices: list[str]) -> OpenApiParameter:
    return OpenApiParameter("record_type", OpenApiTypes.STR, OpenApiParameter.PATH, enum=choices)


def uuid_param(name: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.UUID, OpenApiParameter.PATH)


def doc(
    *, summary: str, tag: str, response: Any, status: int = 200, request: Any = None,
    parameters: tuple = (), errors: tuple[int, ...] = (401, 403, 404), description: str = "",
) -> Any:  # fmt: skip
    messages = {
        400: "Invalid input (field errors in detail).",
        401: "No or an invalid token or session.",
        403: "Not for this kind of account or token (staff endpoints take staff tokens issued "
        "after two factors, the others patient tokens), a session without two factors, or "
        "an X-Hospital you are not a member of.",
        404: "Missing, not yours to see, or another hospital's (never told apart).",
        429: "Too many attempts: locked for a while (Retry-After says how long).",
    }
    codes = set(errors) | {400}
    responses = {status: response, **{c: OpenApiResponse(ERR, messages[c]) for c in codes}}
    params = [*parameters, *([HOSPITAL_PARAM] if tag == "staff" else [])]
    return extend_schema(
        summary=summary, description=description or None, tags=[tag], request=request,
        responses=responses, parameters=params,
    )  # fmt: skip
