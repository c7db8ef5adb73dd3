from django.urls import path, re_path

from portal.fhir import views

app_name = "fhir"

urlpatterns = [
    path("", views.root_view, name="root"),
    path("metadata", views.metadata_view, name="metadata"),
    path("Patient", views.patient_search_view, name="patient_search"),
    # Before the reads: FHIR ids never start with "_".
    path("<str:resource_type>/_search", views.search_post_view, name="search_post"),
    path("Patient/<str:resource_id>", views.patient_read_view, name="patient_read"),
    path(
        "Patient/<str:resource_id>/$everything",
        views.patient_everything_view,
        name="patient_everything",
    ),
    path("<str:resource_type>", views.search_view, name="search"),
    path("<str:resource_type>/<str:resource_id>", views.read_view, name="read"),
    re_path(r"^(?P<rest>.+)$", views.not_found_view, name="not_found"),
]
