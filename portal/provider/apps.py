from django.apps import AppConfig


class ProviderConfig(AppConfig):
    name = "portal.provider"
    label = "provider"
    verbose_name = "Provider portal"
