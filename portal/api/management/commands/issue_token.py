from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from portal.api.models import TokenAudience
from portal.api.services import DEFAULT_DAYS, token_issue


class Command(BaseCommand):
    help = (
        "Issue an API token for a user and print it (once: only its hash is stored). "
        "--audience says whom it acts as: 'patient' (the account's own records) or 'staff' "
        "(hospital work; the user must have an active membership). A staff token must be "
        "issued after two factors, and the shell has no second factor of the user's: pass "
        "--counts-as-two-factor to vouch that you checked the person's identity yourself "
        "(recorded as a two-factor issue in the token and in the ledger); without it a "
        "staff token is refused. A patient token is recorded as not two-factor unless you "
        "pass the flag."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--audience", required=True, choices=TokenAudience.values)
        parser.add_argument(
            "--counts-as-two-factor", action="store_true",
            help="You checked the person's identity yourself: the token counts as issued "
            "after two factors (required for --audience staff).",
        )  # fmt: skip
        parser.add_argument("--name", default="issued by an administrator")
        parser.add_argument("--days", type=int, default=DEFAULT_DAYS)

    def handle(self, *args, username, audience, counts_as_two_factor, name, days, **options):
        user = get_user_model()._default_manager.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user named {username!r}.")
        if audience == TokenAudience.STAFF and not counts_as_two_factor:
            raise CommandError(
                "A staff token is issued only after two factors: pass --counts-as-two-factor "
                "once you have checked the person's identity yourself."
            )
        try:
            token, raw = token_issue(
                user=user, name=name, days=days, audience=audience,
                two_factor=counts_as_two_factor,
            )  # fmt: skip
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stderr.write(
            f"Token {token.prefix}… for {username}, acting as {audience}"
            f"{' (two factors vouched for)' if token.two_factor else ''}, expires "
            f"{token.expires_at:%Y-%m-%d}. It is shown only now:"
        )
        self.stdout.write(raw)
