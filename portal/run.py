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


# Two local witnesses (python -m ledger.witness), each with its own key and SQLite file under
# .local/witnesses/, so that a newcomer sees receipts cosigned by a quorum. A real hospital
# configures witnesses run by others instead (README, "Witnesses").
DEMO_WITNESS_PORTS = os.environ.get("DEMO_WITNESS_PORTS", "7381,7382").split(",")
DEMO_WITNESSES = (("w1", int(DEMO_WITNESS_PORTS[0])), ("w2", int(DEMO_WITNESS_PORTS[-1])))
DEMO_QUORUM = "2"  # 2 of 2: a receipt is "witnessed" only once both have cosigned


LOG_KEY_CODE = "\n".join(
    [
        "from ledger.keys import log_origin, log_signer",
        "print(log_origin() + '=' + log_signer().vkey())",
    ]
)


def demo_witnesses() -> tuple[dict[str, list[str]], dict[str, str]]:
    """The witnesses' commands, and the settings that make the portal use them. Keys are
    generated on the first run and kept (a witness's key is its identity)."""
    log = manage("shell", "-c", LOG_KEY_CODE, capture=True).strip().splitlines()[-1]
    commands: dict[str, list[str]] = {}
    specs: list[str] = []
    for name, port in DEMO_WITNESSES:
        folder = Path(os.environ.get("PORTAL_LOCAL_DIR", ROOT / ".local")) / "witnesses" / name
        folder.mkdir(parents=True, exist_ok=True)
        key = folder / "witness.key"
        if not key.exists():
            subprocess.run(
                [PY, "-m", "ledger.witness", "keygen", "--name", f"localhost/witness-{name}",
                 "--out", str(key)],
                cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        vkey = subprocess.run(
            [PY, "-m", "ledger.witness", "vkey", "--key", str(key)],
            cwd=ROOT, check=True, text=True, stdout=subprocess.PIPE,
        ).stdout.strip()  # fmt: skip
        commands[f"witness-{name}"] = [
            PY, "-m", "ledger.witness", "serve", "--db", str(folder / "witness.sqlite3"),
            "--key", str(key), "--log", log, "--listen", f"127.0.0.1:{port}",
        ]  # fmt: skip
        specs.append(f"{name}=http://127.0.0.1:{port}={vkey}")
    env = {"LEDGER_WITNESSES": ",".join(specs), "LEDGER_WITNESS_QUORUM": DEMO_QUORUM}
    return commands, env


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    sqlite = not os.environ.get("DATABASE_URL", "").startswith(("postgres", "pgsql"))

    print("Preparing the database ...", flush=True)
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    logins = manage("seed_demo", "--if-empty", "--show-logins", capture=True)
    # The demo SMART app (served at /smart-demo/), registered for this address.
    logins += manage("smart_demo_app", "--base-url", f"http://{host}:{port}", capture=True)
    # The demo's witnesses, unless witnesses are configured already (then those are used).
    witnesses: dict[str, list[str]] = {}
    if not (os.environ.get("LEDGER_WITNESSES") or os.environ.get("LEDGER_WITNESS_POLICY")):
        witnesses, witness_env = demo_witnesses()
        os.environ.update(witness_env)  # inherited by the web server, the worker and beat

    commands = {
        **witnesses,
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
    if not sqlite:
        # Publication's own worker, so that witnessing does not wait while the main worker's
        # processes are busy anchoring (on SQLite, one writer: the main worker does both).
        commands["publisher"] = [
            PY, "-m", "celery", "-A", "portal", "worker", "--loglevel", "INFO",
            "-Q", "ledger.witness", "--concurrency", "1", "--hostname", "publisher@%h",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
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
        if witnesses:
            print(
                f"  Two local witnesses cosign the ledger (quorum {DEMO_QUORUM} of 2): "
                + ", ".join(f"http://127.0.0.1:{port}" for _, port in DEMO_WITNESSES)
            )
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
