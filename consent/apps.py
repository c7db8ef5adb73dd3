from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent"

    def ready(self) -> None:
        from consent.models import (
            AccessRequest,
            BreakGlass,
            BreakGlassFailure,
            Consent,
            ProxyGrant,
            ProxyInvitation,
        )
        from ledger import subjects
        from portal.records.canonical import canonical

        def digestible(obj):
            # Columns the events do not attest: bookkeeping (when a mail went out), and an
            # access request's addressee, which its requester must not be able to test.
            content = canonical(obj)
            for name in getattr(obj, "LEDGER_EXCLUDE", ()):
                content.pop(name, None)
            return content

        for model in (
            Consent, AccessRequest, BreakGlass, BreakGlassFailure, ProxyGrant, ProxyInvitation,
        ):  # fmt: skip
            subjects.register(model, digestible, key="row_uuid")
