"""Who may see which ledger event (a receipt names its event; its leaf names the patient).

The ledger knows its own rule (auditors see everything, an actor sees their own events); what
only the portal knows (which hospitals a user administers, which patients a user is) is
handed to it by the portal's apps at start-up, through `event_readers_register`.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from django.contrib.auth.models import AnonymousUser, User
from django.http import Http404

from ledger.models import Event

AnyUser = User | AnonymousUser
# May this (signed-in) user see this event? Only ever widens what the ledger's own rule allows.
EventReader = Callable[[User, Event], bool]

_readers: list[EventReader] = []


def event_readers_register(reader: EventReader) -> None:
    """Register a rule that lets more users see an event (from an AppConfig.ready())."""
    if reader not in _readers:
        _readers.append(reader)


def user_is_verified(user: AnyUser) -> bool:
    """Signed in with a second factor (django-otp's OTPMiddleware sets `is_verified`)."""
    return bool(getattr(user, "is_verified", lambda: False)())


def access_event(user: AnyUser, event_id: UUID | str) -> Event:
    """Fetch an event the user may see, or 404 (missing and forbidden look the same).

    Auditors (superusers, signed in with two factors) see every event; the actor their own;
    anyone else what a registered reader rule allows (the portal's: hospital admins the
    events of the hospitals they administer, patients the events about their own
    registrations).
    """
    try:
        event = Event.objects.filter(event_id=UUID(str(event_id))).first()
    except ValueError:
        event = None
    if event is None or not user.is_authenticated:
        raise Http404("No such event.")
    if user.is_superuser and user_is_verified(user):
        return event
    if event.actor_id is not None and event.actor_id == user.pk:
        return event
    if any(reader(user, event) for reader in _readers):
        return event
    raise Http404("No such event.")
