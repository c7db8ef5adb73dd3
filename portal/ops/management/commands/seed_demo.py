from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.ops import demo
from portal.ops.progress import Progress
from portal.tenancy.models import Hospital
from portal.tenancy.scoping import unscoped


class Command(BaseCommand):
    help = "Create (or complete) the demo hospitals, staff, patients and records. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, default=12)
        parser.add_argument("--records-per-patient", type=int, default=10)
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when any hospital exists."
        )
        parser.add_argument(
            "--show-logins", action="store_true", help="Print the demo log-ins in any case."
        )

    def handle(self, *args, **options) -> None:
        if options["patients"] < 1 or options["records_per_patient"] < 0:
            raise CommandError("--patients must be at least 1 and --records-per-patient >= 0.")
        if options["if_empty"] and Hospital.objects.exists():
            self.stdout.write("Demo data already present; left as it is.")
            if options["show_logins"]:
                self.print_logins()
            return
        with unscoped(), Progress("Seeding patients", options["patients"]) as progress:
            demo.seed(
                patients=options["patients"],
                records_per_patient=options["records_per_patient"],
                progress=progress,
            )
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.print_logins()

    def print_logins(self) -> None:
        w = self.stdout.write
        w("  Demo log-ins (for the demo only; never use these on real data):")
        w(f"  password of every demo account: {demo.DEMO_PASSWORD}")
        w(f"  {'username':<18} {'role':<21} {'hospital':<20} TOTP secret")
        for login in demo.staff_logins():
            w(f"  {login.username:<18} {login.role:<21} {login.hospitals:<20} {login.totp_secret}")
        w(f"  {'patient1':<18} {'Patient':<21} {'both':<20} (two-factor optional)")
        w(f"  {'patient2, patient3…':<18} {'Patient':<21} {'one hospital each':<20}")
        w(
            "  Staff confirm with a 6-digit TOTP code: add the secret to an authenticator app, "
            "or print the current code with `make totp USER=username`."
        )
