from django.apps import AppConfig


class RecordsConfig(AppConfig):
    name = "portal.records"
    label = "records"
    verbose_name = "Patients and records"

    def ready(self) -> None:
        from ledger import subjects
        from ledger.selectors import event_readers_register
        from portal.records.audit import event_readable_by
        from portal.records.canonical import canonical
        from portal.records.crypto import subject_digest_key
        from portal.records.grants import GRANT_MODELS, GRANT_REMOVED
        from portal.records.models import RECORD_MODELS, CareTeamMember, Patient

        # Subject digests are keyed (per hospital, from its data key): the ledger holds none.
        subjects.digest_key_register(subject_digest_key)
        for model in (Patient, *RECORD_MODELS):
            # Rows are named by their row_uuid in the ledger: known before the INSERT.
            subjects.register(model, canonical, key="row_uuid")
        # What grants access is accounted for row by row too: each permission row and care
        # team entry has its own events, down to the one that removed it.
        for grant_model in GRANT_MODELS:
            subjects.register(grant_model, canonical, removed=(GRANT_REMOVED,))
        subjects.register(CareTeamMember, canonical, removed=("careteam.removed",))
        # Who may see a ledger event beyond the ledger's own rule (receipts, AuditEvent).
        event_readers_register(event_readable_by)
