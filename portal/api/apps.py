from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "portal.api"
    label = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        from ledger import subjects
        from portal.api import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from portal.api.models import ApiToken
        from portal.api.services import token_canonical

        # verify_ledger re-digests a token against its last event: an audience or a
        # two-factor flag widened in the database behind the application's back is named.
        subjects.register(ApiToken, token_canonical)
