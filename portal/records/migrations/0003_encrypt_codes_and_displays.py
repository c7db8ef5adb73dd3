"""Encrypt the records' codes, displays, units, encounter classes and types, condition clinical
statuses, allergy criticalities and document digests, which were clear text in the database.

Each column is converted in place of its name, so that every value is encrypted under its
final field name (the associated data binds a value to its hospital, model, field and row):
the clear column is renamed `<name>_clear`, the encrypted column added under `<name>`, every
row's value encrypted in batches of BATCH rows (nothing is printed), then the clear column is
dropped. Observations also get `code_index`, the keyed token of their code that the
trend charts partition by. The ledger digests each record's decrypted values, which are the
values the clear columns held: every record digests the same before and after.

Reversible: backwards, the values are decrypted into clear columns again.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import migrations, models

import portal.records.fields
from portal.records.fields import BlindIndexField

BATCH = 500

CODE_PAD, TEXT_PAD, STATUS_PAD = 48, 32, 32


def _clear(**kwargs) -> Callable[..., models.Field]:
    return lambda **extra: models.CharField(**{**kwargs, **extra})


def _encrypted(**kwargs) -> Callable[..., models.Field]:
    return lambda **extra: portal.records.fields.EncryptedCharField(**{**kwargs, **extra})


# model -> field -> (its clear definition, as 0001 made it; its encrypted definition)
FIELDS: dict[str, dict[str, tuple[Callable[..., models.Field], Callable[..., models.Field]]]] = {
    "encounter": {
        "class_code": (
            _clear(default="AMB", max_length=20),
            _encrypted(default="AMB", max_length=20, pad_to=STATUS_PAD),
        ),
        "type_code": (
            _clear(blank=True, default="", max_length=40),
            _encrypted(blank=True, max_length=40, pad_to=CODE_PAD),
        ),
        "type_display": (
            _clear(blank=True, default="", max_length=200),
            _encrypted(blank=True, max_length=200, pad_to=TEXT_PAD),
        ),
    },
    "observation": {
        "code": (
            _clear(max_length=20, verbose_name="LOINC code"),
            _encrypted(max_length=20, pad_to=CODE_PAD, verbose_name="LOINC code"),
        ),
        "display": (_clear(max_length=200), _encrypted(max_length=200, pad_to=TEXT_PAD)),
        "unit": (_clear(max_length=32), _encrypted(max_length=32, pad_to=TEXT_PAD)),
    },
    "condition": {
        "code": (_clear(max_length=40), _encrypted(max_length=40, pad_to=CODE_PAD)),
        "display": (_clear(max_length=200), _encrypted(max_length=200, pad_to=TEXT_PAD)),
        "clinical_status": (
            _clear(default="active", max_length=20),
            _encrypted(default="active", max_length=20, pad_to=STATUS_PAD),
        ),
    },
    "medicationrequest": {
        "code": (_clear(max_length=40), _encrypted(max_length=40, pad_to=CODE_PAD)),
        "display": (_clear(max_length=200), _encrypted(max_length=200, pad_to=TEXT_PAD)),
    },
    "allergyintolerance": {
        "code": (_clear(max_length=40), _encrypted(max_length=40, pad_to=CODE_PAD)),
        "display": (_clear(max_length=200), _encrypted(max_length=200, pad_to=TEXT_PAD)),
        "criticality": (
            _clear(default="unable-to-assess", max_length=20),
            _encrypted(default="unable-to-assess", max_length=20, pad_to=STATUS_PAD),
        ),
    },
    "immunization": {
        "vaccine_code": (_clear(max_length=20), _encrypted(max_length=20, pad_to=CODE_PAD)),
        "display": (_clear(max_length=200), _encrypted(max_length=200, pad_to=TEXT_PAD)),
    },
    "procedure": {
        "code": (_clear(max_length=40), _encrypted(max_length=40, pad_to=CODE_PAD)),
        "display": (_clear(max_length=200), _encrypted(max_length=200, pad_to=TEXT_PAD)),
    },
    "document": {
        "sha256": (_clear(max_length=64), _encrypted(max_length=64)),
    },
}


def _write(connection, model, values: dict[int, dict[str, object]], fields: list) -> None:
    """The batch's new values, one prepared UPDATE per row (executemany: a pipeline on
    PostgreSQL, one compiled statement on SQLite): a CASE per column over the batch's keys
    took the database quadratic time."""
    qn = connection.ops.quote_name
    sets = ", ".join(f"{qn(f.column)} = %s" for f in fields)
    table, key = qn(model._meta.db_table), qn(model._meta.pk.column)
    sql = f"UPDATE {table} SET {sets} WHERE {key} = %s"  # noqa: S608 - names from the models
    params = [
        [bytes(v) if isinstance(v, bytes) else v for v in (row[f.attname] for f in fields)] + [pk]
        for pk, row in values.items()
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _convert(apps, schema_editor, *, forward: bool) -> None:
    alias = schema_editor.connection.alias
    for model_name, names in FIELDS.items():
        model = apps.get_model("records", model_name)
        opts = model._meta
        encrypted = [opts.get_field(name) for name in names]
        clear = [opts.get_field(f"{name}_clear") for name in names]
        tokens = [
            f
            for f in opts.local_concrete_fields
            if isinstance(f, BlindIndexField) and f.source in names
        ]
        read = clear if forward else encrypted
        # Only what the conversion reads: the row's binding, the tokens' scope, the values.
        only = {"hospital", "row_uuid", *(f.name for f in read)}
        only |= {opts.get_field(t.scope).name for t in tokens if t.scope}
        written = [*encrypted, *tokens] if forward else clear
        manager = model._base_manager.db_manager(alias)
        last = None
        while True:
            rows = manager.order_by("pk").only(*only)
            if last is not None:
                rows = rows.filter(pk__gt=last)
            batch = list(rows[:BATCH])
            if not batch:
                break
            values: dict[int, dict[str, object]] = {}
            for obj in batch:
                if forward:
                    for new, old in zip(encrypted, clear, strict=True):
                        setattr(obj, new.attname, getattr(obj, old.attname))
                    # pre_save gives the blob bound to this row and field (and the token).
                    row = {f.attname: f.pre_save(obj, add=False) for f in [*tokens, *encrypted]}
                else:
                    row = {
                        old.attname: getattr(obj, new.attname)
                        for new, old in zip(encrypted, clear, strict=True)
                    }
                values[obj.pk] = row
            _write(schema_editor.connection, model, values, written)
            last = batch[-1].pk


def encrypt_clear_values(apps, schema_editor) -> None:
    _convert(apps, schema_editor, forward=True)


def decrypt_into_clear_values(apps, schema_editor) -> None:
    _convert(apps, schema_editor, forward=False)


def _operations() -> list[migrations.operations.base.Operation]:
    before: list = [
        migrations.RemoveIndex(model_name="observation", name="records_obs_patient_5ea711_idx")
    ]
    after: list = []
    for model_name, fields in FIELDS.items():
        for name, (clear, encrypted) in fields.items():
            before += [
                # Nullable first, so that going backwards can add the clear column again.
                migrations.AlterField(model_name=model_name, name=name, field=clear(null=True)),
                migrations.RenameField(
                    model_name=model_name, old_name=name, new_name=f"{name}_clear"
                ),
                migrations.AddField(model_name=model_name, name=name, field=encrypted(null=True)),
            ]
            after += [
                migrations.RemoveField(model_name=model_name, name=f"{name}_clear"),
                migrations.AlterField(model_name=model_name, name=name, field=encrypted()),
            ]
    before.append(
        migrations.AddField(
            model_name="observation",
            name="code_index",
            field=BlindIndexField(
                normalize=False, purpose="observation_code", scope="patient_id", source="code"
            ),
        )
    )
    after.append(
        migrations.AddIndex(
            model_name="observation",
            index=models.Index(
                fields=["patient", "code_index", "effective_at"],
                name="records_obs_patient_code_idx",
            ),
        )
    )
    return [
        *before,
        migrations.RunPython(encrypt_clear_values, decrypt_into_clear_values),
        *after,
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0002_grant_sources_and_categories"),
    ]

    operations = _operations()
