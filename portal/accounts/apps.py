from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "portal.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from ledger import subjects
        from portal.accounts.models import TOTPDevice
        from portal.accounts.services import DEVICE_REMOVED, device_canonical

        # A sign-in device is a second factor: verify_ledger accounts for every device row.
        subjects.register(TOTPDevice, device_canonical, key="row_uuid", removed=(DEVICE_REMOVED,))
