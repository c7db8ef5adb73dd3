from django.utils import timezone

from portal.ops.models import Heartbeat


def heartbeat_record(*, name: str) -> Heartbeat:
    beat, _ = Heartbeat.objects.update_or_create(name=name, defaults={"seen_at": timezone.now()})
    return beat
