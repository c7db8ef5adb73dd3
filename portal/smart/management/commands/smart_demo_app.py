from django.core.management.base import BaseCommand

from portal.smart.services import smart_demo_app_ensure


class Command(BaseCommand):
    help = "Register (or find) the demo SMART app for the portal at --base-url; say how to try it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, **options) -> None:
        base = options["base_url"].rstrip("/")
        app = smart_demo_app_ensure(base_url=base)
        w = self.stdout.write
        w("  SMART App Launch demo (a public client, PKCE S256):")
        w(f"    client_id:      {app.client_id}")
        w(f"    redirect URI:   {base}/smart-demo/app/")
        w(f"    configuration:  {base}/fhir/R4/.well-known/smart-configuration")
        w(f"    try it:         {base}/smart-demo/?client_id={app.client_id}")
        w("                    (sign in as patient1, allow, and the app lists your observations)")
        w("    or as staff: open a chart, “Launch app”, then “Launch Demo SMART app”.")
