"""drf-spectacular: the bearer token as an OpenAPI security scheme."""

import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from the portal's API tokens page or from "
            "`manage.py issue_token`. A token acts as whom it was issued for: staff "
            "endpoints (and FHIR) take staff tokens issued after a two-factor log-in, "
            "patient endpoints take patient tokens. Staff requests act in the hospital "
            "named by X-Hospital, else their first membership.",
        }


class PortalSessionScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.PortalSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "The portal's session (staff: signed in with two factors); "
            "unsafe methods need the CSRF token (X-CSRFToken).",
        }


class PortalAutoSchema(AutoSchema):
    """Operation ids from the view and the method: PatientListView.get -> patient_list_get."""

    def get_operation_id(self) -> str:
        name = type(self.view).__name__.removesuffix("View")
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        return f"{snake}_{self.method.lower()}"
