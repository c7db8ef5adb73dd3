from django.urls import path

from portal.api import pages

app_name = "api_tokens"

urlpatterns = [
    path("", pages.tokens_view, name="list"),
    path("<int:token_id>/revoke/", pages.token_revoke_view, name="revoke"),
]
