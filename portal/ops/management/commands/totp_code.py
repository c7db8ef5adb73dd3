from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_otp.oath import totp

from portal.accounts.selectors import totp_device_confirmed


class Command(BaseCommand):
    help = "Print the current TOTP code of a demo account (refused unless DEBUG=true)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("totp_code is for the local demo only (DEBUG=true).")
        user = get_user_model()._default_manager.filter(username=options["username"]).first()
        device = totp_device_confirmed(user=user) if user else None
        if device is None:
            raise CommandError(f"No confirmed TOTP device for {options['username']!r}.")
        code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
        self.stdout.write(f"{code:0{device.digits}d}")
