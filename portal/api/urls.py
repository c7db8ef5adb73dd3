from csp.decorators import csp_update
from django.urls import path, register_converter
from drf_spectacular.views import SpectacularAPIView

from portal.api import docs
from portal.api.views import patient, staff


class IdConverter:
    """A database id: at most 18 digits, so it always fits a bigint."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

# The API docs under the site's CSP (settings.CONTENT_SECURITY_POLICY), with the least each
# needs beyond it. Swagger UI: its script is a second request (the split view), its stylesheet
# draws icons from data: URLs.
swagger_view = csp_update({"img-src": ["data:"]})(docs.ApiDocsView.as_view(url_name="api:schema"))
# ReDoc (templates/api/redoc.html hands it the nonce for the styles it injects): its icons are
# data: URLs and its search runs in a worker made from a blob: URL. One stylesheet it injects
# as the bundle loads, before it knows the nonce (perfect-scrollbar's), is allowed by the hash
# of its exact text, as is the empty element it starts as. A new bundle changes that text: the
# browser test (tests/security/test_pages_are_not_cached_and_locked_down.py) then fails.
REDOC_STYLE_HASHES = [
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",  # perfect-scrollbar's CSS
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty string
]
redoc_view = csp_update(
    {"img-src": ["data:"], "worker-src": ["'self'", "blob:"], "style-src": REDOC_STYLE_HASHES}
)(docs.ApiRedocView.as_view(url_name="api:schema"))

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", swagger_view, name="docs"),
    path("redoc/", redoc_view, name="redoc"),
    path("redoc/redoc.standalone.js", docs.redoc_bundle_view, name="redoc_bundle"),
    # staff
    path("v1/patients/", staff.PatientListView.as_view(), name="patients"),
    path("v1/patients/<id:patient_id>/", staff.PatientDetailView.as_view(), name="patient"),
    path("v1/patients/<id:patient_id>/chart/", staff.ChartView.as_view(), name="chart"),
    path(
        "v1/patients/<id:patient_id>/records/<str:record_type>/",
        staff.RecordListView.as_view(),
        name="records",
    ),
    path(
        "v1/records/<str:record_type>/<id:record_id>/",
        staff.RecordDetailView.as_view(),
        name="record",
    ),
    path(
        "v1/records/<str:record_type>/<id:record_id>/correct/",
        staff.RecordCorrectView.as_view(),
        name="record_correct",
    ),
    path("v1/shared/", staff.SharedView.as_view(), name="shared"),
    path("v1/access-requests/", staff.AccessRequestListView.as_view(), name="access_requests"),
    path("v1/break-glass/", staff.BreakGlassView.as_view(), name="break_glass"),
    # patients
    path("v1/me/registrations/", patient.MyRegistrationsView.as_view(), name="my_registrations"),
    path("v1/me/records/", patient.MyRecordsView.as_view(), name="my_records"),
    path("v1/me/access-log/", patient.MyAccessLogView.as_view(), name="my_access_log"),
    path("v1/me/consents/", patient.MyConsentsView.as_view(), name="my_consents"),
    path(
        "v1/me/consents/<uuid:consent_id>/revoke/",
        patient.MyConsentRevokeView.as_view(),
        name="my_consent_revoke",
    ),
    path(
        "v1/me/access-requests/",
        patient.MyAccessRequestsView.as_view(),
        name="my_access_requests",
    ),
    path(
        "v1/me/access-requests/<uuid:request_id>/decide/",
        patient.MyAccessRequestDecideView.as_view(),
        name="my_access_request_decide",
    ),
    path("v1/me/proxies/", patient.MyProxiesView.as_view(), name="my_proxies"),
    path(
        "v1/me/proxies/<uuid:grant_id>/accept/",
        patient.MyProxyAcceptView.as_view(),
        name="my_proxy_accept",
    ),
    path(
        "v1/me/proxies/<uuid:grant_id>/revoke/",
        patient.MyProxyRevokeView.as_view(),
        name="my_proxy_revoke",
    ),
]
