"""Pages of FHIR searches: keyset paging over sections, and the page tokens of their links.

A search's answer is one or more *sections* (a type's records, a chart's consents; for
`$everything` every type in turn), each in a stable order: a sort key, then the row's id.
A page continues from a *position* (section, sort key, id) — keyset paging, not OFFSET, so
a record stored between two pages neither repeats nor pushes one out of the next page.

Links (`self`, `first`, `next`, `previous`) carry only `_page=<token>`. The token is:
- opaque: the search's parameters and the position, encrypted (AES-GCM,
  portal.records.crypto) under the data key of the hospital the request acts in, so
  nothing in it (a name, a birth date, an MRN, a code, a date) is readable in a URL, a log
  or a proxy; the caller need not resend the parameters (a search by POST pages by GET);
- bound: the associated data names the user, the hospital and the URL it pages, so a token
  replayed by another user, with another X-Hospital, or on another URL does not decrypt;
- signed and dated with django.core.signing (its own salt), so a token older than
  TOKEN_MAX_AGE or altered in any byte is refused before any key is looked at.
Every refusal is the same 404 (PageNotFound): a page that is not the caller's is missing,
like any resource they may not see (house rule: missing and forbidden both 404), and one
answer for altered, expired and foreign tokens tells nobody which one they held.

The token holds no grant: every page re-opens the chart through records.access for the
caller, so a token never shows what its holder may no longer see.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core import signing
from django.db.models import Q, QuerySet
from django.http import Http404

from portal.records import crypto

SALT = "portal.fhir.paging.v1"
TOKEN_MAX_AGE = 3600  # seconds: a search's pages are read within the hour
# How many rows a filtered section reads per round (AuditEvent: the ledger decides per row).
_BATCH = 50


class PageNotFound(Http404):
    """A page token that is not the caller's (altered, expired, or another user's,
    hospital's or URL's)."""


# --- positions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """Where a page starts or ends: the section, the row's sort key (ISO text; None when
    the section sorts by id alone) and its id."""

    section: int
    key: str | None
    pk: int

    def as_list(self) -> list[Any]:
        return [self.section, self.key, self.pk]

    @classmethod
    def from_list(cls, value: Any) -> Position | None:
        if value is None:
            return None
        section, key, pk = value
        return cls(int(section), None if key is None else str(key), int(pk))


def _key_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _key_value(text: str) -> Any:
    return dt.datetime.fromisoformat(text)


# --- sections -------------------------------------------------------------------------------


@dataclass
class Section:
    """One ordered run of rows: a QuerySet (paged in SQL) or a list already bounded by the
    chart (paged in memory). `key`: the column sorted by, then id (None: id alone).
    `keep`: a per-row test the rows must also pass (the section's total is then unknown).
    `prepare`: called once with all of the section's rows on a page before any is rendered
    (what rendering needs of several rows at once, in one query: logical ids)."""

    rows: QuerySet | list[Any]
    render: Callable[[Any], dict[str, Any]]
    key: str | None = None
    descending: bool = False
    keep: Callable[[Any], bool] | None = None
    prepare: Callable[[list[Any]], None] | None = None

    def position(self, index: int, row: Any) -> Position:
        return Position(index, _key_text(getattr(row, self.key)) if self.key else None, row.pk)

    def total(self) -> int | None:
        if self.keep is not None:
            return None
        if isinstance(self.rows, QuerySet):
            return self.rows.count()
        return len(self.rows)

    def ordered(self) -> list[Any]:
        """Every row, in the section's order (unpaged readers: an export of one chart)."""
        return self.fetch(cursor=None, backward=False, limit=None)

    def fetch(self, *, cursor: Position | None, backward: bool, limit: int | None) -> list[Any]:
        """Up to `limit` rows after `cursor` in the section's order (`backward`: before it,
        nearest first; `limit` None: all of them)."""
        if limit is not None and limit <= 0:
            return []
        descending = self.descending != backward
        if isinstance(self.rows, QuerySet):
            return self._fetch_sql(cursor, descending, limit)
        rows = sorted(self.rows, key=self._sort_key, reverse=descending)
        if cursor is not None:
            mark = (_key_value(cursor.key) if self.key and cursor.key else None, cursor.pk)
            rows = [r for r in rows if self._beyond(self._sort_key(r), mark, descending)]
        if self.keep is not None:
            rows = [r for r in rows if self.keep(r)]
        return rows[:limit]

    def _sort_key(self, row: Any) -> tuple[Any, int]:
        return (getattr(row, self.key) if self.key else None, row.pk)

    def _beyond(self, value: tuple[Any, int], mark: tuple[Any, int], descending: bool) -> bool:
        if self.key is None:
            return value[1] < mark[1] if descending else value[1] > mark[1]
        return value < mark if descending else value > mark

    def _fetch_sql(self, cursor: Position | None, descending: bool, limit: int | None) -> list[Any]:
        assert isinstance(self.rows, QuerySet)
        sign = "-" if descending else ""
        order = [f"{sign}{self.key}", f"{sign}pk"] if self.key else [f"{sign}pk"]
        qs = self.rows.order_by(*order)
        op = "lt" if descending else "gt"
        if cursor is not None:
            if self.key and cursor.key is not None:
                value = _key_value(cursor.key)
                qs = qs.filter(
                    Q(**{f"{self.key}__{op}": value})
                    | Q(**{self.key: value, f"pk__{op}": cursor.pk})
                )
            else:
                qs = qs.filter(**{f"pk__{op}": cursor.pk})
        if limit is None:
            return [r for r in qs if self.keep is None or self.keep(r)]
        if self.keep is None:
            return list(qs[:limit])
        # Filtered rows: read in batches until the page is full or the section ends.
        out: list[Any] = []
        while len(out) < limit:
            batch = list(qs[: max(_BATCH, limit)])
            out += [r for r in batch if self.keep(r)]
            if len(batch) < max(_BATCH, limit):
                break
            last = self.position(0, batch[-1])
            qs = qs.filter(
                Q(**{f"{self.key}__{op}": _key_value(last.key)})
                | Q(**{self.key: _key_value(last.key), f"pk__{op}": last.pk})
                if self.key and last.key is not None
                else Q(**{f"pk__{op}": last.pk})
            )
        return out[:limit]


@dataclass
class Page:
    rows: list[tuple[Section, Any]]
    first: Position | None
    last: Position | None
    has_next: bool
    has_previous: bool
    total: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def rows_rendered(rows: list[tuple[Section, Any]]) -> list[dict[str, Any]]:
    """Rows of sections (a page's, or every row of an unpaged read) rendered in order, each
    section's `prepare` first given all of its rows."""
    grouped: dict[int, tuple[Section, list[Any]]] = {}
    for section, row in rows:
        grouped.setdefault(id(section), (section, []))[1].append(row)
    for section, members in grouped.values():
        if section.prepare is not None:
            section.prepare(members)
    return [section.render(row) for section, row in rows]


def page_fetch(
    sections: list[Section],
    *,
    count: int,
    cursor: Position | None,
    backward: bool = False,
    with_total: bool = True,
) -> Page:
    """One page of `count` rows across `sections`, after `cursor` (backward: before it).
    One query per section it reads (and one COUNT per section for the total)."""
    total: int | None = None
    if with_total:
        totals = [s.total() for s in sections]
        total = None if any(t is None for t in totals) else sum(t or 0 for t in totals)
    found: list[tuple[int, Any]] = []
    if count > 0 and sections:
        start = cursor.section if cursor is not None else (len(sections) - 1 if backward else 0)
        start = max(0, min(start, len(sections) - 1))
        order = range(start, -1, -1) if backward else range(start, len(sections))
        for index in order:
            at = cursor if cursor is not None and index == cursor.section else None
            rows = sections[index].fetch(cursor=at, backward=backward, limit=count + 1 - len(found))
            found += [(index, row) for row in rows]
            if len(found) > count:
                break
    more = len(found) > count
    found = found[:count]
    if backward:
        found.reverse()
    positions = [sections[i].position(i, row) for i, row in found]
    return Page(
        rows=[(sections[i], row) for i, row in found],
        first=positions[0] if positions else None,
        last=positions[-1] if positions else None,
        has_next=(cursor is not None) if backward else more,
        has_previous=more if backward else (cursor is not None and bool(found)),
        total=total,
    )


# --- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageState:
    """What a page token says: the search's normalised parameters and where the page is."""

    params: dict[str, list[str]]
    cursor: Position | None = None
    backward: bool = False


def _aad(*, user_id: int, hospital_id: int, route: str) -> str:
    return f"fhir-page|{hospital_id}|{user_id}|{route}"


def page_token(*, user_id: int, hospital_id: int, route: str, state: PageState) -> str:
    """A token for one page of the search at `route` (the URL below the FHIR base that it
    pages: "Observation", "Patient/12/$everything"), for this user at this hospital."""
    payload = json.dumps(
        {
            "q": state.params,
            "p": state.cursor.as_list() if state.cursor else None,
            "b": state.backward,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    blob = crypto.encrypt(
        payload, hospital_id=hospital_id, aad=_aad(user_id=user_id, hospital_id=hospital_id,
                                                     route=route)
    )  # fmt: skip
    text = base64.urlsafe_b64encode(blob).decode().rstrip("=")
    return signing.TimestampSigner(salt=SALT).sign(text)


def page_state(*, token: str, user_id: int, hospital_id: int, route: str) -> PageState:
    """The page a token names, if it was issued to this user at this hospital for this
    route within TOKEN_MAX_AGE and is unaltered; else PageNotFound."""
    try:
        text = signing.TimestampSigner(salt=SALT).unsign(token.strip(), max_age=TOKEN_MAX_AGE)
        blob = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload = json.loads(
            crypto.decrypt(
                blob,
                hospital_id=hospital_id,
                aad=_aad(user_id=user_id, hospital_id=hospital_id, route=route),
            )
        )
        params = {str(k): [str(v) for v in vs] for k, vs in payload["q"].items()}
        return PageState(params, Position.from_list(payload["p"]), bool(payload["b"]))
    except (signing.BadSignature, binascii.Error, ValueError, TypeError, KeyError,
            crypto.DecryptionError):  # fmt: skip
        raise PageNotFound("No such page.") from None
