"""What the FHIR importer remembers: which source resource became which portal row.

One row per (hospital, resource type, source id, part): re-importing a bundle finds its rows
here and creates nothing twice. `part` tells apart the rows one resource became (a blood
pressure panel becomes one Observation per component, `part` being the component's code).
"""

from __future__ import annotations

from django.db import models

from portal.tenancy.models import Hospital
from portal.tenancy.scoping import TenantManager


class ImportIdentity(models.Model):
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    resource_type = models.CharField(max_length=64)
    source_id = models.CharField(max_length=200)
    part = models.CharField(max_length=64, blank=True, default="")
    # The row created: a records model's label ("records.observation") and primary key.
    target_model = models.CharField(max_length=64)
    target_id = models.BigIntegerField()
    imported_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hospital", "resource_type", "source_id", "part"],
                name="fhir_import_identity_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.source_id} -> {self.target_model}:{self.target_id}"
