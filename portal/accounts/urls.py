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
    path("accounts/two-factor/", views.two_factor_view, name="two_factor"),
    path("accounts/two-factor/add/", views.two_factor_add_view, name="two_factor_add"),
    path(
        "accounts/two-factor/<int:device_id>/remove/",
        views.two_factor_remove_view,
        name="two_factor_remove",
    ),
    path("accounts/two-factor/off/", views.two_factor_off_view, name="two_factor_off"),
]
