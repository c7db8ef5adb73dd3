"""The API's documentation pages (Swagger UI at /api/docs/, ReDoc at /api/redoc/): vendored
assets only (drf-spectacular-sidecar), nothing loaded from outside the site, no inline
script or style (the pages' own CSS is a static file).

- Swagger UI: drf-spectacular's split view, whose start-up script is a separate request
  (`?script`) rather than an inline <script>; the page is the project's own template.
- ReDoc: the project's template starts it from a `<redoc spec-url>` element (its bundle
  starts itself, no inline script) without drf-spectacular's Google Fonts links; the bundle
  is the sidecar's with its one request to a CDN, the Redocly logo in the side menu, taken
  out (an empty src loads nothing, and ReDoc then hides the image).
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import etag, require_GET
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
# What the bundle would load from outside the site (tests/security checks there is no more).
_CDN_URL = re.compile(r"https://cdn\.redoc\.ly/[^\"'\s)]*")
# The sidecar's source map does not match the edited bundle.
_SOURCE_MAP = re.compile(r"\n//# sourceMappingURL=\S*\s*$")


class ApiDocsView(SpectacularSwaggerSplitView):
    template_name = "api/swagger_ui.html"


class ApiRedocView(SpectacularRedocView):
    template_name = "api/redoc.html"


@functools.cache
def redoc_bundle() -> tuple[bytes, str]:
    """The sidecar's ReDoc bundle without its CDN URL, and its ETag (read once a process)."""
    path = finders.find(REDOC_BUNDLE)
    if not path:
        raise LookupError(f"{REDOC_BUNDLE} is not among the static files")
    text = Path(path).read_text(encoding="utf-8")
    text = _SOURCE_MAP.sub("\n", _CDN_URL.sub("", text))
    body = text.encode("utf-8")
    return body, hashlib.sha256(body).hexdigest()[:32]


@require_GET
@etag(lambda request: redoc_bundle()[1])
def redoc_bundle_view(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(redoc_bundle()[0], content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    return response
