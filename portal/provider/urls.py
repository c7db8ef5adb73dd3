from django.urls import path

from portal.provider import views

app_name = "provider"

urlpatterns = [
    path("", views.home_view, name="home"),
]
