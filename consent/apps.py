from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent"

    def ready(self) -> None:
        from consent.models import AccessRequest, BreakGlass, Consent, ProxyGrant
        from ledger import subjects
        from portal.records.canonical import canonical

        def digestible(obj):
            # Bookkeeping columns (when a mail went out) are not what the events attest.
            content = canonical(obj)
            for name in getattr(obj, "LEDGER_EXCLUDE", ()):
                content.pop(name, None)
            return content

        for model in (Consent, AccessRequest, BreakGlass, ProxyGrant):
            subjects.register(model, digestible, key="row_uuid")
