"""The common codes the provider forms offer to pick from, vendored with the project.

Each list is a CSV file in portal/records/codes/ (code, display, system): common LOINC
measurements and labs, SNOMED CT problems, allergies, procedures and encounter types, RxNorm
medications (ingredients and a few common products) and CVX vaccines. The forms show a list
as a searchable <datalist>; what a user picks comes back as its label, "Display (SYSTEM
code)", which `code_pick` turns back into code and display. Anything else typed is kept as
free text (a display without a code). The lists only help: any code may still be stored, as
FHIR imports and the API do.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CODES_DIR = Path(__file__).resolve().parent / "codes"

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
# How a system is named in a label: the name clinicians know it by.
SYSTEM_NAMES = {LOINC: "LOINC", SNOMED: "SNOMED CT", RXNORM: "RxNorm", CVX: "CVX"}

# list name -> its system (each file holds codes of one system).
LISTS = {
    "measurements": LOINC,
    "conditions": SNOMED,
    "allergies": SNOMED,
    "procedures": SNOMED,
    "encounter-types": SNOMED,
    "medications": RXNORM,
    "vaccines": CVX,
}
_LABEL = re.compile(r"^(?P<display>.+) \((?P<system>[A-Za-z ]+) (?P<code>[^()\s]+)\)$")


@dataclass(frozen=True)
class Code:
    code: str
    display: str
    system: str

    @property
    def label(self) -> str:
        return code_label(code=self.code, display=self.display, system=self.system)


def code_label(*, code: str, display: str, system: str) -> str:
    """What the list shows and a pick sends back: "Asthma (SNOMED CT 195967001)"."""
    return f"{display} ({SYSTEM_NAMES[system]} {code})"


@cache
def code_list(name: str) -> tuple[Code, ...]:
    """The codes of one list, in the file's order (most common first)."""
    system = LISTS[name]
    with (CODES_DIR / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        rows = tuple(Code(r["code"], r["display"], r["system"]) for r in csv.DictReader(fh))
    if any(row.system != system for row in rows):
        raise ValueError(f"codes/{name}.csv holds codes of another system than {system}")
    return rows


@cache
def _by_code(name: str) -> dict[str, Code]:
    return {c.code: c for c in code_list(name)}


def code_find(*, name: str, code: str) -> Code | None:
    return _by_code(name).get(code)


def code_pick(*, name: str, text: str) -> tuple[str, str] | None:
    """(code, display) if `text` is a label of this list's system ("Asthma (SNOMED CT
    195967001)"), as a pick from the list sends it; None for free text. A label of a code
    the list does not hold (a record imported with it, being corrected) keeps that code."""
    match = _LABEL.match(text.strip())
    if match is None or match["system"] != SYSTEM_NAMES[LISTS[name]]:
        return None
    known = code_find(name=name, code=match["code"])
    return match["code"], known.display if known else match["display"].strip()
