"""Issue 13, item 9: no break-glass notice is lost.

A clinician breaks glass over the provider portal while the mail server is down or refusing.
The e-mail notices to the patient and the chart hospital's admins must not be marked as sent
until the mail server accepted them; the worker retries with back-off, the beat sweep
re-enqueues notices whose message was lost, each notice goes out exactly once, and the
chart hospital's admins see undelivered notices in /admin/. The mail server here is a real
SMTP server (a few lines over a socket, in a thread of the test) spoken to by Django's SMTP
backend, from this process or from a real Celery worker."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from consent import tasks
from consent.models import BreakGlass
from tests.conftest import purge_broker, wait_until

DETAILS = {"mrn": "SM-100", "birth_date": "1970-02-03", "reason": "Unconscious, found in street"}


class SmtpServer(socketserver.ThreadingTCPServer):
    """Just enough SMTP for smtplib: refuses the first `refuse` connections (421 at the
    greeting); answers each message's DATA by `plan` ("ok" or "fail", 451) while it lasts,
    and accepts the rest."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int, *, refuse: int = 0, plan: tuple[str, ...] = ()) -> None:
        self.refuse, self.plan = refuse, list(plan)
        self.connections = 0
        self.messages: list[dict] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _SmtpHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _SmtpHandler(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        server: SmtpServer = self.server
        with server.lock:
            server.connections += 1
            refuse = server.refuse > 0
            server.refuse -= int(refuse)
        if refuse:
            self.reply("421 Service not available, try again later")
            return
        self.reply("220 test ESMTP")
        recipients, data, in_data = [], [], False
        while line := self.rfile.readline():
            if in_data:
                if line in (b".\r\n", b".\n"):
                    in_data = False
                    with server.lock:
                        fail = bool(server.plan) and server.plan.pop(0) == "fail"
                        if not fail:
                            body = b"".join(data).decode(errors="replace")
                            server.messages.append({"to": recipients, "body": body})
                    self.reply("451 Local error, try again" if fail else "250 Accepted")
                    recipients, data = [], []
                else:
                    data.append(line)
                continue
            command = line[:4].upper()
            if command in (b"EHLO", b"HELO"):
                self.reply("250 test")
            elif command == b"RCPT":
                recipients.append(line.decode().split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif command in (b"MAIL", b"RSET", b"NOOP"):
                self.reply("250 OK")
            elif command == b"DATA":
                in_data = True
                self.reply("354 End data with <CR><LF>.<CR><LF>")
            elif command == b"QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Not implemented")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_port(settings):
    """Django's SMTP backend pointed at a port where nothing listens (yet)."""
    port = _free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    return port


@pytest.fixture
def servers():
    started: list[SmtpServer] = []

    def start(port: int, **kwargs) -> SmtpServer:
        server = SmtpServer(port, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _break_glass(client, sign_in, w) -> BreakGlass:
    sign_in(client, w["clinician_b"])
    response = client.post("/provider/break-glass/", {**DETAILS, "hospital": w["a"].pk})
    assert response.status_code == 302
    return BreakGlass.objects.get(user=w["clinician_b"])


def _unsent_in_admin(client, sign_in, w, glass) -> bool:
    sign_in(client, w["admin_a"])
    page = client.get("/admin/consent/breakglass/?mailed=no")
    assert page.status_code == 200
    listed = str(glass.row_uuid) in page.content.decode()
    sent = client.get("/admin/consent/breakglass/?mailed=yes").content.decode()
    assert listed != (str(glass.row_uuid) in sent)
    return listed


def _recipients(server: SmtpServer) -> list[str]:
    return sorted(r for m in server.messages for r in m["to"])


@pytest.mark.django_db
def test_a_failed_send_is_never_marked_sent_and_is_retried(
    client, sign_in, consent_world, smtp_port, servers, django_capture_on_commit_callbacks
):
    w = consent_world
    with django_capture_on_commit_callbacks() as callbacks:
        glass = _break_glass(client, sign_in, w)
    assert callbacks  # the notice is enqueued after the commit

    # Nothing listens: the task fails (and retries), and nothing is marked sent.
    result = tasks.break_glass_notify.apply(args=[glass.pk])
    assert result.failed()
    glass.refresh_from_db()
    assert glass.mailed_at is None and glass.patient_mailed_at is None
    assert glass.admins_mailed_at is None and glass.mail_tried_at is not None
    assert _unsent_in_admin(client, sign_in, w, glass)

    # The server answers but refuses for a while: retried with back-off until it accepts
    # (in-process, Celery runs the retries at once); each notice goes out exactly once.
    server = servers(smtp_port, refuse=3)
    assert tasks.break_glass_notify.apply(args=[glass.pk]).successful()
    assert server.connections >= 4
    assert _recipients(server) == ["admin-a@example.org", "pat@example.org"]
    assert all("Unconscious" not in m["body"] for m in server.messages)
    glass.refresh_from_db()
    assert glass.mailed_at is not None
    assert not _unsent_in_admin(client, sign_in, w, glass)
    assert tasks.break_glass_notify.apply(args=[glass.pk]).successful()  # delivered again
    assert len(server.messages) == 2


@pytest.mark.django_db
def test_a_notice_half_sent_sends_only_the_other_half(
    client, sign_in, consent_world, smtp_port, servers, django_capture_on_commit_callbacks
):
    w = consent_world
    with django_capture_on_commit_callbacks():
        glass = _break_glass(client, sign_in, w)
    server = servers(smtp_port, plan=("fail",))  # the patient's mail fails once
    from consent import services

    with pytest.raises(Exception, match="Local error"):
        services.break_glass_mail(glass_id=glass.pk)
    glass.refresh_from_db()
    assert glass.patient_mailed_at is None and glass.mailed_at is None
    assert services.break_glass_mail(glass_id=glass.pk) == 2
    assert _recipients(server) == ["admin-a@example.org", "pat@example.org"]
    server.plan = ["ok", "fail"]  # now the admins' mail fails after the patient's went out
    second = BreakGlass.objects.create(
        user=glass.user, user_hospital=glass.user_hospital, patient=glass.patient,
        hospital=glass.hospital, reason="Second emergency, unconscious",
        started_at=timezone.now(), expires_at=timezone.now() + timedelta(hours=4),
    )  # fmt: skip
    with pytest.raises(Exception, match="Local error"):
        services.break_glass_mail(glass_id=second.pk)
    second.refresh_from_db()
    assert second.patient_mailed_at is not None and second.admins_mailed_at is None
    assert _unsent_in_admin(client, sign_in, w, second)
    assert services.break_glass_mail(glass_id=second.pk) == 1  # the admins' only
    assert _recipients(server).count("pat@example.org") == 2  # once per break-glass
    assert _recipients(server).count("admin-a@example.org") == 2


@pytest.mark.worker
def test_a_worker_sends_the_notice_once_the_mail_server_is_back(
    client, sign_in, consent_world, start_worker, servers
):
    w = consent_world
    port = _free_port()
    worker = start_worker(extra_env={"EMAIL_URL": f"smtp://127.0.0.1:{port}"})
    glass = _break_glass(client, sign_in, w)

    # The worker tries, is refused (nothing listens), and tries again later.
    wait_until(
        lambda: worker.output().count("consent.break_glass_notify[") >= 2
        or "raised unexpected" in worker.output(),
        timeout=60, message=worker.output,
    )  # fmt: skip
    glass.refresh_from_db()
    assert glass.mailed_at is None  # not marked sent: nothing was sent
    assert glass.patient_mailed_at is None and glass.mail_tried_at is not None
    assert "Retry in" in worker.output()
    assert _unsent_in_admin(client, sign_in, w, glass)

    server = servers(port)
    wait_until(
        lambda: BreakGlass.objects.get(pk=glass.pk).mailed_at is not None,
        timeout=90, message=worker.output,
    )  # fmt: skip
    assert _recipients(server) == ["admin-a@example.org", "pat@example.org"]
    assert all("Unconscious" not in m["body"] for m in server.messages)
    assert not _unsent_in_admin(client, sign_in, w, glass)


@pytest.mark.worker
def test_the_sweep_sends_a_notice_whose_message_was_lost(
    client, sign_in, consent_world, start_worker, servers
):
    from portal.celery import app

    w = consent_world
    port = _free_port()
    server = servers(port)
    purge_broker()
    glass = _break_glass(client, sign_in, w)  # no worker yet: the message waits in the broker
    # The message carries the id only (no name, MRN, reason or address), and then is lost.
    found = None
    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue("celery")
        with contextlib.suppress(queue.Empty):
            while found is None:
                message = queue.get(timeout=10)
                if message.headers.get("task") == "consent.break_glass_notify":
                    found = message
                message.ack()
        queue.close()
    assert found is not None
    assert found.payload[0] == [glass.pk] and found.payload[1] == {}
    raw = json.dumps([found.headers, found.payload], default=str)
    for phi in ("Jones", "SM-100", "1970", "Unconscious", "pat@example.org"):
        assert phi not in raw, phi

    # Later (moved, not waited for), beat's sweep finds the notice unsent and enqueues it.
    BreakGlass.objects.filter(pk=glass.pk).update(
        started_at=glass.started_at - timedelta(minutes=2)
    )
    worker = start_worker(extra_env={"EMAIL_URL": f"smtp://127.0.0.1:{port}"})
    tasks.notices_sweep.delay()
    wait_until(
        lambda: BreakGlass.objects.get(pk=glass.pk).mailed_at is not None,
        timeout=60, message=worker.output,
    )  # fmt: skip
    assert _recipients(server) == ["admin-a@example.org", "pat@example.org"]
    tasks.notices_sweep.delay()  # nothing left to send: nothing is sent again
    wait_until(lambda: "consent.notices_sweep" in worker.output(), timeout=30)
    assert len(server.messages) == 2
