from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from portal.api.services import DEFAULT_DAYS, token_issue


class Command(BaseCommand):
    help = "Issue an API token for a user and print it (once: only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="issued by an administrator")
        parser.add_argument("--days", type=int, default=DEFAULT_DAYS)

    def handle(self, *args, username, name, days, **options):
        user = get_user_model()._default_manager.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user named {username!r}.")
        try:
            token, raw = token_issue(user=user, name=name, days=days)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stderr.write(
            f"Token {token.prefix}… for {username}, expires {token.expires_at:%Y-%m-%d}. "
            "It is shown only now:"
        )
        self.stdout.write(raw)
