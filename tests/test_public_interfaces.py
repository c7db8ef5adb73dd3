"""The portal's code uses Django, DRF, django-otp, guardian, Celery and psycopg through their
public interfaces only: no private names (underscore attributes of their objects, overridden
private methods), none of the internals it once used, no attributes hung on connection
wrappers. Run by `make test` with the rest of the suite; `python -m pytest
tests/test_public_interfaces.py -q` lists every offence by file and line."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from types import FunctionType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("portal", "ledger", "consent")
FRAMEWORKS = (
    "django", "rest_framework", "django_otp", "guardian", "celery", "kombu", "psycopg",
    "psycopg_pool",
)  # fmt: skip


# Internals the portal once used, by name: attributes, imports, or strings (request.META keys).
KNOWN_INTERNALS = frozenset(
    {
        "pgconn", "_prepare_cursor", "execute_wrappers", "queries_logged",
        "_verify_user_sync", "_install_lazy_accessors", "CSRF_ALLOWED_CHARS",
        "CSRF_COOKIE_NEEDS_UPDATE", "_get_obj_does_not_exist_redirect", "run_on_commit",
        "_get_session_from_db", "validate_no_broken_transaction", "error_from_result",
        "_cached_user", "set_cached_value", "get_db_converters", "_request", "Transformer",
        "_connection_pools", "_named_cursor_idx",
    }
)  # fmt: skip
# Imports of helpers that are not part of a framework's documented API.
KNOWN_INTERNAL_IMPORTS = frozenset(
    {
        ("django.contrib.auth.middleware", "get_user"),
        ("django.middleware.csrf", "CSRF_ALLOWED_CHARS"),
        ("django.middleware.csrf", "CSRF_SECRET_LENGTH"),
        ("django.middleware.csrf", "_get_new_csrf_string"),
        ("psycopg.adapt", "Transformer"),
    }
)

# Underscore names the frameworks document as public (Django's model API: Model._meta,
# Model._default_manager and _base_manager, instance._state.adding/.db) or the standard
# library's named tuples and os._exit.
PUBLIC_UNDERSCORE_NAMES = frozenset(
    {"_meta", "_default_manager", "_base_manager", "_state", "_replace", "_asdict", "_fields",
     "_make", "_exit"}
)  # fmt: skip
# Names a connection wrapper may be given by the code (none: settings_dict is read, not set).
CONNECTION_NAMES = frozenset({"connection", "conn", "db_connection"})


def _source_files() -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                files.append(path)
    return files


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def _project_names() -> frozenset[str]:
    """Every underscore name the project defines itself (functions, classes, methods,
    attributes it assigns, parameters, keyword arguments), so `obj._mine` is allowed."""
    names: set[str] = set()
    for path in _source_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg) or (isinstance(node, ast.keyword) and node.arg):
                names.add(node.arg)
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__"))


def _is_private(name: str) -> bool:
    """_name, not __dunder__ and not an enum's _sunder_ (part of enum's public API)."""
    return name.startswith("_") and not name.endswith("_")


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Subscript):
        return f"{_dotted(node.value)}[]"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}()"
    return type(node).__name__


def offences_in(path: Path, project_names: frozenset[str]) -> list[str]:
    """What the static check finds in one file, as 'line: what' strings."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
            node.name in KNOWN_INTERNALS
        ):
            found.append((line, f"internal {node.name} defined (an override)"))
        if isinstance(node, ast.Attribute):
            owner = _dotted(node.value)
            if node.attr in KNOWN_INTERNALS:
                found.append((line, f"internal {owner}.{node.attr}"))
            elif (
                _is_private(node.attr)
                and owner not in ("self", "cls", "super()")
                and node.attr not in PUBLIC_UNDERSCORE_NAMES
                and node.attr not in project_names
            ):
                found.append((line, f"private attribute {owner}.{node.attr}"))
            if (
                isinstance(node.ctx, ast.Store)
                and (
                    owner in CONNECTION_NAMES
                    or owner.startswith("connections[]")
                    or owner.endswith(".connection")
                )
                and not owner.startswith(("self", "cls"))
            ):
                found.append((line, f"attribute set on a connection: {owner}.{node.attr}"))
        elif isinstance(node, ast.Call) and _dotted(node.func) == "setattr" and node.args:
            if _dotted(node.args[0]) in CONNECTION_NAMES:
                found.append((line, "attribute set on a connection with setattr()"))
        elif isinstance(node, ast.Name) and node.id in KNOWN_INTERNALS:
            found.append((line, f"internal {node.id}"))
        elif isinstance(node, ast.Constant) and node.value in KNOWN_INTERNALS:
            found.append((line, f"internal {node.value!r}"))
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            for alias in node.names:
                if (node.module, alias.name) in KNOWN_INTERNAL_IMPORTS or (
                    top in FRAMEWORKS
                    and (
                        _is_private(alias.name)
                        or any(_is_private(part) for part in node.module.split("."))
                    )
                ):
                    found.append((line, f"import of {node.module}.{alias.name}"))
                elif alias.name in KNOWN_INTERNALS:
                    found.append((line, f"import of internal {node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in FRAMEWORKS and any(_is_private(p) for p in parts):
                    found.append((line, f"import of {alias.name}"))
    return [f"{_rel(path)}:{line}: {what}" for line, what in sorted(set(found))]


def _framework_class(klass: type) -> bool:
    return klass.__module__.split(".")[0] in FRAMEWORKS


def overridden_private_methods(path: Path) -> list[str]:
    """Methods with underscore names, defined in a project class, that a framework base
    class also defines (an override of a private method), and `self._name` in a project
    class where a framework base class defines `_name` (its private state)."""
    module_name = _rel(path)[: -len(".py")].replace("/", ".").removesuffix(".__init__")
    module = importlib.import_module(module_name)
    class_nodes = {
        node.name: node
        for node in ast.parse(path.read_text(), str(path)).body
        if isinstance(node, ast.ClassDef)
    }
    found = []
    for _, klass in inspect.getmembers(module, inspect.isclass):
        if klass.__module__ != module_name:
            continue
        framework_bases = [base for base in klass.__mro__[1:] if _framework_class(base)]
        node = class_nodes.get(klass.__name__)
        for sub in ast.walk(node) if node is not None and framework_bases else ():
            if (
                isinstance(sub, ast.Attribute)
                and isinstance(sub.value, ast.Name)
                and sub.value.id in ("self", "cls")
                and _is_private(sub.attr)
                and sub.attr not in PUBLIC_UNDERSCORE_NAMES
            ):
                owner = next((b for b in framework_bases if sub.attr in vars(b)), None)
                if owner is not None and sub.attr not in vars(klass):
                    found.append(
                        f"{_rel(path)}:{sub.lineno}: {klass.__name__} uses {sub.value.id}."
                        f"{sub.attr} of {owner.__module__}.{owner.__qualname__}"
                    )
        for name, value in vars(klass).items():
            if not _is_private(name) or name in PUBLIC_UNDERSCORE_NAMES:
                continue
            if not isinstance(value, FunctionType | classmethod | staticmethod | property):
                continue  # set by a metaclass or a class attribute, not a method override
            for base in klass.__mro__[1:]:
                if _framework_class(base) and name in vars(base):
                    found.append(
                        f"{_rel(path)}: {klass.__name__}.{name} overrides "
                        f"{base.__module__}.{base.__qualname__}.{name}"
                    )
                    break
    return found


FILES = _source_files()
PROJECT_NAMES = _project_names()


@pytest.mark.parametrize("path", [pytest.param(path, id=_rel(path)) for path in FILES])
def test_code_uses_frameworks_through_public_interfaces_only(path):
    offences = offences_in(path, PROJECT_NAMES) + overridden_private_methods(path)
    assert not offences, "\n".join(offences)


def test_the_check_finds_private_names_and_internals(tmp_path):
    """The check itself: what it must catch, and what it must let through."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from django.contrib.auth.middleware import get_user\n"
        "from django.db import connection\n"
        "def f(request, user, qs):\n"
        "    request._cached_user = user\n"
        "    connection.portal_flag = True\n"
        "    qs._result_cache\n"
        "    request.META['CSRF_COOKIE_NEEDS_UPDATE'] = True\n"
        "    return user._meta.label, type(user)._default_manager, connection.cursor()\n"
    )
    found = "\n".join(offences_in(sample, PROJECT_NAMES))
    assert "import of django.contrib.auth.middleware.get_user" in found
    assert "internal request._cached_user" in found
    assert "attribute set on a connection: connection.portal_flag" in found
    assert "private attribute qs._result_cache" in found
    assert "internal 'CSRF_COOKIE_NEEDS_UPDATE'" in found
    assert "_meta" not in found and "_default_manager" not in found
