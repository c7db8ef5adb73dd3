"""Keyed search tokens for partial names and MRNs, without names or MRNs in clear.

Patient has one blind index per field (`mrn_index`, `given_name_index`, ...): an exact,
whole-value match. To find "Sil" or "silva tom" or "SM-0", each patient also has a set of
tokens (PatientSearchToken rows), each an HMAC-SHA256 (crypto.blind_index) under the
hospital's index key, with its own purpose (so its own derived key):

- `given_prefix` / `family_prefix`: every prefix of 3 to PREFIX_MAX characters of each part
  of the given and family names (a part shorter than 3 characters: the part itself),
  normalized: accents dropped, case folded, apostrophes dropped, other punctuation splitting
  parts ("Ana-María O'Neil" -> "ana", "maria", "oneil");
- `mrn_prefix`: every prefix of 3 to MRN_PREFIX_MAX characters of the MRN with case folded
  and everything but letters and digits dropped ("SM-0042" -> "sm0", "sm00", ...).

What the tokens reveal to someone holding the database without the keys (the index key is
derived from the hospital's data key, stored only wrapped under the master key, which the
database does not hold): which patients of one hospital share a name prefix or an MRN prefix
(equal tokens), where the existing indexes reveal which share a whole name or MRN. Nothing
across hospitals (each has its own key) or across fields (each purpose has its own key).
Guessing a token needs the key, as for the existing indexes: no dictionary attack without it,
and whoever holds it holds the data key and can decrypt the names anyway. Each patient's set
is padded with random tokens to a multiple of PAD tokens and stored in random order, so the
number and order of rows do not give the names' lengths.
"""

from __future__ import annotations

import os
import random
import re
import unicodedata
from collections.abc import Iterable

from portal.records.crypto import blind_index

PREFIX_MIN = 3
PREFIX_MAX = 16  # longer query words are cut to this length (still a prefix match)
MRN_PREFIX_MAX = 24
PAD = 8
MAX_WORDS = 6  # words of a query used; more only narrow a list that is already short

GIVEN, FAMILY, MRN = "given_prefix", "family_prefix", "mrn_prefix"

_APOSTROPHES = re.compile(r"['\u2019\u02bc`]")
_NOT_ALNUM = re.compile(r"[\W_]+")


def _fold(text: str) -> str:
    """Accents dropped (NFKD, combining marks removed), case folded."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFKC", bare.casefold())


def name_parts(text: str) -> list[str]:
    """ "Ana-María O'Neil" -> ["ana", "maria", "oneil"]."""
    return _NOT_ALNUM.sub(" ", _APOSTROPHES.sub("", _fold(text))).split()


def mrn_compact(text: str) -> str:
    """ "SM-0042" -> "sm0042"."""
    return _NOT_ALNUM.sub("", _fold(text))


def _prefixes(word: str, longest: int) -> Iterable[str]:
    return (word[:k] for k in range(min(PREFIX_MIN, len(word)), min(len(word), longest) + 1))


def _token(text: str, *, hospital_id: int, purpose: str) -> str:
    return blind_index(text, hospital_id=hospital_id, purpose=purpose)


def patient_tokens(*, hospital_id: int, given_name: str, family_name: str, mrn: str) -> list[str]:
    """The padded, shuffled token set of one patient (what PatientSearchToken rows hold)."""
    tokens: set[str] = set()
    for value, purpose in ((given_name, GIVEN), (family_name, FAMILY)):
        for part in name_parts(value):
            tokens.update(
                _token(p, hospital_id=hospital_id, purpose=purpose)
                for p in _prefixes(part, PREFIX_MAX)
            )
    compact = mrn_compact(mrn)
    if len(compact) >= PREFIX_MIN:
        tokens.update(
            _token(p, hospital_id=hospital_id, purpose=MRN)
            for p in _prefixes(compact, MRN_PREFIX_MAX)
        )
    while len(tokens) % PAD:
        tokens.add(os.urandom(16).hex())  # 128 random bits: never any query's token
    shuffled = list(tokens)
    random.SystemRandom().shuffle(shuffled)
    return shuffled


def query_words(query: str) -> list[str]:
    """A search as typed, in words: "Silva, Tom" -> ["Silva", "Tom"]."""
    return [w for w in re.split(r"[\s,;]+", query or "") if w][:MAX_WORDS]


def word_name_tokens(word: str, *, hospital_id: int) -> list[list[str]]:
    """For each name part of a typed word, the tokens any of which matches it (given or
    family name): "o'neil" -> [[given("oneil"), family("oneil")]]."""
    return [
        [_token(part[:PREFIX_MAX], hospital_id=hospital_id, purpose=p) for p in (GIVEN, FAMILY)]
        for part in name_parts(word)
    ]


def word_mrn_token(word: str, *, hospital_id: int) -> str | None:
    """The token of an MRN prefix the word could be (3 characters or more), else None."""
    compact = mrn_compact(word)
    if len(compact) < PREFIX_MIN:
        return None
    return _token(compact[:MRN_PREFIX_MAX], hospital_id=hospital_id, purpose=MRN)
