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
            # Rows are named by their row_uuid in the ledger: known before the INSERT.
            subjects.register(model, canonical, key="row_uuid")
