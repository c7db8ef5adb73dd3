"""Settings come from the environment; production refuses to start without its secrets."""

import os
import subprocess
import sys
from pathlib import Path

from portal.localsecrets import SECRET_NAMES, generate_secret

ROOT = Path(__file__).resolve().parent.parent
TEST_OVERRIDES = (
    "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "DEBUG", "PORTAL_LOCAL_DIR", "SMART_REDIRECT_URI_SCHEMES",
)  # fmt: skip


def _run(args, env_extra, tmp_path):
    # A clean production-like environment: none of what tests/settings.py exported.
    dropped = {*SECRET_NAMES, *TEST_OVERRIDES, "DJANGO_SETTINGS_MODULE", "DATABASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"PORTAL_LOCAL_DIR": str(tmp_path), **env_extra})
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_missing_secrets_stop_production_start_up(tmp_path):
    result = _run(["manage.py", "check"], {"DEBUG": "false"}, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    for name in SECRET_NAMES:
        assert name in result.stderr


def test_every_command_names_the_missing_secrets(tmp_path):
    # Not only `check`: makemigrations used to fail first on "Models aren't loaded yet".
    result = _run(["manage.py", "makemigrations", "--check", "--dry-run"], {}, tmp_path)
    assert result.returncode != 0
    assert "Missing required secret(s): " in result.stderr
    assert "AppRegistryNotReady" not in result.stderr


def test_one_missing_secret_is_named(tmp_path):
    env = {name: generate_secret(name) for name in SECRET_NAMES}
    env.pop("LEDGER_SIGNING_KEY")
    result = _run(["manage.py", "check"], {"DEBUG": "false", **env}, tmp_path)
    assert result.returncode != 0
    assert "Missing required secret(s): LEDGER_SIGNING_KEY." in result.stderr


def test_check_deploy_reports_nothing_with_production_settings(tmp_path):
    env = {name: generate_secret(name) for name in SECRET_NAMES}
    env.update({"DEBUG": "false", "ALLOWED_HOSTS": "portal.example.org"})
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_demo_generates_secrets_once_into_an_untracked_private_file(tmp_path):
    result = _run(["manage.py", "check"], {"DEBUG": "true"}, tmp_path)
    assert result.returncode == 0, result.stderr
    secrets_file = tmp_path / "secrets.env"
    first = secrets_file.read_text()
    assert all(f"{name}=" in first for name in SECRET_NAMES)
    assert secrets_file.stat().st_mode & 0o077 == 0
    _run(["manage.py", "check"], {"DEBUG": "true"}, tmp_path)
    assert secrets_file.read_text() == first  # a restart keeps the same keys
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".local/secrets.env"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0


def test_a_checkout_marked_as_demo_runs_manage_py_without_environment(tmp_path):
    (tmp_path / "demo.env").write_text("DEBUG=true\n")
    result = _run(["manage.py", "check"], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "secrets.env").exists()
    # The environment still wins: an explicit DEBUG=false with no secrets refuses to start.
    refused = _run(["manage.py", "check"], {"DEBUG": "false"}, tmp_path)
    assert refused.returncode != 0
