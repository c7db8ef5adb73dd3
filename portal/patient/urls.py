from django.urls import path

from portal.patient import views

app_name = "patient"

urlpatterns = [
    path("", views.home_view, name="home"),
    path("records/", views.records_view, name="records"),
    path("access/", views.access_log_view, name="access_log"),
    path("access/<str:event_id>/verify/", views.event_verify_view, name="event_verify"),
    path("consents/", views.consents_view, name="consents"),
    path("consents/new/", views.consent_new_view, name="consent_new"),
    path("consents/<str:consent_id>/revoke/", views.consent_revoke_view, name="consent_revoke"),
    path("requests/", views.requests_view, name="requests"),
    path("requests/<str:request_id>/", views.request_decide_view, name="request_decide"),
    path("proxies/", views.proxies_view, name="proxies"),
    path("proxies/<str:grant_id>/accept/", views.proxy_accept_view, name="proxy_accept"),
    path("proxies/<str:grant_id>/revoke/", views.proxy_revoke_view, name="proxy_revoke"),
    path("proxies/<str:grant_id>/records/", views.proxy_records_view, name="proxy_records"),
    path("documents/<str:document_id>/", views.document_download_view, name="document_download"),
    path(
        "proxies/<str:grant_id>/documents/<str:document_id>/",
        views.proxy_document_download_view,
        name="proxy_document_download",
    ),
    path("export.json", views.export_json_view, name="export_json"),
    path("export/", views.export_print_view, name="export_print"),
]
