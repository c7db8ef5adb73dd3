from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from oauth2_provider.models import get_application_model

from portal.smart.models import SmartApp

pytestmark = pytest.mark.django_db


def test_smart_app_register_prints_the_client_id_and_the_secret_once():
    out = StringIO()
    call_command(
        "smart_app_register", "--name", "Sleep Tracker", "--redirect-uri",
        "https://sleep.example/cb", "--confidential", "--launch-url",
        "https://sleep.example/launch", stdout=out,
    )  # fmt: skip
    app = get_application_model().objects.get(name="Sleep Tracker")
    assert f"client_id: {app.client_id}" in out.getvalue()
    secret = out.getvalue().split("client_secret: ")[1].split()[0]
    assert app.client_secret != secret  # DOT keeps only its hash
    assert app.client_type == "confidential" and app.algorithm == "RS256"
    assert SmartApp.objects.get(application=app).ehr_launch is True


def test_smart_app_register_refuses_a_bad_redirect_uri():
    with pytest.raises(CommandError):
        call_command("smart_app_register", "--name", "X", "--redirect-uri", "ftp://x/cb")


def test_the_demo_app_is_registered_once_and_follows_the_demo_address():
    out = StringIO()
    call_command("smart_demo_app", "--base-url", "http://127.0.0.1:8000", stdout=out)
    call_command("smart_demo_app", "--base-url", "http://localhost:9000", stdout=out)
    app = SmartApp.objects.select_related("application").get()
    assert app.application.redirect_uris == "http://localhost:9000/smart-demo/app/"
    assert app.launch_url.startswith("http://localhost:9000/smart-demo/?client_id=")
    assert "smart-configuration" in out.getvalue()
