"""What the FHIR importer remembers: which source resource became which portal row.

One row per (hospital, resource type, source resource, part): re-importing a bundle finds its
rows here and creates nothing twice. `part` tells apart the rows one resource became (a blood
pressure panel becomes one Observation per component, the part being the component's code).

The source id and the part are stored only as keyed tokens (`import_source_token`): a
sender's resource id is often its MRN or another identifier, and a part is a clinical code,
neither of which may sit in clear in a database dump. Equal values at one hospital give equal
tokens, so lookups stay indexed equality; the same value at two hospitals gives unrelated ones.
"""

from __future__ import annotations

from django.db import models

from portal.records.crypto import blind_index
from portal.tenancy.models import Hospital
from portal.tenancy.scoping import TenantManager


def import_source_token(*, hospital_id: int, value: str, purpose: str = "source") -> str:
    """The token stored for a source resource id (purpose "source") or a part ("part");
    "" stays "" (no part). FHIR ids and codes are case-sensitive: not folded."""
    if not value:
        return ""
    return blind_index(
        value, hospital_id=hospital_id, purpose=f"fhir-import-{purpose}", normalize=False
    )


class ImportIdentity(models.Model):
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    resource_type = models.CharField(max_length=64)
    source_token = models.CharField(max_length=32)
    part_token = models.CharField(max_length=32, blank=True, default="")
    # The row created: a records model's label ("records.observation") and primary key.
    target_model = models.CharField(max_length=64)
    target_id = models.BigIntegerField()
    imported_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hospital", "resource_type", "source_token", "part_token"],
                name="fhir_import_identity_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.resource_type} -> {self.target_model}:{self.target_id}"
