"""What a hospital's document store accepts, checked by content and not only by name: the one
rule for every way a document comes in (the provider portal's upload form, the FHIR import).

PDF, PNG, JPEG and UTF-8 plain text, at most settings.DOCUMENT_MAX_BYTES. The declared type
must be one of these and the content must be that type: binary types by their signature, text
by decoding as UTF-8 and by not being markup. HTML or SVG is refused under any declared type,
text/plain included: served back, a browser that sniffs could run it.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError

from portal import wording

DOCUMENT_TYPES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "text/plain": (),
}

# Text that a browser would take for a markup document: one that starts with a tag, a
# comment, a doctype or an XML declaration (the WHATWG sniffing rules' signatures), or one
# that holds an active element anywhere.
_MARKUP_START = re.compile(r"[\ufeff\s]*<[!?/a-zA-Z]")
_MARKUP_ELEMENT = re.compile(
    r"<(?:script|svg|html|iframe|object|embed|body|!doctype|\?xml)[\s/>]", re.IGNORECASE
)


def document_rules_label() -> str:
    """What a form tells people it accepts ("PDF, PNG, JPEG or plain text, up to 5 MB"),
    from the same types and limit the checks below use."""
    return wording.accepted_files_label(DOCUMENT_TYPES, settings.DOCUMENT_MAX_BYTES)


def document_size_validate(*, size: int) -> None:
    """Refuse a document over the size limit (before reading it, where the size is known)."""
    limit = settings.DOCUMENT_MAX_BYTES
    if size > limit:
        raise ValidationError(f"The file is {size:,} bytes; the limit is {limit:,} bytes.")


def document_content_validate(*, content: bytes, declared_type: str) -> str:
    """The document's content type (as stored and served), or ValidationError saying why
    the document is refused. `declared_type` is what the sender says (a Content-Type, an
    attachment's contentType); parameters such as a charset are dropped."""
    document_size_validate(size=len(content))
    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared not in DOCUMENT_TYPES:
        raise ValidationError(f"Only these files are accepted: {document_rules_label()}.")
    mismatch = f"The file's content does not match its type ({declared}); it was not saved."
    magics = DOCUMENT_TYPES[declared]
    if magics and not any(content.startswith(m) for m in magics):
        raise ValidationError(mismatch)
    if declared == "text/plain":
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("A text file must be UTF-8 text.") from None
        if _MARKUP_START.match(text) or _MARKUP_ELEMENT.search(text):
            raise ValidationError(mismatch)
    return declared
