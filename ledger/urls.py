from django.urls import path

from ledger import views

app_name = "ledger"

urlpatterns = [
    path("key", views.public_key_view, name="public_key"),
    path("checkpoint", views.checkpoint_latest_view, name="checkpoint"),
    path("events/<str:event_id>/receipt", views.receipt_view, name="receipt"),
    path("consistency", views.consistency_view, name="consistency"),
]
