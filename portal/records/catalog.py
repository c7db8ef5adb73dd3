"""The LOINC codes the provider forms accept, with their units and plausible ranges.

The forms refuse unknown codes, wrong units and implausible values with a clear message;
imports (FHIR) accept any code and keep what they were given.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Measure:
    code: str
    display: str
    category: str  # vital-signs | laboratory
    unit: str
    low: Decimal
    high: Decimal


_D = Decimal
VS, LAB = "vital-signs", "laboratory"
# fmt: off
MEASURES: dict[str, Measure] = {
    m.code: m
    for m in [
        Measure("8867-4", "Heart rate", VS, "/min", _D(20), _D(300)),
        Measure("8480-6", "Systolic blood pressure", VS, "mm[Hg]", _D(40), _D(300)),
        Measure("8462-4", "Diastolic blood pressure", VS, "mm[Hg]", _D(20), _D(200)),
        Measure("8310-5", "Body temperature", VS, "Cel", _D(25), _D(45)),
        Measure("9279-1", "Respiratory rate", VS, "/min", _D(2), _D(80)),
        Measure("59408-5", "Oxygen saturation", VS, "%", _D(40), _D(100)),
        Measure("29463-7", "Body weight", VS, "kg", _D("0.3"), _D(400)),
        Measure("8302-2", "Body height", VS, "cm", _D(20), _D(260)),
        Measure("39156-5", "Body mass index", VS, "kg/m2", _D(8), _D(100)),
        Measure("2339-0", "Glucose [Mass/volume] in Blood", LAB, "mg/dL", _D(10), _D(1500)),
        Measure("4548-4", "Hemoglobin A1c", LAB, "%", _D(3), _D(20)),
        Measure("2093-3", "Cholesterol [Mass/volume] in Serum", LAB, "mg/dL", _D(50), _D(1000)),
        Measure("2160-0", "Creatinine [Mass/volume] in Serum", LAB, "mg/dL", _D("0.1"), _D(30)),
        Measure("718-7", "Hemoglobin [Mass/volume] in Blood", LAB, "g/dL", _D(2), _D(25)),
    ]
}
# fmt: on

SYSTOLIC, DIASTOLIC = MEASURES["8480-6"], MEASURES["8462-4"]
