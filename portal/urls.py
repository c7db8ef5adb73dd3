from django.contrib import admin
from django.urls import include, path

from portal.ops.views import healthz_view

urlpatterns = [
    path("", include("portal.accounts.urls")),
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
