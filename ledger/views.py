"""Ledger over HTTP: the public key and latest checkpoint (public), receipts and proofs
(to users allowed to see the event), consistency proofs (to any signed-in user: they hold
only hashes)."""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET

from ledger import merkle, proofs, publication, selectors, verifier


def _json_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_GET
@cache_control(public=True, max_age=300)  # public: the site's no-store leaves it cacheable
def public_key_view(request: HttpRequest) -> HttpResponse:
    """The log's verifier key (signed-note vkey format), at a stable URL."""
    return HttpResponse(proofs.public_vkey() + "\n", content_type="text/plain; charset=utf-8")


@require_GET
@never_cache
def checkpoint_latest_view(request: HttpRequest) -> HttpResponse:
    """The latest witnessed checkpoint with its witnesses' cosignatures (the latest one when
    no witnesses are configured or none is witnessed yet; the header says which)."""
    checkpoint, witnessed = publication.checkpoint_published()
    if checkpoint is None:
        return HttpResponse("The log is empty.\n", status=404, content_type="text/plain")
    response = HttpResponse(
        publication.cosigned_note(checkpoint), content_type="text/plain; charset=utf-8"
    )
    response["X-Ledger-Witnessed"] = "yes" if witnessed else "no"
    return response


def receipt_filename(*, event) -> str:
    """The name a JSON receipt is downloaded under (the Verify page's command names it)."""
    return f"receipt-{event.event_id}.json"


@require_GET
@never_cache
def receipt_view(request: HttpRequest, event_id: str) -> HttpResponse:
    if not request.user.is_authenticated:
        return _json_error(401, "Sign in to download receipts.")
    try:
        event = selectors.access_event(request.user, event_id)
    except Http404:
        return _json_error(404, "No such event.")
    receipt = proofs.receipt_for_event(event=event)
    if receipt is None:
        return _json_error(409, "This event is not anchored yet; try again in a few seconds.")
    if request.GET.get("format") == "tlog-proof":
        response = HttpResponse(
            verifier.tlog_proof_from_receipt(receipt), content_type="text/plain; charset=utf-8"
        )
        filename = f"receipt-{event.event_id}.tlog-proof"
    else:
        response = HttpResponse(
            json.dumps(receipt, indent=2), content_type="application/json; charset=utf-8"
        )
        filename = receipt_filename(event=event)
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@never_cache
def consistency_view(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return _json_error(401, "Sign in to request proofs.")
    try:
        old_size = int(request.GET.get("old", ""))
        new_size = int(request.GET.get("new", ""))
    except ValueError:
        return _json_error(400, "Give the sizes of two checkpoints as ?old=M&new=N.")
    try:
        document = proofs.consistency_document(old_size=old_size, new_size=new_size)
    except Http404 as exc:
        return _json_error(404, str(exc))
    except (ValueError, merkle.MissingNodeError):
        return _json_error(400, "No consistency proof exists between those sizes.")
    return JsonResponse(document)
