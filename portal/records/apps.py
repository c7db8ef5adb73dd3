from django.apps import AppConfig


class RecordsConfig(AppConfig):
    name = "portal.records"
    label = "records"
    verbose_name = "Patients and records"

    def ready(self) -> None:
        from ledger import subjects
        from portal.records.canonical import canonical
        from portal.records.models import RECORD_MODELS, Patient

        for model in (Patient, *RECORD_MODELS):
            subjects.register(model, canonical)
