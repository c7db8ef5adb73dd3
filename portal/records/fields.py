"""Encrypted model fields.

The database column holds an AES-GCM blob (bytea / BLOB, see portal.records.crypto); the model
attribute holds the plaintext (str, date, Decimal or bytes, or None). A model with encrypted
fields must have a `hospital_id` and a `row_uuid` (UUIDField(default=uuid.uuid4,
editable=False, unique=True)): every value is bound to its hospital, model, field and row.

How values move
- Loading: `from_db_value` wraps the column in `Ciphertext`; the descriptor keeps it and
  decrypts on first access, caching the plaintext on the instance. Rows that are listed but
  whose encrypted fields are never read cost no decryption.
- Assigning sets the plaintext. `pre_save` encrypts it (create, save, bulk_create). A value
  loaded from the database and not assigned since is written back unchanged, unless the
  instance now belongs to another row or hospital (a copied instance), which re-encrypts it.
  Assigning the value that was already there (full_clean, forms) does not count as a change;
  `refresh_from_db` re-reads through the descriptor, so the next save re-encrypts.
- `.values()` / `.values_list()` return the raw `Ciphertext` bytes: selectors must work with
  model instances to see plaintext.
- Filtering on an encrypted field is refused (only `__isnull` works): search goes through
  blind indexes (crypto.blind_index). `QuerySet.update()` / `bulk_update()` with plaintext
  are refused too, since they have no row to bind the value to; use save().
- `dumpdata` writes the ciphertext (base64); loading such fixtures is not supported.
- `default=` is the model's, as plaintext (encrypted on save like any value); the database
  schema never gets a default for an encrypted column (it would be plaintext in the DDL).
- `pad_to=N` pads the plaintext to a multiple of N bytes before encryption (crypto.pad), so
  the blob's length does not tell short values apart (a criticality, a code). It is part of
  the field's format: changing it makes the existing blobs unreadable.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
from typing import Any

from django import forms
from django.core import checks, validators
from django.core.exceptions import (
    FieldDoesNotExist,
    FieldError,
    ImproperlyConfigured,
    ValidationError,
)
from django.db import models
from django.db.models.signals import class_prepared, post_init
from django.utils.functional import cached_property

from portal.records import crypto
from portal.records.crypto import DecryptionError

__all__ = [
    "Ciphertext",
    "DecryptionError",
    "EncryptedBinaryField",
    "EncryptedCharField",
    "EncryptedDateField",
    "EncryptedDecimalField",
    "EncryptedField",
    "EncryptedJSONField",
    "EncryptedTextField",
    "encrypted_fields",
]

ROW_UUID_FIELD = "row_uuid"


class Ciphertext(bytes):
    """An encrypted blob as stored; distinguishes database values from assigned plaintext
    (plaintext of an EncryptedBinaryField is bytes too)."""

    def __repr__(self) -> str:
        return f"<Ciphertext {len(self)} bytes>"


# instance.__dict__ key of the (hospital_id, row_uuid) that the ciphertexts an instance was
# created with are bound to (post_init). Not a field's attname: no model has such a field.
_LOADED_CONTEXT = "_encrypted_fields_context"


class _Slot:
    """Per-instance state of one encrypted field, kept in instance.__dict__[attname].

    A row loaded from the database keeps each blob as the bare Ciphertext there until the
    field is first used (a slot per field and row was a third of the cost of loading one)."""

    __slots__ = ("ciphertext", "context", "dirty", "has_plaintext", "plaintext")

    def __init__(
        self,
        *,
        ciphertext: Ciphertext | None = None,
        plaintext: Any = None,
        has_plaintext: bool = False,
        dirty: bool = False,
        context: tuple[int, str] | None = None,
    ) -> None:
        self.ciphertext = ciphertext
        self.plaintext = plaintext
        self.has_plaintext = has_plaintext
        self.dirty = dirty
        # (hospital_id, row_uuid) the ciphertext is bound to, captured at load time.
        self.context = context


def _context(instance: models.Model) -> tuple[int, str]:
    hospital_id = getattr(instance, "hospital_id", None)
    row_uuid = getattr(instance, ROW_UUID_FIELD, None)
    if hospital_id is None or row_uuid is None:
        raise ValueError(
            f"{type(instance)._meta.label}: an encrypted value needs hospital_id and "
            f"{ROW_UUID_FIELD} set on the instance."
        )
    return int(hospital_id), str(row_uuid)


class _EncryptedDescriptor:
    def __init__(self, field: EncryptedField) -> None:
        self.field = field

    def __get__(self, instance: models.Model | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        slot = instance.__dict__.get(self.field.attname)
        if type(slot) is _Slot and slot.has_plaintext:  # read before: no call needed
            return slot.plaintext
        return self.field.plaintext(instance, self.field.slot(instance))

    def __set__(self, instance: models.Model, value: Any) -> None:
        attname = self.field.attname
        if isinstance(value, Ciphertext):
            data = instance.__dict__
            if _LOADED_CONTEXT in data:  # after __init__: bound to nothing known yet
                data[attname] = _Slot(ciphertext=value)
            else:  # Model.__init__ from the database: a slot is made on first use
                data[attname] = value
            return
        old = instance.__dict__.get(attname)
        if isinstance(old, _Slot) and old.has_plaintext and not old.dirty:
            try:
                same = type(old.plaintext) is type(value) and old.plaintext == value
            except Exception:  # a value that cannot be compared counts as a change
                same = False
            if same:
                return  # e.g. full_clean() writing back the cleaned, equal value
        # A new slot rather than mutating the old one: copies of an instance share __dict__
        # values until one of them assigns.
        instance.__dict__[attname] = _Slot(plaintext=value, has_plaintext=True, dirty=True)


def _capture_context(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    """post_init: remember which hospital and row loaded ciphertext is bound to, so a copied
    instance (pk=None, new row_uuid) re-encrypts instead of writing an unreadable blob."""
    data = instance.__dict__
    hospital_id = data.get("hospital_id")
    row_uuid = data.get(ROW_UUID_FIELD)
    if hospital_id is None or row_uuid is None:
        return  # deferred: fall back to the instance's values when needed
    # The blobs __init__ stored bare take it when their slot is made (EncryptedField.slot).
    data[_LOADED_CONTEXT] = (int(hospital_id), str(row_uuid))


def _check_model(sender: type[models.Model], **kwargs: Any) -> None:
    """class_prepared: refuse a model that cannot bind its values to a hospital and a row."""
    fields = encrypted_fields(sender)
    if not fields or sender._meta.abstract:
        return
    opts = sender._meta
    try:
        row_uuid = opts.get_field(ROW_UUID_FIELD)
    except FieldDoesNotExist:
        row_uuid = None
    if not isinstance(row_uuid, models.UUIDField):
        raise ImproperlyConfigured(
            f"{opts.label} has encrypted fields ({', '.join(f.name for f in fields)}) and so "
            f"needs `{ROW_UUID_FIELD} = models.UUIDField(default=uuid.uuid4, editable=False, "
            "unique=True)`: each value is bound to its row."
        )
    has_hospital = any(f.attname == "hospital_id" for f in opts.concrete_fields) or isinstance(
        getattr(sender, "hospital_id", None), property
    )
    if not has_hospital:
        raise ImproperlyConfigured(
            f"{opts.label} has encrypted fields and so needs a `hospital` foreign key (or a "
            "`hospital_id` property): values are encrypted under the hospital's data key."
        )
    post_init.connect(_capture_context, sender=sender, weak=False, dispatch_uid=opts.label_lower)


class_prepared.connect(_check_model, dispatch_uid="portal.records.fields.check_model")


def encrypted_fields(model: type[models.Model]) -> list[EncryptedField]:
    """The encrypted fields a model stores in its own table (multi-table parents excluded)."""
    return [f for f in model._meta.local_concrete_fields if isinstance(f, EncryptedField)]


class EncryptedField(models.BinaryField):
    """Base class: bytes in the database, a plaintext Python value on the instance."""

    descriptor_class = _EncryptedDescriptor
    empty_values = [None, "", b""]
    # The schema editor fills a new or altered NOT NULL column with the field's "effective
    # default" (b"" for a blank BinaryField): an encrypted column has none (see has_default).
    empty_strings_allowed = False
    # Forms use these; the database column is always BinaryField's (bytea / BLOB).
    form_class: type[forms.Field] | None = forms.CharField

    def __init__(self, *args: Any, pad_to: int | None = None, **kwargs: Any) -> None:
        # Unlike BinaryField, encrypted text and values are edited in forms and the admin.
        kwargs.setdefault("editable", True)
        self.pad_to = pad_to
        super().__init__(*args, **kwargs)

    # -- checks and migrations -------------------------------------------------------------

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = models.Field.check(self, **kwargs)  # not BinaryField's str-default check
        for attr, label in (("unique", "unique=True"), ("db_index", "db_index=True")):
            if getattr(self, attr, False):
                errors.append(
                    checks.Error(
                        f"An encrypted field cannot be {label}: every ciphertext is different. "
                        "Index a blind index (crypto.blind_index) instead.",
                        obj=self,
                        id="records.E101",
                    )
                )
        if self.primary_key:
            errors.append(
                checks.Error(
                    "An encrypted field cannot be a primary key.", obj=self, id="records.E102"
                )
            )
        if self.pad_to is not None and not (isinstance(self.pad_to, int) and self.pad_to > 0):
            errors.append(
                checks.Error("pad_to must be a positive integer.", obj=self, id="records.E105")
            )
        return errors

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        # Field's, not BinaryField's: the default here is editable=True, so Field's rule
        # (mention editable only when False) keeps makemigrations stable.
        name, path, args, kwargs = models.Field.deconstruct(self)
        if self.pad_to is not None:
            kwargs["pad_to"] = self.pad_to
        return name, path, args, kwargs

    # -- database ----------------------------------------------------------------------------

    def has_default(self) -> bool:
        """False for the database: the schema editor turns a default into the column's
        DEFAULT (and into the value of existing rows), which would be plaintext, unbound to
        any row. The model still applies `default` (get_default), encrypted on save."""
        return False

    def get_default(self) -> Any:
        if self.default is not models.NOT_PROVIDED:
            return self.default() if callable(self.default) else self.default
        return None if self.null else self.empty_plaintext()

    def empty_plaintext(self) -> Any:
        return None

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Ciphertext | None:
        if value is None:
            return None
        if isinstance(value, str):
            # Text written into the column behind the application's back (SQLite keeps what
            # it is given): no blob, so it fails to decrypt like any altered value.
            value = value.encode("utf-8")
        return Ciphertext(bytes(value))

    def get_lookup(self, lookup_name: str):
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        raise FieldError(
            f"{self.model._meta.label}.{self.name} is encrypted and cannot be filtered with "
            f"'{lookup_name}'. Search through its blind index (portal.records.crypto.blind_index)."
        )

    def get_transform(self, lookup_name: str):
        raise FieldError(
            f"{self.model._meta.label}.{self.name} is encrypted and has no transforms "
            f"('{lookup_name}')."
        )

    def get_prep_value(self, value: Any) -> Any:
        return value

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is None:
            return None
        if isinstance(value, Ciphertext):
            return connection.Database.Binary(bytes(value))
        raise TypeError(
            f"{self.model._meta.label}.{self.name} is encrypted: write it through "
            "Model.save(), objects.create() or bulk_create(), which bind the value to its row; "
            "QuerySet.update(), bulk_update() and fixtures cannot."
        )

    def pre_save(self, model_instance: models.Model, add: bool) -> Ciphertext | None:
        slot = self.slot(model_instance)
        context = _context(model_instance)
        if not slot.dirty and slot.ciphertext is not None and (slot.context or context) == context:
            return slot.ciphertext
        value = self.plaintext(model_instance, slot)
        if value is None:
            return None
        hospital_id, _row = context
        data = self.to_bytes(value)
        if self.pad_to:
            data = crypto.pad(data, self.pad_to)
        # Not stored back on the instance: if this save's transaction rolls back, the next
        # save must encrypt again rather than reuse a blob that may name a rolled-back key.
        return Ciphertext(crypto.encrypt(data, hospital_id=hospital_id, aad=self.aad(*context)))

    def slot(self, instance: models.Model) -> _Slot:
        """The field's state on an instance; a deferred field fetches only its ciphertext."""
        data = instance.__dict__
        slot = data.get(self.attname)
        if type(slot) is Ciphertext:  # loaded, not used yet
            slot = data[self.attname] = _Slot(ciphertext=slot, context=data.get(_LOADED_CONTEXT))
        elif slot is None:
            blob = (
                type(instance)
                ._base_manager.db_manager(instance._state.db)
                .filter(pk=instance.pk)
                .values_list(self.attname, flat=True)
                .get()
            )
            slot = _Slot(ciphertext=blob, has_plaintext=blob is None)
            instance.__dict__[self.attname] = slot
        return slot

    def plaintext(self, instance: models.Model, slot: _Slot) -> Any:
        """Decrypt lazily, once per loaded value."""
        if not slot.has_plaintext:
            slot.plaintext = self.decrypt_slot(instance, slot)
            slot.has_plaintext = True
        return slot.plaintext

    def aad(self, hospital_id: int, row: str) -> str:
        # crypto.aad_for's text, with the part naming the model and field built once per
        # field (Options.label_lower is computed on every read): tests/records/test_crypto.py.
        cached = self.__dict__.get("_aad_middle")
        if cached is None or cached[0] is not self.model:
            cached = self._aad_middle = (
                self.model,
                crypto.aad_for(
                    hospital_id=0, model_label=self.model._meta.label_lower, field=self.name,
                    row="",
                )[1:],
            )  # fmt: skip
        return f"{hospital_id}{cached[1]}{row}"

    def decrypt_slot(self, instance: models.Model, slot: _Slot) -> Any:
        if slot.ciphertext is None:
            return None
        hospital_id, row = slot.context or _context(instance)
        data = crypto.decrypt(
            slot.ciphertext, hospital_id=hospital_id, aad=self.aad(hospital_id, row)
        )
        return self.from_bytes(crypto.unpad(data) if self.pad_to else data)

    def value_to_string(self, obj: models.Model) -> str:
        # Serializers (dumpdata) get the ciphertext, never the plaintext.
        blob = self.pre_save(obj, add=False)
        return "" if blob is None else base64.b64encode(blob).decode("ascii")

    # -- plaintext conversion (subclasses) ---------------------------------------------------

    def to_bytes(self, value: Any) -> bytes:
        raise NotImplementedError

    def from_bytes(self, data: bytes) -> Any:
        raise NotImplementedError

    def to_python(self, value: Any) -> Any:
        return value

    def formfield(self, **kwargs: Any) -> forms.Field | None:
        if self.form_class is None:
            return None
        defaults: dict[str, Any] = {"form_class": self.form_class}
        if self.default is not models.NOT_PROVIDED:  # what Field.formfield does with a default
            defaults["initial"] = self.default
            if callable(self.default):
                defaults["show_hidden_initial"] = True
        return models.Field.formfield(self, **{**defaults, **kwargs})


class EncryptedTextField(EncryptedField):
    """Free text (notes, reasons, addresses)."""

    description = "Encrypted text"

    def empty_plaintext(self) -> str:
        return ""

    def to_python(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return str(value)

    def to_bytes(self, value: Any) -> bytes:
        return self.to_python(value).encode("utf-8")

    def from_bytes(self, data: bytes) -> str:
        return data.decode("utf-8")

    def formfield(self, **kwargs: Any) -> forms.Field | None:
        return super().formfield(**{"widget": forms.Textarea, **kwargs})


class EncryptedCharField(EncryptedTextField):
    """Short text (names, identifiers, phone numbers); max_length limits the plaintext in
    forms and full_clean(), not the column."""

    description = "Encrypted string (up to %(max_length)s)"

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = super().check(**kwargs)
        if not isinstance(self.max_length, int) or self.max_length <= 0:
            errors.append(
                checks.Error(
                    "EncryptedCharField needs a positive integer max_length.",
                    obj=self,
                    id="records.E103",
                )
            )
        return errors

    def formfield(self, **kwargs: Any) -> forms.Field | None:
        defaults: dict[str, Any] = {"max_length": self.max_length}
        if self.null:
            defaults["empty_value"] = None
        return EncryptedField.formfield(self, **{**defaults, **kwargs})


class EncryptedDateField(EncryptedField):
    """A date (birth dates); stored as its ISO text."""

    description = "Encrypted date"
    form_class = forms.DateField

    def to_python(self, value: Any) -> datetime.date | None:
        if value is None or value == "":
            return None
        if isinstance(value, datetime.datetime):
            return value.date()
        if isinstance(value, datetime.date):
            return value
        try:
            return datetime.date.fromisoformat(str(value))
        except ValueError:
            raise ValidationError(
                "Enter a valid date (YYYY-MM-DD).", code="invalid", params={"value": value}
            ) from None

    def to_bytes(self, value: Any) -> bytes:
        return self.to_python(value).isoformat().encode("ascii")

    def from_bytes(self, data: bytes) -> datetime.date:
        return datetime.date.fromisoformat(data.decode("ascii"))


class EncryptedDecimalField(EncryptedField):
    """A decimal (observation values), quantized to decimal_places."""

    description = "Encrypted decimal"
    form_class = forms.DecimalField

    def __init__(
        self,
        *args: Any,
        max_digits: int | None = None,
        decimal_places: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.max_digits = max_digits
        self.decimal_places = decimal_places
        super().__init__(*args, **kwargs)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = super().check(**kwargs)
        ok = (
            isinstance(self.max_digits, int)
            and isinstance(self.decimal_places, int)
            and 0 <= self.decimal_places <= self.max_digits
            and self.max_digits > 0
        )
        if not ok:
            errors.append(
                checks.Error(
                    "EncryptedDecimalField needs max_digits > 0 and 0 <= decimal_places <= "
                    "max_digits.",
                    obj=self,
                    id="records.E104",
                )
            )
        return errors

    @cached_property
    def validators(self) -> list[Any]:
        return [
            *super().validators,
            validators.DecimalValidator(self.max_digits, self.decimal_places),
        ]

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        name, path, args, kwargs = super().deconstruct()
        if self.max_digits is not None:
            kwargs["max_digits"] = self.max_digits
        if self.decimal_places is not None:
            kwargs["decimal_places"] = self.decimal_places
        return name, path, args, kwargs

    def to_python(self, value: Any) -> decimal.Decimal | None:
        if value is None or value == "":
            return None
        try:
            if isinstance(value, float):
                value = decimal.Context(prec=self.max_digits).create_decimal_from_float(value)
            else:
                value = decimal.Decimal(str(value))
        except (decimal.InvalidOperation, ValueError):
            raise ValidationError(
                "Enter a number.", code="invalid", params={"value": value}
            ) from None
        if not value.is_finite():
            raise ValidationError("Enter a number.", code="invalid", params={"value": value})
        return value.quantize(decimal.Decimal(1).scaleb(-self.decimal_places))

    def to_bytes(self, value: Any) -> bytes:
        quantized = self.to_python(value)
        digits = len(quantized.as_tuple().digits)
        whole_digits = digits - self.decimal_places
        if whole_digits > self.max_digits - self.decimal_places:
            # The value itself stays out of the message (it may be PHI).
            raise ValueError(
                f"{self.model._meta.label}.{self.name}: value has more than {self.max_digits} "
                "digits."
            )
        return str(quantized).encode("ascii")

    def from_bytes(self, data: bytes) -> decimal.Decimal:
        return decimal.Decimal(data.decode("ascii"))

    def formfield(self, **kwargs: Any) -> forms.Field | None:
        return super().formfield(
            **{"max_digits": self.max_digits, "decimal_places": self.decimal_places, **kwargs}
        )


class ServiceWrittenField(EncryptedField):
    """An encrypted field whose values arrive through services, not model forms: not
    editable by default (and no form field)."""

    form_class = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        # Default editable=False here, so mention it only when True (as BinaryField does).
        name, path, args, kwargs = super().deconstruct()
        if self.editable:
            kwargs["editable"] = True
        else:
            kwargs.pop("editable", None)
        return name, path, args, kwargs


class EncryptedBinaryField(ServiceWrittenField):
    """Bytes (document contents): documents arrive through services, not model forms."""

    description = "Encrypted binary data"

    def empty_plaintext(self) -> bytes:
        return b""

    def to_python(self, value: Any) -> bytes | None:
        if value is None:
            return None
        return bytes(value)

    def to_bytes(self, value: Any) -> bytes:
        return bytes(value)

    def from_bytes(self, data: bytes) -> bytes:
        return bytes(data)


class EncryptedJSONField(ServiceWrittenField):
    """Nested clinical structures (an observation's value[x] and components, a report's
    categories, a care plan's activities, an imaging study's series): JSON values (lists,
    objects, strings, numbers), stored as their canonical JSON text (sorted keys), so a value
    digests the same before and after a round trip. Not editable: such values arrive through
    services (imports), not model forms."""

    description = "Encrypted JSON"

    def to_bytes(self, value: Any) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def from_bytes(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


class BlindIndexField(models.CharField):
    """A keyed search token derived from another (encrypted) field of the same row.

    Computed in pre_save, so save(), create() and bulk_create() all keep it in step with its
    source; exact, normalized matches are then an indexed equality lookup, without the
    plaintext ever reaching the database.

    `scope` names another field of the row whose value is bound into the token (e.g.
    "patient_id"): equal values of two patients then give unrelated tokens, so a dump does
    not show which patients share a value, and the token serves lookups within one patient.
    `normalize=False` keeps case and spacing (codes are case-sensitive identifiers).
    """

    def __init__(
        self,
        *args: Any,
        source: str = "",
        purpose: str = "",
        scope: str = "",
        normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        self.source = source
        self.purpose = purpose or source
        self.scope = scope
        self.normalize = normalize
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        kwargs["purpose"] = self.purpose
        if self.scope:
            kwargs["scope"] = self.scope
        if not self.normalize:
            kwargs["normalize"] = False
        for key, value in (("max_length", 32), ("editable", False), ("db_index", True),
                           ("default", "")):  # fmt: skip
            if kwargs.get(key) == value:
                kwargs.pop(key)
        return name, path, args, kwargs

    def token(self, model_instance: models.Model) -> str:
        """The token the row's source value gives (no side effect: canonical.py checks
        stored tokens with it)."""
        value = getattr(model_instance, self.source)
        if value in (None, ""):
            return ""
        text = str(value)
        if self.scope:
            text = f"{getattr(model_instance, self.scope)}|{text}"
        return crypto.blind_index(
            text,
            hospital_id=model_instance.hospital_id,
            purpose=self.purpose,
            normalize=self.normalize,
        )

    def pre_save(self, model_instance: models.Model, add: bool) -> str:
        token = self.token(model_instance)
        setattr(model_instance, self.attname, token)
        return token
