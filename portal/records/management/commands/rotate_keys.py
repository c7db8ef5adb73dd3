"""Master key rotation (and optionally data key rotation) while the site keeps running."""

from __future__ import annotations

import argparse
import time
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction
from django.utils import timezone

from portal.ops.progress import Progress
from portal.records import crypto
from portal.records.crypto import DecryptionError, KeyRing
from portal.records.fields import Ciphertext, EncryptedField, encrypted_fields
from portal.records.keys_models import HospitalKey, SiteKey
from portal.tenancy.models import Hospital
from portal.tenancy.scoping import unscoped

HELP = """\
Re-wrap every hospital data key and site key, and re-encrypt every sign-in (TOTP) secret,
under the current (first) master key of FIELD_ENCRYPTION_KEYS; with --new-data-keys also
give every hospital a new data key and re-encrypt every encrypted column under it. (Ledger
subject digests are keyed from data key version 1 and the site key: neither changes.)

Operator flow for a new master key:
  1. Prepend the new key to the ring: FIELD_ENCRYPTION_KEYS="k2:NEW,k1:OLD"
     (new key: python -c "import base64,os; print(base64.b64encode(os.urandom(32)).decode())").
  2. Restart the web, worker and beat processes, so that all of them can read both keys.
  3. Run `python manage.py rotate_keys` (add --new-data-keys to replace the data keys too).
  4. When it reports no errors, drop the old key: FIELD_ENCRYPTION_KEYS="k2:NEW", restart.

The site stays up throughout: each data key is re-wrapped in its own short transaction and
the data keys themselves do not change, so readers never notice. With --new-data-keys, rows
are re-encrypted in batches (each batch its own transaction, rows locked with SELECT ... FOR
UPDATE); every value names the data key version that encrypted it, so rows read the same
before, during and after. Old data key versions are kept (re-wrapped under the new master key)
and stay readable. Running the command again is harmless. Exit status 1 means some data keys
or values could not be processed (for example a data key wrapped under a master key that is
no longer in the ring); do not drop a master key from the ring until a run reports none.
"""


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--new-data-keys",
            action="store_true",
            help="Also create a new data key version per hospital and re-encrypt every "
            "encrypted column under it.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            help="Rows per re-encryption transaction (default 500).",
        )
        parser.add_argument(
            "--settle-seconds",
            type=float,
            default=crypto.CURRENT_TTL,
            help="With --new-data-keys: wait this long before re-encrypting, so running web and "
            "worker processes (which re-read the current key version at that interval) have "
            "switched to the new keys and write nothing more under the old ones.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            ring = KeyRing.from_settings()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        self.errors: list[str] = []
        others = ", ".join(ring.ids[1:]) or "none"
        self.stdout.write(f"Master key ring: current {ring.current_id!r}; also readable: {others}.")
        with unscoped():
            if options["new_data_keys"]:
                self.new_data_keys()
            self.rewrap(ring)
            self.rewrap_site_keys(ring)
            self.rewrap_account_secrets(ring)
            if options["new_data_keys"]:
                if options["settle_seconds"] > 0:
                    self.stdout.write(
                        f"Waiting {options['settle_seconds']:.0f} s for running processes to "
                        "pick up the new data keys ..."
                    )
                    time.sleep(options["settle_seconds"])
                self.reencrypt(options["batch_size"])
        if self.errors:
            for line in self.errors:
                self.stderr.write(f"  error: {line}")
            raise CommandError(
                f"{len(self.errors)} problem(s); fix them and run rotate_keys again before "
                "removing any master key from FIELD_ENCRYPTION_KEYS."
            )
        self.stdout.write(self.style.SUCCESS("Key rotation complete."))

    # -- data keys ---------------------------------------------------------------------------

    def new_data_keys(self) -> None:
        hospital_ids = list(Hospital.objects.order_by("pk").values_list("pk", flat=True))
        versions: dict[int, int] = {}
        with Progress("New data keys", len(hospital_ids)) as progress:
            for hospital_id in hospital_ids:
                versions[hospital_id] = crypto.create_data_key_version(hospital_id)
                progress.advance()
        self.stdout.write(f"New data keys: {len(versions)} hospital(s) got a new current version.")

    def rewrap(self, ring: KeyRing) -> None:
        pending = list(
            HospitalKey.objects.exclude(master_key_id=ring.current_id)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        already = HospitalKey.objects.filter(master_key_id=ring.current_id).count()
        rewrapped = 0
        with Progress("Re-wrapping data keys", len(pending)) as progress:
            for pk in pending:
                # One short transaction per key: the row lock is held for microseconds, and
                # readers are unaffected because the data key itself does not change.
                with transaction.atomic():
                    row = HospitalKey.objects.select_for_update().get(pk=pk)
                    rewrapped += self.rewrap_one(row, ring)
                progress.advance()
        self.stdout.write(
            f"Data keys: {rewrapped} re-wrapped under {ring.current_id!r}, {already} already "
            f"under it, {len(pending) - rewrapped} not re-wrapped."
        )

    def rewrap_one(self, row: HospitalKey, ring: KeyRing) -> int:
        label = f"hospital {row.hospital_id} data key v{row.version}"
        if row.master_key_id == ring.current_id:
            return 0  # re-wrapped by a concurrent run
        if row.master_key_id not in ring:
            self.errors.append(
                f"{label} is wrapped under master key {row.master_key_id!r}, which is not in "
                "FIELD_ENCRYPTION_KEYS; put that key back in the ring and run again."
            )
            return 0
        try:
            dek = crypto.unwrap_data_key(
                row.wrapped_key,
                master_key_id=row.master_key_id,
                hospital_id=row.hospital_id,
                version=row.version,
                ring=ring,
            )
        except DecryptionError as exc:
            self.errors.append(f"{label}: {exc}")
            return 0
        master_id, wrapped = crypto.wrap_data_key(
            dek, hospital_id=row.hospital_id, version=row.version, ring=ring
        )
        HospitalKey.objects.filter(pk=row.pk).update(
            master_key_id=master_id, wrapped_key=wrapped, rewrapped_at=timezone.now()
        )
        return 1

    def rewrap_site_keys(self, ring: KeyRing) -> None:
        """Site secrets (the ledger digest key of what belongs to no hospital) never change:
        each is re-wrapped under the current master key, so the old one can leave the ring."""
        done = 0
        pending = list(SiteKey.objects.exclude(master_key_id=ring.current_id).values("pk"))
        for item in pending:
            with transaction.atomic():
                row = SiteKey.objects.select_for_update().get(pk=item["pk"])
                if row.master_key_id == ring.current_id:
                    continue  # re-wrapped by a concurrent run
                if row.master_key_id not in ring:
                    self.errors.append(
                        f"site key {row.purpose!r} is wrapped under master key "
                        f"{row.master_key_id!r}, which is not in FIELD_ENCRYPTION_KEYS; put "
                        "that key back in the ring and run again."
                    )
                    continue
                try:
                    secret = crypto.unwrap_site_secret(
                        row.wrapped_key, master_key_id=row.master_key_id, purpose=row.purpose,
                        ring=ring,
                    )  # fmt: skip
                except DecryptionError as exc:
                    self.errors.append(str(exc))
                    continue
                master_id, wrapped = crypto.wrap_site_secret(secret, purpose=row.purpose, ring=ring)
                SiteKey.objects.filter(pk=row.pk).update(
                    master_key_id=master_id, wrapped_key=wrapped, rewrapped_at=timezone.now()
                )
                done += 1
        self.stdout.write(
            f"Site keys: {done} re-wrapped under {ring.current_id!r}, {len(pending) - done} not."
        )

    def rewrap_account_secrets(self, ring: KeyRing) -> None:
        """Sign-in (TOTP) secrets belong to accounts, not hospitals: each is encrypted under
        a key derived from a master key, so it is re-encrypted under the current one."""
        from portal.accounts import services as accounts_services
        from portal.accounts.models import TOTPDevice

        pending = list(
            TOTPDevice.objects.exclude(key_master_id=ring.current_id)
            .order_by("pk")
            .values_list("pk", "key_master_id")
        )
        done = 0
        with Progress("Re-encrypting sign-in secrets", len(pending)) as progress:
            for pk, master_key_id in pending:
                if master_key_id not in ring:
                    self.errors.append(
                        f"TOTP device {pk} is encrypted under master key {master_key_id!r}, "
                        "which is not in FIELD_ENCRYPTION_KEYS; put that key back in the ring "
                        "and run again."
                    )
                else:
                    try:
                        done += accounts_services.totp_device_rewrap(device_id=pk, ring=ring)
                    except DecryptionError as exc:
                        self.errors.append(f"TOTP device {pk}: {exc}")
                progress.advance()
        self.stdout.write(
            f"Sign-in secrets: {done} re-encrypted under {ring.current_id!r}, "
            f"{len(pending) - done} not."
        )

    # -- values ------------------------------------------------------------------------------

    def reencrypt(self, batch_size: int) -> None:
        targets = [
            model
            for model in apps.get_models()
            if not model._meta.proxy and encrypted_fields(model)
        ]
        # Each hospital's current key is looked up once, after the new versions exist.
        current: dict[int, tuple[int, bytes]] = {}
        for model in targets:
            fields = encrypted_fields(model)
            manager = model._base_manager
            counts = {"rows": 0, "values": 0, "current": 0}
            with Progress(f"Re-encrypting {model._meta.label}", manager.count()) as progress:
                last_pk = None
                while True:
                    with transaction.atomic():
                        qs = manager.order_by("pk").select_for_update()
                        if last_pk is not None:
                            qs = qs.filter(pk__gt=last_pk)
                        batch = list(qs[:batch_size])
                        for obj in batch:
                            self.reencrypt_row(obj, fields, current, counts)
                    if not batch:
                        break
                    last_pk = batch[-1].pk
                    progress.advance(len(batch))
            self.stdout.write(
                f"{model._meta.label}: re-encrypted {counts['values']} value(s) in "
                f"{counts['rows']} row(s); {counts['current']} already under the current key."
            )

    def reencrypt_row(
        self,
        obj: models.Model,
        fields: list[EncryptedField],
        current: dict[int, tuple[int, bytes]],
        counts: dict[str, int],
    ) -> None:
        hospital_id = int(obj.hospital_id)
        row = str(obj.row_uuid)
        if hospital_id not in current:
            current[hospital_id] = crypto.data_key(hospital_id=hospital_id)
        version, dek = current[hospital_id]
        updates: dict[str, Ciphertext] = {}
        for field in fields:
            blob = field.slot(obj).ciphertext
            if blob is None:
                continue
            aad = field.aad(hospital_id, row)
            try:
                if crypto.blob_version(blob) == version:
                    counts["current"] += 1
                    continue
                plaintext = crypto.decrypt(blob, hospital_id=hospital_id, aad=aad)
            except (DecryptionError, ImproperlyConfigured) as exc:
                # Ids only: the message never holds plaintext or key material.
                self.errors.append(f"{obj._meta.label} pk={obj.pk} field {field.name}: {exc}")
                continue
            updates[field.attname] = Ciphertext(
                crypto.encrypt_with_key(plaintext, version=version, dek=dek, aad=aad)
            )
        if updates:
            type(obj)._base_manager.filter(pk=obj.pk).update(**updates)
            counts["rows"] += 1
            counts["values"] += len(updates)
