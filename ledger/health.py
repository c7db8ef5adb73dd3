"""The admin's ledger health page (auditors only): latest checkpoint, pending backlog,
anchoring lag chart, last verification, and "verify now" (a Celery task with progress)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from ledger import anchoring, proofs, publication, runs
from ledger.models import VerificationRun


def _auditor(request: HttpRequest) -> None:
    # The log spans every hospital: its volume and backlog are not one hospital's business.
    if not request.user.is_superuser:
        raise Http404("No such page.")


def run_summary(run: VerificationRun | None) -> dict | None:
    if run is None:
        return None
    result = run.result or {}
    return {
        "id": run.pk,
        "status": run.status,
        "finished": run.finished,
        "stage": run.stage,
        "done": run.done,
        "total": run.total,
        "percent": run.percent,
        "requested_at": run.requested_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "ok": result.get("ok"),
        "entries": result.get("entries"),
        "checkpoints": result.get("checkpoints"),
        "subjects": result.get("subjects"),
        "finding_count": result.get("finding_count"),
        "error": result.get("error"),
    }


def health_view(request: HttpRequest, admin_site) -> HttpResponse:
    _auditor(request)
    checkpoint = proofs.checkpoint_latest()
    latest = runs.verification_run_latest()
    in_flight = runs.verification_run_in_flight()
    last_finished = latest if latest is not None and latest.finished else (
        runs.verification_run_finished_latest()
    )  # fmt: skip
    hours = 3
    context = {
        **admin_site.each_context(request),
        "title": "Ledger health",
        "checkpoint": checkpoint,
        "root_hex": bytes(checkpoint.root_hash).hex() if checkpoint else "",
        "pending": anchoring.pending_count(),
        "publication": publication.publication_summary(),
        "buckets": runs.anchoring_lag_buckets(hours=hours),
        "hours": hours,
        "run": in_flight,
        "in_flight": in_flight is not None,
        "last_finished": last_finished,
        "findings": ((last_finished.result or {}).get("findings") or [])[:50]
        if last_finished
        else [],
    }
    return TemplateResponse(request, "admin/ledger/health.html", context)


@require_POST
def verify_view(request: HttpRequest) -> HttpResponse:
    _auditor(request)
    run = runs.verification_run_start(actor=request.user)
    messages.info(request, f"Verification run {run.pk} queued.")
    return redirect("admin:ledger_health")


def run_status_view(request: HttpRequest, run_id: int) -> JsonResponse:
    _auditor(request)
    run = VerificationRun.objects.filter(pk=run_id).first()
    if run is None:
        raise Http404("No such run.")
    return JsonResponse(run_summary(run))
