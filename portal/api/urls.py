from django.urls import path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from portal.api import views


class IdConverter:
    """A database id: at most 18 digits, so it always fits a bigint."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    # staff
    path("v1/patients/", views.PatientListView.as_view(), name="patients"),
    path("v1/patients/<id:patient_id>/", views.PatientDetailView.as_view(), name="patient"),
    path("v1/patients/<id:patient_id>/chart/", views.ChartView.as_view(), name="chart"),
    path(
        "v1/patients/<id:patient_id>/records/<str:record_type>/",
        views.RecordListView.as_view(),
        name="records",
    ),
    path(
        "v1/records/<str:record_type>/<id:record_id>/",
        views.RecordDetailView.as_view(),
        name="record",
    ),
    path(
        "v1/records/<str:record_type>/<id:record_id>/correct/",
        views.RecordCorrectView.as_view(),
        name="record_correct",
    ),
    path("v1/shared/", views.SharedView.as_view(), name="shared"),
    path("v1/access-requests/", views.AccessRequestListView.as_view(), name="access_requests"),
    path("v1/break-glass/", views.BreakGlassView.as_view(), name="break_glass"),
    # patients
    path("v1/me/registrations/", views.MyRegistrationsView.as_view(), name="my_registrations"),
    path("v1/me/records/", views.MyRecordsView.as_view(), name="my_records"),
    path("v1/me/access-log/", views.MyAccessLogView.as_view(), name="my_access_log"),
    path("v1/me/consents/", views.MyConsentsView.as_view(), name="my_consents"),
    path(
        "v1/me/consents/<uuid:consent_id>/revoke/",
        views.MyConsentRevokeView.as_view(),
        name="my_consent_revoke",
    ),
    path(
        "v1/me/access-requests/",
        views.MyAccessRequestsView.as_view(),
        name="my_access_requests",
    ),
    path(
        "v1/me/access-requests/<uuid:request_id>/decide/",
        views.MyAccessRequestDecideView.as_view(),
        name="my_access_request_decide",
    ),
    path("v1/me/proxies/", views.MyProxiesView.as_view(), name="my_proxies"),
    path(
        "v1/me/proxies/<uuid:grant_id>/accept/",
        views.MyProxyAcceptView.as_view(),
        name="my_proxy_accept",
    ),
    path(
        "v1/me/proxies/<uuid:grant_id>/revoke/",
        views.MyProxyRevokeView.as_view(),
        name="my_proxy_revoke",
    ),
]
