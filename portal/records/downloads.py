"""How a stored document is served back: the one response for every download (the provider
portal, the patient portal), so each carries a filename with its extension and the same
headers. Who may download it is the access module's to decide, before this is called."""

from __future__ import annotations

from django.http import HttpResponse

from portal import wording
from portal.records.models import Document


def document_filename(*, document: Document) -> str:
    """ "document-12.pdf": the id, not the title (a title may name a condition, and a file
    name ends up in download folders and shared screens), with the type's extension."""
    return wording.download_filename(f"document-{document.pk}", document.content_type)


def document_response(*, document: Document) -> HttpResponse:
    response = HttpResponse(bytes(document.content), content_type=document.content_type)
    response["Content-Disposition"] = (
        f'attachment; filename="{document_filename(document=document)}"'
    )
    # Served as the stored type only (never sniffed), and not kept in shared caches.
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response
