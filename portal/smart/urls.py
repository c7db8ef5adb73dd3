"""SMART App Launch URLs: the OAuth endpoints (DOT's views, the consent screen ours) under
/oauth/ in DOT's own namespace (its views reverse their names there), and the portal's pages."""

from django.urls import path, re_path
from oauth2_provider import views as dot

from portal.smart import views

# Only what SMART needs: no DOT application-management pages, no device or implicit flows.
oauth_patterns = (
    [
        path("authorize/", views.SmartAuthorizationView.as_view(), name="authorize"),
        path("token/", dot.TokenView.as_view(), name="token"),
        path("revoke_token/", dot.RevokeTokenView.as_view(), name="revoke-token"),
        path("introspect/", views.SmartIntrospectView.as_view(), name="introspect"),
        re_path(
            r"^\.well-known/openid-configuration/?$",
            dot.ConnectDiscoveryInfoView.as_view(),
            name="oidc-connect-discovery-info",
        ),
        path(".well-known/jwks.json", dot.JwksInfoView.as_view(), name="jwks-info"),
        path("userinfo/", dot.UserInfoView.as_view(), name="user-info"),
    ],
    "oauth2_provider",
)

app_name = "smart"

urlpatterns = [
    path("patient/apps/", views.connected_apps_view, name="connected_apps"),
    path(
        "patient/apps/<str:authorization_id>/disconnect/",
        views.disconnect_view,
        name="disconnect",
    ),
    path("provider/patients/<int:patient_id>/apps/", views.ehr_launch_view, name="ehr_launch"),
    path("smart-demo/", views.demo_app_view, {"page": "launch"}, name="demo_launch"),
    path("smart-demo/app/", views.demo_app_view, {"page": "index"}, name="demo_index"),
]
