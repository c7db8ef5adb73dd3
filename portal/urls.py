from django.contrib import admin
from django.urls import include, path

from portal.ops.views import healthz_view
from portal.smart.urls import oauth_patterns
from portal.smart.views import smart_configuration_view

urlpatterns = [
    path("", include("portal.accounts.urls")),
    path("", include("portal.smart.urls")),
    path("oauth/", include(oauth_patterns)),
    # SMART's discovery document at the FHIR base (before the FHIR URLs' catch-all), and at
    # the site root.
    path(
        "fhir/R4/.well-known/smart-configuration",
        smart_configuration_view,
        name="smart_configuration",
    ),
    path(".well-known/smart-configuration", smart_configuration_view),
    path("provider/", include("portal.provider.urls")),
    path("patient/", include("portal.patient.urls")),
    path("ledger/", include("ledger.urls")),
    path("fhir/R4/", include("portal.fhir.urls")),
    path("api/", include("portal.api.urls")),
    path("accounts/api-tokens/", include("portal.api.page_urls")),
    path("healthz", healthz_view, name="healthz"),
    path("admin/", admin.site.urls),
]

handler400 = "portal.errors.bad_request"
handler403 = "portal.errors.permission_denied"
handler404 = "portal.errors.page_not_found"
handler500 = "portal.errors.server_error"
