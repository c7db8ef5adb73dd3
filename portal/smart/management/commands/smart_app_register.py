from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from portal.smart.services import smart_app_register


class Command(BaseCommand):
    help = "Register a SMART app (an OAuth client): prints its client id, and its secret once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--redirect-uri", action="append", required=True, dest="redirect_uris")
        parser.add_argument("--confidential", action="store_true", help="It keeps a secret.")
        parser.add_argument("--launch-url", default="", help="Its EHR launch page.")

    def handle(self, *args, **options) -> None:
        try:
            app = smart_app_register(
                name=options["name"],
                redirect_uris=options["redirect_uris"],
                confidential=options["confidential"],
                launch_url=options["launch_url"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"client_id: {app.client_id}")
        if app.client_secret:
            self.stdout.write(f"client_secret: {app.client_secret}  (shown once: keep it now)")
