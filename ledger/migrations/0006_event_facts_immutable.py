"""An event's facts are fixed once written, in the database itself: an UPDATE of ledger_event
may only anchor the event (status pending -> anchored, anchored_at set once), and DELETE and
TRUNCATE are refused, whoever connects. What the patient and the auditors are shown is read
from these columns, and verify_ledger compares them with the anchored leaf.

PostgreSQL and SQLite (the demo) both get the same triggers."""

from django.db import migrations

# Every column but status and anchored_at (the only ones anchoring sets).
FACTS = (
    "id", "event_id", "kind", "hospital_id", "subject_type", "subject_id", "patient_id",
    "actor_id", "actor_hospital_id", "recorded_at", "digest", "attrs", "leaf",
)  # fmt: skip
ANCHORED = 1

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_event is append-only: an event''s facts are fixed once written '
        '(% refused; anchoring may only set status and anchored_at, once)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


# Any UPDATE naming a fact column is refused, whatever the value: `UPDATE OF` fires only when
# a listed column is a target, so anchoring's own UPDATE (about 20,000 rows a second, of
# status and anchored_at only) never runs it. That UPDATE is checked by a WHEN clause, which
# the executor evaluates without calling a function.
UPDATE_OF_FACTS = ", ".join(FACTS)


def _not_forward(ne: str) -> str:
    """An UPDATE of status/anchored_at that is not the one step anchoring takes; `ne` is the
    null-safe inequality of the dialect."""
    return (
        f"NEW.status NOT IN (0, {ANCHORED}) "
        f"OR (OLD.status = {ANCHORED} AND NEW.status {ne} {ANCHORED}) "
        f"OR (OLD.anchored_at IS NOT NULL AND OLD.anchored_at {ne} NEW.anchored_at) "
        f"OR (NEW.status = {ANCHORED} AND NEW.anchored_at IS NULL)"
    )


SQLITE_MESSAGE = (
    "'ledger_event is append-only: an event''s facts are fixed once written "
    "(anchoring may only set status and anchored_at, once)'"
)
SQLITE_TRIGGERS = {
    "ledger_event_facts_immutable": (
        f"CREATE TRIGGER ledger_event_facts_immutable BEFORE UPDATE OF {UPDATE_OF_FACTS} "
        f"ON ledger_event FOR EACH ROW BEGIN SELECT RAISE(ABORT, {SQLITE_MESSAGE}); END"
    ),
    "ledger_event_anchoring_forward": (
        "CREATE TRIGGER ledger_event_anchoring_forward BEFORE UPDATE OF status, anchored_at "
        f"ON ledger_event FOR EACH ROW WHEN {_not_forward('IS NOT')} "
        f"BEGIN SELECT RAISE(ABORT, {SQLITE_MESSAGE}); END"
    ),
    "ledger_event_no_delete": (
        "CREATE TRIGGER ledger_event_no_delete BEFORE DELETE ON ledger_event "
        f"FOR EACH ROW BEGIN SELECT RAISE(ABORT, {SQLITE_MESSAGE}); END"
    ),
}


def install_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION, params=None)  # the body has a literal % placeholder
        schema_editor.execute(
            f"CREATE TRIGGER ledger_event_facts_immutable BEFORE UPDATE OF {UPDATE_OF_FACTS} "
            "ON ledger_event FOR EACH ROW EXECUTE FUNCTION ledger_refuse_event_change()"
        )
        schema_editor.execute(
            "CREATE TRIGGER ledger_event_anchoring_forward BEFORE UPDATE OF status, anchored_at "
            f"ON ledger_event FOR EACH ROW WHEN ({_not_forward('IS DISTINCT FROM')}) "
            "EXECUTE FUNCTION ledger_refuse_event_change()"
        )
        # ledger_refuse_change() is 0002's: the log tables' own refusal.
        schema_editor.execute(
            "CREATE TRIGGER ledger_event_no_delete BEFORE DELETE ON ledger_event "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        schema_editor.execute(
            "CREATE TRIGGER ledger_event_no_truncate BEFORE TRUNCATE ON ledger_event "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
    elif vendor == "sqlite":
        for sql in SQLITE_TRIGGERS.values():
            schema_editor.execute(sql, params=None)


def remove_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        return
    on = " ON ledger_event" if vendor == "postgresql" else ""
    for name in SQLITE_TRIGGERS:  # the same names on both
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}{on}")
    if vendor == "postgresql":
        schema_editor.execute(f"DROP TRIGGER IF EXISTS ledger_event_no_truncate{on}")
        schema_editor.execute("DROP FUNCTION IF EXISTS ledger_refuse_event_change()")


class Migration(migrations.Migration):
    dependencies = [("ledger", "0005_event_actor_hospital")]

    operations = [migrations.RunPython(install_triggers, remove_triggers)]
