from django.apps import AppConfig


class SmartConfig(AppConfig):
    name = "portal.smart"
    label = "smart"
    verbose_name = "SMART apps"

    def ready(self) -> None:
        from ledger import subjects
        from portal.records.canonical import canonical
        from portal.smart.models import SmartAuthorization

        # An app's authorization grants access: it is accounted for row by row (authorized,
        # then revoked), like consents. DOT's token rows grant nothing without a live one.
        subjects.register(SmartAuthorization, canonical, key="row_uuid")
