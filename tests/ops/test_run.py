"""`make run`'s supervisor on a fresh, empty demo directory: migrates, seeds, serves the
log-in page with a worker running, and Ctrl-C stops every process it started."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from portal.localsecrets import SECRET_NAMES

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> set[int]:
    """Every live descendant of pid, from /proc (no extra dependency)."""
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and int(entry.name) not in found:
                found.add(int(entry.name))
                frontier.add(int(entry.name))
    return found


@pytest.mark.worker
def test_make_run_serves_the_portal_with_a_worker_and_stops_on_ctrl_c(tmp_path):
    port = _free_port()
    dropped = {*SECRET_NAMES, "DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        {"DEBUG": "true", "PORTAL_LOCAL_DIR": str(tmp_path), "PORT": str(port),
         "ALLOWED_HOSTS": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"}
    )  # fmt: skip
    log = open(tmp_path / "run.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "portal.run"], cwd=ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            text = (tmp_path / "run.log").read_text()
            if "The portal is running at" in text or proc.poll() is not None:
                break
            time.sleep(0.5)
        text = (tmp_path / "run.log").read_text()
        assert "The portal is running at" in text, text[-4000:]
        assert "A Celery worker is consuming tasks." in text
        assert "Demo-Portal-2026" in text and "stmary.clinician" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/") as response:
            assert response.status == 200
            assert b"Sign in" in response.read()
        started = _children(proc.pid)
        assert len(started) >= 3  # gunicorn, celery worker, celery beat (and their children)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        log.close()
    time.sleep(1)
    assert not [pid for pid in started if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text()]  # fmt: skip
