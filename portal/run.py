"""`make run`: migrate, seed when empty, then run the web server, a Celery worker and beat.

One foreground process supervises the three. Ctrl-C (or SIGTERM) stops all of them; if one
of them dies, the others are stopped too and the exit status says so, so a half-running
portal is never left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def manage(*args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [PY, "manage.py", *args],
        cwd=ROOT,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return result.stdout or ""


def wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - localhost
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    sqlite = not os.environ.get("DATABASE_URL", "").startswith(("postgres", "pgsql"))

    print("Preparing the database ...", flush=True)
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    logins = manage("seed_demo", "--if-empty", "--show-logins", capture=True)

    commands = {
        "web": [
            PY, "-m", "gunicorn", "portal.wsgi:application",
            "--bind", f"{host}:{port}", "--workers", "2", "--access-logfile", "-",
        ],
        "worker": [
            PY, "-m", "celery", "-A", "portal", "worker", "--loglevel", "INFO",
            # SQLite has a single writer: one worker process avoids lock contention there.
            "--concurrency", "1" if sqlite else "2",
            "--without-gossip", "--without-mingle",
        ],
        "beat": [PY, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO"],
    }  # fmt: skip
    procs: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, cmd in commands.items():
        # Own session: Ctrl-C reaches only this supervisor, which then stops each child
        # in order and waits for it, instead of all of them racing on the same signal.
        procs[name] = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)

    url = f"http://{host}:{port}/"
    exit_code = 0
    try:
        if not wait_http(url + "accounts/login/", timeout=60):
            raise RuntimeError("The web server did not answer within 60 s.")
        manage("worker_ping", "--timeout", "60")
        print(logins)
        print(f"  The portal is running at {url}  (Ctrl-C stops the web server, worker and beat)")
        sys.stdout.flush()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"Start-up failed: {exc} Stopping.", file=sys.stderr)
        stopping, exit_code = True, 1

    parent = os.getppid()
    while not stopping:
        if os.getppid() != parent:  # `make` was killed without passing the signal on
            stopping = True
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"The {name} process exited ({proc.returncode}); stopping.", file=sys.stderr)
                exit_code = 1
                stopping = True
        time.sleep(0.5)

    print("\nStopping ...", flush=True)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
