from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from portal.tenancy import selectors

SESSION_KEY = "active_hospital_id"


class ActiveHospitalMiddleware:
    """Finds the signed-in user's active hospital from their own memberships (one query).

    The session only remembers which of the user's memberships is active; a hospital id in
    the session that is not (or no longer) one of them is ignored. This middleware does not
    activate a data scope: the portal decorators do, so a view without one fails closed.
    Sets `request.memberships` (the user's active memberships, with their hospitals),
    `request.membership` and `request.hospital` (the active one, or None).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        memberships = selectors.membership_list_for_user(user=request.user)
        chosen = selectors.membership_for_hospital(
            memberships=memberships, hospital_id=request.session.get(SESSION_KEY)
        )
        if chosen is None and memberships:
            chosen = memberships[0]
        request.memberships = memberships
        request.membership = chosen
        request.hospital = chosen.hospital if chosen else None
        return self.get_response(request)
