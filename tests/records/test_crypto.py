"""Field encryption: the key ring, data keys, AES-GCM blobs, blind indexes and the fields.

The field tests use `EncryptedSample`, a test-only model (app label "records", its own table
created here with the schema editor, since the test settings cannot list a test app). When
`Patient` uses the encrypted fields, the raw-SQL test covers it too.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import uuid
from decimal import Decimal

import pytest
from django import forms
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import connection, models, transaction
from django.test.utils import isolate_apps

from portal.records import crypto
from portal.records.crypto import DecryptionError, KeyRing
from portal.records.fields import (
    Ciphertext,
    EncryptedBinaryField,
    EncryptedCharField,
    EncryptedDateField,
    EncryptedDecimalField,
    EncryptedField,
    EncryptedTextField,
    encrypted_fields,
)
from portal.records.keys_models import HospitalKey
from portal.records.models import Patient
from portal.tenancy.models import Hospital
from tests import factories


class EncryptedSample(models.Model):
    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    name = EncryptedCharField(max_length=20)
    note = EncryptedTextField(blank=True)
    born = EncryptedDateField(null=True, blank=True)
    value = EncryptedDecimalField(max_digits=8, decimal_places=3, null=True, blank=True)
    content = EncryptedBinaryField(null=True)
    name_index = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        app_label = "records"
        db_table = "records_test_encrypted_sample"

    def __str__(self) -> str:
        return f"sample {self.pk}"


def ensure_sample_table(django_db_blocker) -> None:
    """Create the test model's table once per test database (outside any transaction, which
    SQLite's schema editor needs)."""
    with django_db_blocker.unblock():
        if EncryptedSample._meta.db_table not in connection.introspection.table_names():
            with connection.schema_editor() as editor:
                editor.create_model(EncryptedSample)


@pytest.fixture(scope="module", autouse=True)
def _sample_table(django_db_setup, django_db_blocker):
    ensure_sample_table(django_db_blocker)


def make_sample(hospital, **kwargs) -> EncryptedSample:
    values = {
        "name": "Ada Lovelace",
        "note": "Suspected appendicitis; pain since Tuesday.",
        "born": dt.date(1815, 12, 10),
        "value": Decimal("37.25"),
        "content": b"%PDF-1.7 discharge letter",
    }
    values.update(kwargs)
    return EncryptedSample.objects.create(hospital=hospital, **values)


def raw_column(model, field_name: str, pk) -> bytes | None:
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field_name).column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        value = cursor.fetchone()[0]
    return None if value is None else bytes(value)


def write_raw(model, field_name: str, pk, blob: bytes) -> None:
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field_name).column)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [blob, pk])


def fresh(obj: models.Model) -> models.Model:
    return type(obj)._base_manager.get(pk=obj.pk)


# --- key ring -----------------------------------------------------------------------------


def b64key(raw: bytes | None = None) -> str:
    return base64.b64encode(raw or os.urandom(32)).decode()


def test_key_ring_first_entry_is_current():
    k1, k2 = os.urandom(32), os.urandom(32)
    ring = KeyRing.parse(f"k2:{b64key(k2)}, k1:{b64key(k1)}")
    assert ring.current_id == "k2"
    assert ring.key("k2") == k2 and ring.key("k1") == k1
    assert "k1" in ring and "k3" not in ring
    assert b64key(k1) not in repr(ring)


def test_key_ring_from_settings(settings):
    key = os.urandom(32)
    settings.FIELD_ENCRYPTION_KEYS = f"main:{b64key(key)}"
    assert KeyRing.from_settings().key("main") == key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "k1",
        "k1:",
        "k1:not base64!",
        "k1:" + base64.b64encode(b"short").decode(),
        "bad id:" + base64.b64encode(b"x" * 32).decode(),
        "k1:{k},k1:{k}",
        "k1:{k},",
    ],
)
def test_key_ring_refuses_malformed(text):
    material = base64.b64encode(b"s" * 32).decode()
    with pytest.raises(ImproperlyConfigured) as info:
        KeyRing.parse(text.replace("{k}", material))
    assert material not in str(info.value)


def test_key_ring_unknown_id():
    ring = KeyRing.parse(f"k1:{b64key()}")
    with pytest.raises(ImproperlyConfigured, match="'k9' is not in FIELD_ENCRYPTION_KEYS"):
        ring.key("k9")


# --- data keys ----------------------------------------------------------------------------


def test_first_use_creates_one_current_key_per_hospital(hospital_a, hospital_b):
    version_a, dek_a = crypto.data_key(hospital_id=hospital_a.pk)
    version_b, dek_b = crypto.data_key(hospital_id=hospital_b.pk)
    assert (version_a, version_b) == (1, 1)
    assert len(dek_a) == 32 and dek_a != dek_b
    assert crypto.data_key(hospital_id=hospital_a.pk) == (1, dek_a)
    assert crypto.data_key(hospital_id=hospital_a.pk, version=1) == (1, dek_a)
    rows = HospitalKey.objects.filter(hospital__in=[hospital_a, hospital_b])
    assert [(r.hospital_id, r.version, r.is_current) for r in rows] == [
        (hospital_a.pk, 1, True),
        (hospital_b.pk, 1, True),
    ]
    # Stored wrapped: the DEK itself is nowhere in the row.
    for row in rows:
        assert dek_a not in bytes(row.wrapped_key) and dek_b not in bytes(row.wrapped_key)
        assert row.master_key_id == KeyRing.from_settings().current_id


def test_first_key_creation_survives_a_lost_race(hospital_a, hospital_b):
    _version, dek = crypto.data_key(hospital_id=hospital_a.pk)
    # The loser of a race: its insert violates the unique constraint inside a savepoint, and
    # it reads the winner's key; the surrounding transaction stays usable.
    row, created_dek = crypto._create_first_key(hospital_a.pk)
    assert created_dek is None and row.version == 1
    crypto.clear_key_cache()
    assert crypto.data_key(hospital_id=hospital_a.pk) == (1, dek)
    assert HospitalKey.objects.filter(hospital=hospital_a).count() == 1


def test_a_data_key_rolled_back_with_its_savepoint_is_never_used_again(hospital_a, hospital_b):
    """A key this process created in a savepoint that rolled back is forgotten, even when
    another process then creates the same version: values are encrypted and decrypted
    under the key the database holds."""
    aad = "1|records.patient|phone|x"
    with pytest.raises(RuntimeError), transaction.atomic():
        _version, lost = crypto.data_key(hospital_id=hospital_a.pk)  # creates version 1
        raise RuntimeError("the change fails")
    # Another process's version 1 (same version number, another DEK).
    theirs = os.urandom(32)
    master_id, wrapped = crypto.wrap_data_key(theirs, hospital_id=hospital_a.pk, version=1)
    HospitalKey.objects.create(
        hospital=hospital_a, version=1, master_key_id=master_id, wrapped_key=wrapped,
        is_current=True,
    )  # fmt: skip
    foreign = crypto.encrypt_with_key(b"x", version=1, dek=theirs, aad=aad)
    assert crypto.decrypt(foreign, hospital_id=hospital_a.pk, aad=aad) == b"x"
    assert crypto.data_key(hospital_id=hospital_a.pk) == (1, theirs) != (1, lost)
    mine = crypto.encrypt(b"y", hospital_id=hospital_a.pk, aad=aad)
    assert crypto.encrypt_with_key(b"y", version=1, dek=theirs, aad=aad)[:5] == mine[:5]
    crypto.clear_key_cache()
    assert crypto.decrypt(mine, hospital_id=hospital_a.pk, aad=aad) == b"y"
    crypto.clear_key_cache()  # "their" key was never committed: forget it


def test_wrapped_key_is_bound_to_its_hospital(hospital_a, hospital_b):
    crypto.data_key(hospital_id=hospital_a.pk)
    crypto.data_key(hospital_id=hospital_b.pk)
    key_a = HospitalKey.objects.get(hospital=hospital_a)
    HospitalKey.objects.filter(hospital=hospital_b).update(wrapped_key=bytes(key_a.wrapped_key))
    crypto.clear_key_cache()
    with pytest.raises(DecryptionError, match="does not unwrap"):
        crypto.data_key(hospital_id=hospital_b.pk)


def test_missing_data_key_version(hospital_a, hospital_b):
    crypto.data_key(hospital_id=hospital_a.pk)
    with pytest.raises(crypto.MissingDataKey):
        crypto.data_key(hospital_id=hospital_a.pk, version=7)


# --- blobs --------------------------------------------------------------------------------


def test_encrypt_decrypt_round_trip_and_format(hospital_a, hospital_b):
    aad = crypto.aad_for(hospital_id=hospital_a.pk, model_label="m.x", field="f", row="r1")
    assert aad == f"{hospital_a.pk}|m.x|f|r1"
    blob = crypto.encrypt(b"Ada Lovelace", hospital_id=hospital_a.pk, aad=aad)
    assert blob[0] == 1 and int.from_bytes(blob[1:5], "big") == 1
    assert len(blob) == 1 + 4 + 12 + len(b"Ada Lovelace") + 16
    assert b"Ada" not in blob
    assert crypto.decrypt(blob, hospital_id=hospital_a.pk, aad=aad) == b"Ada Lovelace"
    # A fresh nonce every time.
    assert crypto.encrypt(b"Ada Lovelace", hospital_id=hospital_a.pk, aad=aad) != blob


def test_decrypt_refuses_tampering_and_wrong_binding(hospital_a, hospital_b):
    aad = crypto.aad_for(hospital_id=hospital_a.pk, model_label="m.x", field="f", row="r1")
    blob = crypto.encrypt(b"secret diagnosis", hospital_id=hospital_a.pk, aad=aad)
    crypto.data_key(hospital_id=hospital_b.pk)
    other_row = aad.replace("|r1", "|r2")
    other_hospital = crypto.aad_for(
        hospital_id=hospital_b.pk, model_label="m.x", field="f", row="r1"
    )
    cases = [
        (blob, hospital_a.pk, other_row),  # another row
        (blob, hospital_a.pk, aad.replace("|f|", "|g|")),  # another field
        (blob, hospital_b.pk, other_hospital),  # another hospital (and its DEK)
        (blob, hospital_b.pk, aad),  # another hospital's DEK, same AAD text
        (blob[:-1] + bytes([blob[-1] ^ 1]), hospital_a.pk, aad),  # a changed tag byte
        (blob[:20] + bytes([blob[20] ^ 1]) + blob[21:], hospital_a.pk, aad),  # ciphertext
        (blob[:10], hospital_a.pk, aad),  # truncated
        (b"\x02" + blob[1:], hospital_a.pk, aad),  # unknown format
    ]
    for bad, hospital_id, bad_aad in cases:
        with pytest.raises(DecryptionError) as info:
            crypto.decrypt(bad, hospital_id=hospital_id, aad=bad_aad)
        assert "secret" not in str(info.value)
    # The version bytes are authenticated too: pointing at another version fails.
    crypto.create_data_key_version(hospital_a.pk)
    relabelled = blob[:1] + (2).to_bytes(4, "big") + blob[5:]
    with pytest.raises(DecryptionError):
        crypto.decrypt(relabelled, hospital_id=hospital_a.pk, aad=aad)


def test_new_data_key_version_keeps_old_blobs_readable(hospital_a, hospital_b):
    aad = "x"
    old = crypto.encrypt(b"before", hospital_id=hospital_a.pk, aad=aad)
    assert crypto.create_data_key_version(hospital_a.pk) == 2
    new = crypto.encrypt(b"after", hospital_id=hospital_a.pk, aad=aad)
    assert crypto.blob_version(old) == 1 and crypto.blob_version(new) == 2
    assert crypto.decrypt(old, hospital_id=hospital_a.pk, aad=aad) == b"before"
    assert crypto.decrypt(new, hospital_id=hospital_a.pk, aad=aad) == b"after"
    current = HospitalKey.objects.filter(hospital=hospital_a, is_current=True)
    assert list(current.values_list("version", flat=True)) == [2]


# --- blind indexes ------------------------------------------------------------------------


def test_normalize_for_index():
    assert crypto.normalize_for_index("  ÉVA\t\u00a0SMITH \n") == "éva smith"
    assert crypto.normalize_for_index("Straße") == crypto.normalize_for_index("STRASSE")
    assert crypto.normalize_for_index("ﬁona") == "fiona"  # NFKC ligature


def test_blind_index_is_stable_normalized_per_hospital_and_keyed(hospital_a, hospital_b):
    def index(value, hospital, purpose="patient-name"):
        return crypto.blind_index(value, hospital_id=hospital.pk, purpose=purpose)

    token = index("Ada Lovelace", hospital_a)
    assert len(token) == 32 and int(token, 16) >= 0
    assert index("Ada Lovelace", hospital_a) == token
    assert index("  ada   LOVELACE ", hospital_a) == token
    assert index("Ada Lovelace", hospital_b) != token
    assert index("Ada Lovelace", hospital_a, purpose="mrn") != token
    assert index("Ada Lovelac", hospital_a) != token
    plain = hashlib.sha256(b"ada lovelace").hexdigest()
    assert token not in (plain[:32], plain[-32:])
    # Derived from DEK version 1: a new data key does not change existing indexes.
    crypto.create_data_key_version(hospital_a.pk)
    crypto.clear_key_cache()
    assert index("Ada Lovelace", hospital_a) == token


def test_blind_index_creates_the_first_key(hospital_a, hospital_b):
    crypto.blind_index("MRN000123", hospital_id=hospital_b.pk, purpose="mrn")
    assert HospitalKey.objects.filter(hospital=hospital_b, version=1, is_current=True).exists()


# --- the fields ---------------------------------------------------------------------------


def test_values_round_trip_with_their_types(hospital_a, hospital_b):
    sample = make_sample(hospital_a, value=Decimal("37.2"))
    assert sample.name == "Ada Lovelace"
    loaded = fresh(sample)
    assert loaded.name == "Ada Lovelace"
    assert loaded.note == "Suspected appendicitis; pain since Tuesday."
    assert loaded.born == dt.date(1815, 12, 10)
    assert loaded.value == Decimal("37.200") and str(loaded.value) == "37.200"
    assert loaded.content == b"%PDF-1.7 discharge letter"
    empty = fresh(EncryptedSample.objects.create(hospital=hospital_b, name="B"))
    assert (empty.note, empty.born, empty.value, empty.content) == ("", None, None, None)
    assert raw_column(EncryptedSample, "born", empty.pk) is None


def test_raw_sql_shows_no_plaintext(hospital_a, hospital_b):
    secrets = ["Ada Lovelace", "appendicitis", "1815-12-10", "37.250", "discharge letter"]
    samples = [make_sample(hospital_a), make_sample(hospital_b, name="Grace Hopper")]
    secrets.append("Grace Hopper")
    for sample in samples:
        for field in encrypted_fields(EncryptedSample):
            blob = raw_column(EncryptedSample, field.name, sample.pk)
            assert blob is not None and blob[0] == 1
            for secret in secrets:
                assert secret.encode() not in blob
                assert secret.encode("utf-16-le") not in blob


def test_raw_sql_of_every_encrypted_model_shows_no_demo_phi(hospital_a, hospital_b):
    """Every table with encrypted fields (Patient once it uses them), read with raw SQL."""
    patients = [
        factories.PatientFactory(hospital=hospital_a, given_name="Zerelda", family_name="Quist"),
        factories.PatientFactory(hospital=hospital_b, given_name="Ottoline", family_name="Brae"),
    ]
    make_sample(hospital_a, name="Zerelda Quist")
    secrets = ["Zerelda", "Quist", "Ottoline", "Brae", "Ada Lovelace", "appendicitis"]
    secrets += [p.mrn for p in patients if isinstance(p, Patient)]
    if isinstance(Patient._meta.get_field("family_name"), EncryptedField):
        secrets.append("1980-05-17")
    checked = 0
    for model in {f.model for f in _all_encrypted_fields()}:
        table = connection.ops.quote_name(model._meta.db_table)
        columns = [connection.ops.quote_name(f.column) for f in encrypted_fields(model)]
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(columns)} FROM {table}")
            for row in cursor.fetchall():
                for value in row:
                    if value is None:
                        continue
                    for secret in secrets:
                        assert secret.encode() not in bytes(value), (model, secret)
                    checked += 1
    assert checked >= 5


def _all_encrypted_fields() -> list[EncryptedField]:
    from django.apps import apps

    return [f for m in apps.get_models() for f in encrypted_fields(m)]


@pytest.mark.parametrize("target", ["other_row", "other_hospital", "other_field"])
def test_moved_ciphertext_fails_to_decrypt(hospital_a, hospital_b, target):
    source = make_sample(hospital_a, name="Ada Lovelace", note="Ada Lovelace")
    victim = make_sample(
        hospital_b if target == "other_hospital" else hospital_a, name="Grace Hopper"
    )
    blob = raw_column(EncryptedSample, "name", source.pk)
    if target == "other_field":
        write_raw(EncryptedSample, "note", source.pk, blob)
        victim = source
        field = "note"
    else:
        write_raw(EncryptedSample, "name", victim.pk, blob)
        field = "name"
    loaded = fresh(victim)
    with pytest.raises(DecryptionError) as info:
        getattr(loaded, field)
    assert "Ada" not in str(info.value)


def test_changed_byte_fails_to_decrypt(hospital_a, hospital_b):
    sample = make_sample(hospital_a)
    make_sample(hospital_b)
    blob = bytearray(raw_column(EncryptedSample, "note", sample.pk))
    blob[-5] ^= 0x01
    write_raw(EncryptedSample, "note", sample.pk, bytes(blob))
    loaded = fresh(sample)
    assert loaded.name == "Ada Lovelace"  # other fields are unaffected
    with pytest.raises(DecryptionError):
        loaded.note  # noqa: B018


def test_unchanged_values_are_not_re_encrypted(hospital_a, hospital_b):
    sample = make_sample(hospital_a)
    before = raw_column(EncryptedSample, "name", sample.pk)
    loaded = fresh(sample)
    loaded.save()
    assert raw_column(EncryptedSample, "name", sample.pk) == before
    loaded.name  # noqa: B018 - decrypted, still unchanged
    loaded.full_clean()  # writes back equal cleaned values
    loaded.name = "Ada Lovelace"
    loaded.save()
    assert raw_column(EncryptedSample, "name", sample.pk) == before
    loaded.name = "Ada King"
    loaded.save()
    assert raw_column(EncryptedSample, "name", sample.pk) != before
    assert fresh(sample).name == "Ada King"


def test_copied_instance_is_re_bound_to_its_new_row(hospital_a, hospital_b):
    original = fresh(make_sample(hospital_a))
    copy = fresh(original)
    copy.pk = None
    copy.row_uuid = uuid.uuid4()
    copy._state.adding = True
    copy.save()
    assert fresh(copy).name == "Ada Lovelace" and fresh(copy).content == original.content
    assert fresh(original).note == original.note


def test_bulk_create_refresh_and_deferred_loading(hospital_a, hospital_b):
    objs = EncryptedSample.objects.bulk_create(
        [
            EncryptedSample(hospital=h, name=f"Name {i}")
            for i, h in enumerate([hospital_a, hospital_b])
        ]
    )
    rows = list(EncryptedSample.objects.order_by("id"))
    assert [r.name for r in rows][-2:] == ["Name 0", "Name 1"]
    assert b"Name" not in raw_column(EncryptedSample, "name", rows[-1].pk)
    obj = rows[-1]
    EncryptedSample.objects.filter(pk=obj.pk).update(name_index="x")
    obj.refresh_from_db()
    assert obj.name == "Name 1" and obj.name_index == "x"
    deferred = EncryptedSample.objects.only("id").get(pk=obj.pk)
    assert deferred.name == "Name 1"
    assert len(objs) == 2


def test_values_list_returns_ciphertext(hospital_a, hospital_b):
    sample = make_sample(hospital_a)
    make_sample(hospital_b)
    (value,) = EncryptedSample.objects.filter(pk=sample.pk).values_list("name", flat=True)
    assert isinstance(value, Ciphertext) and b"Ada" not in value
    assert EncryptedSample.objects.filter(pk=sample.pk).values("name")[0]["name"] == value


def test_lookups_and_plaintext_updates_are_refused(hospital_a, hospital_b):
    make_sample(hospital_a)
    make_sample(hospital_b, born=None)
    with pytest.raises(FieldError, match="blind index"):
        EncryptedSample.objects.filter(name="Ada Lovelace").count()
    with pytest.raises(FieldError):
        EncryptedSample.objects.filter(name__icontains="ada").count()
    assert EncryptedSample.objects.filter(born__isnull=True).count() == 1
    # (Each in a savepoint: Django marks the transaction for rollback on these errors.)
    with pytest.raises(TypeError, match="save"), transaction.atomic():
        EncryptedSample.objects.update(name="Mallory")
    obj = EncryptedSample.objects.order_by("id").first()
    obj.name = "Mallory"
    with pytest.raises(TypeError), transaction.atomic():
        EncryptedSample.objects.bulk_update([obj], ["name"])
    assert EncryptedSample.objects.order_by("id").first().name == "Ada Lovelace"


def test_model_form(hospital_a, hospital_b):
    class SampleForm(forms.ModelForm):
        class Meta:
            model = EncryptedSample
            fields = ["hospital", "name", "note", "born", "value"]

    form = SampleForm()
    assert isinstance(form.fields["name"], forms.CharField)
    assert form.fields["name"].max_length == 20
    assert isinstance(form.fields["note"].widget, forms.Textarea)
    assert isinstance(form.fields["born"], forms.DateField)
    assert isinstance(form.fields["value"], forms.DecimalField)
    assert "content" not in SampleForm.base_fields
    data = {"hospital": hospital_b.pk, "name": "x" * 21, "note": "", "born": "", "value": ""}
    assert not SampleForm(data).is_valid()
    data.update(name="Grace Hopper", born="1906-12-09", value="1.5")
    form = SampleForm(data)
    assert form.is_valid(), form.errors
    saved = fresh(form.save())
    assert (saved.name, saved.born, saved.value) == (
        "Grace Hopper",
        dt.date(1906, 12, 9),
        Decimal("1.500"),
    )
    edit = SampleForm(instance=saved)
    assert edit.initial["name"] == "Grace Hopper"


def test_deconstruct_round_trips():
    for field in encrypted_fields(EncryptedSample):
        _name, path, args, kwargs = field.deconstruct()
        assert path.startswith("portal.records.fields.")
        clone = type(field)(*args, **kwargs)
        assert clone.deconstruct()[1:] == (path, args, kwargs)
    assert EncryptedBinaryField().deconstruct()[3] == {}
    assert EncryptedTextField().deconstruct()[3] == {}
    assert EncryptedCharField(max_length=5, editable=False).deconstruct()[3] == {
        "max_length": 5,
        "editable": False,
    }


@isolate_apps("portal.records")
def test_model_without_row_uuid_is_refused():
    with pytest.raises(ImproperlyConfigured, match="row_uuid"):

        class NoRow(models.Model):  # noqa: DJ008
            hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT)
            secret = EncryptedTextField()

            class Meta:
                app_label = "records"


@isolate_apps("portal.records")
def test_encrypted_field_checks():
    class Checked(models.Model):  # noqa: DJ008
        row_uuid = models.UUIDField(default=uuid.uuid4, unique=True)
        hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT)
        a = EncryptedCharField(max_length=5, unique=True)
        b = EncryptedCharField()
        c = EncryptedDecimalField(max_digits=2, decimal_places=3)

        class Meta:
            app_label = "records"

    ids = sorted(e.id for f in encrypted_fields(Checked) for e in f.check())
    assert ids == ["records.E101", "records.E103", "records.E104"]
    assert isinstance(Checked._meta.get_field("c"), EncryptedDecimalField)


def test_every_encrypted_fields_associated_data_is_aad_for():
    """EncryptedField.aad builds the model-and-field part once (fields.py): the same text as
    crypto.aad_for, for every encrypted field of every model."""
    from django.apps import apps

    from portal.records.fields import encrypted_fields

    fields = [(m, f) for m in apps.get_models() for f in encrypted_fields(m)]
    assert len(fields) > 10
    for model, field in fields:
        for hospital_id, row in ((1, str(uuid.uuid4())), (987654, "r")):
            expected = crypto.aad_for(
                hospital_id=hospital_id, model_label=model._meta.label_lower, field=field.name,
                row=row,
            )  # fmt: skip
            assert field.aad(hospital_id, row) == expected
            assert field.aad(hospital_id, row) == expected  # and again, from the cache


def test_decrypt_takes_memoryviews_and_caches_no_stale_cipher(hospital_a):
    blob = crypto.encrypt(b"value", hospital_id=hospital_a.pk, aad="x")
    assert crypto.decrypt(memoryview(blob), hospital_id=hospital_a.pk, aad="x") == b"value"
    other = os.urandom(32)
    assert crypto._aead(other) is crypto._aead(other)  # by key bytes: a new key, a new cipher
    assert crypto._aead(os.urandom(32)) is not crypto._aead(other)
