from django.db import models


class Heartbeat(models.Model):
    """Last time a background process proved it was alive (written by the worker)."""

    name = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"
