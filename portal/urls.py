from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("portal.accounts.urls")),
    path("provider/", include("portal.provider.urls")),
    path("patient/", include("portal.patient.urls")),
    path("ledger/", include("ledger.urls")),
    path("admin/", admin.site.urls),
]

handler403 = "portal.errors.permission_denied"
handler404 = "portal.errors.page_not_found"
handler500 = "portal.errors.server_error"
