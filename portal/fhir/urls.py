from django.urls import path, re_path

from portal.fhir import views

app_name = "fhir"

urlpatterns = [
    path("", views.RootView.as_view(), name="root"),
    path("metadata", views.MetadataView.as_view(), name="metadata"),
    path("Patient", views.PatientSearchView.as_view(), name="patient_search"),
    # Before the reads: FHIR ids never start with "_".
    path("<str:resource_type>/_search", views.SearchPostView.as_view(), name="search_post"),
    path("Patient/<str:resource_id>", views.PatientReadView.as_view(), name="patient_read"),
    path(
        "Patient/<str:resource_id>/$everything",
        views.PatientEverythingView.as_view(),
        name="patient_everything",
    ),
    path("<str:resource_type>", views.SearchView.as_view(), name="search"),
    path("<str:resource_type>/<str:resource_id>", views.ReadView.as_view(), name="read"),
    path(
        "<str:resource_type>/<str:resource_id>/_history",
        views.HistoryView.as_view(),
        name="history",
    ),
    path(
        "<str:resource_type>/<str:resource_id>/_history/<str:vid>",
        views.VersionReadView.as_view(),
        name="vread",
    ),
    re_path(r"^(?P<rest>.+)$", views.NotFoundView.as_view(), name="not_found"),
]
