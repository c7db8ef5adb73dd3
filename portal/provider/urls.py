from django.urls import path

from portal.provider import views

app_name = "provider"

urlpatterns = [
    path("", views.home_view, name="home"),
    path("patients/new/", views.patient_new_view, name="patient_new"),
    path("shared/", views.shared_view, name="shared"),
    path("access-requests/new/", views.access_request_new_view, name="access_request_new"),
    path("break-glass/", views.break_glass_view, name="break_glass"),
    path("break-glass/<str:glass_id>/end/", views.break_glass_end_view, name="break_glass_end"),
    path("patients/<int:patient_id>/", views.chart_view, name="chart"),
    path(
        "patients/<int:patient_id>/observations/new/",
        views.observation_new_view,
        name="observation_new",
    ),
    path(
        "patients/<int:patient_id>/blood-pressure/new/",
        views.blood_pressure_new_view,
        name="blood_pressure_new",
    ),
    path("patients/<int:patient_id>/notes/new/", views.note_new_view, name="note_new"),
    path("patients/<int:patient_id>/care-team/", views.care_team_view, name="care_team"),
    path(
        "patients/<int:patient_id>/care-team/<int:user_id>/remove/",
        views.care_team_remove_view,
        name="care_team_remove",
    ),
    path(
        "patients/<int:patient_id>/documents/new/",
        views.document_upload_view,
        name="document_upload",
    ),
    path(
        "documents/<int:record_id>/download/",
        views.document_download_view,
        name="document_download",
    ),
    path(
        "records/observation/<int:record_id>/correct/",
        views.observation_correct_view,
        name="observation_correct",
    ),
    path(
        "patients/<int:patient_id>/records/<str:record_type>/new/",
        views.record_new_view,
        name="record_new",
    ),
    path(
        "records/<str:record_type>/<int:record_id>/correct/",
        views.record_correct_view,
        name="record_correct",
    ),
    path("records/<str:record_type>/<int:record_id>/", views.record_view, name="record"),
]
