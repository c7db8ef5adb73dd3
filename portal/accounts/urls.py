from django.urls import path

from portal.accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.home_view, name="home"),
    path("accounts/login/", views.login_view, name="login"),
    path("accounts/login/verify/", views.totp_verify_view, name="totp_verify"),
    path("accounts/login/setup-2fa/", views.totp_setup_view, name="totp_setup"),
    path("accounts/logout/", views.logout_view, name="logout"),
    path("accounts/hospital/", views.switch_hospital_view, name="switch_hospital"),
]
