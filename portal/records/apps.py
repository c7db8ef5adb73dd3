from django.apps import AppConfig


class RecordsConfig(AppConfig):
    name = "portal.records"
    label = "records"
    verbose_name = "Patients and records"

    def ready(self) -> None:
        from ledger import subjects
        from portal.records import canonical
        from portal.records.models import Observation, Patient

        subjects.register(Patient, canonical.patient)
        subjects.register(Observation, canonical.observation)
