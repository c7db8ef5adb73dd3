"""The ledger's core takes events and gives proofs: it imports nothing from the portal.

Only its HTTP views and admin pages (and the admin's health page) may use the portal's
helpers; whatever else it must know (who may read an event) is registered by the portal's
apps at start-up.
"""

import ast
from pathlib import Path

import ledger

PAGES = {"admin.py", "views.py", "health.py", "urls.py"}
ROOT = Path(ledger.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_the_ledgers_core_imports_nothing_from_the_portal():
    core = [p for p in ROOT.rglob("*.py") if p.name not in PAGES or p.parent != ROOT]
    assert any(p.name == "events.py" for p in core)
    offending = {
        str(p.relative_to(ROOT)): sorted(
            n for n in _imports(p) if n.split(".")[0] in {"portal", "consent"}
        )
        for p in core
    }
    assert {k: v for k, v in offending.items() if v} == {}
