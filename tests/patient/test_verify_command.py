"""The Verify page's command works as printed (issue 16, item 11): copied into a shell in
the folder where the receipt was saved, it fetches the key from the site and verifies."""

import html
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ledger.anchoring import ledger_anchor_pending
from ledger.models import Event

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_the_printed_command_verifies_the_downloaded_receipt(
    live_server, client, sign_in, consent_world, tmp_path
):
    w = consent_world
    sign_in(client, w["clinician_a"])
    client.get(f"/provider/patients/{w['patient'].pk}/")
    event = Event.objects.get(kind="chart.read")
    ledger_anchor_pending()
    sign_in(client, w["account"])
    host = urlsplit(live_server.url).netloc
    page = client.get(f"/patient/access/{event.event_id}/verify/", HTTP_HOST=host)
    assert page.status_code == 200 and b"Verified: entry" in page.content
    found = re.search(r'<code id="verify-command">(.*?)</code>', page.content.decode(), re.S)
    command = html.unescape(found.group(1))
    assert f"{live_server.url}/ledger/key" in command and "$(curl -s /ledger/key)" not in command
    receipt = client.get(f"/ledger/events/{event.event_id}/receipt?download=1")
    filename = re.search(r'filename="([^"]+)"', receipt["Content-Disposition"]).group(1)
    assert filename in command
    (tmp_path / filename).write_bytes(receipt.content)
    # As printed, with this test's Python standing for the reader's.
    assert command.startswith("python -m ledger.verifier ")
    runnable = f"{sys.executable} {command.removeprefix('python ')}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        ["sh", "-c", runnable], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OK: entry {page.context['result'].index} is included")
