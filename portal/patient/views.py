"""The patient portal: my records across hospitals, who accessed them (with proofs), my
consents, access requests and proxies, and an export of everything. Views stay thin: the
selectors decide what the account may see, the consent services write."""

from __future__ import annotations

import json
import shlex

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from consent import selectors as consent_selectors
from consent import services as consent_services
from consent.models import ProxyGrant
from ledger import publication
from ledger import selectors as ledger_selectors
from ledger import views as ledger_views
from portal import wording
from portal.accounts.decorators import account_required, patient_required
from portal.patient import forms
from portal.records import access, audit, downloads, selectors
from portal.records.categories import CHART_CATEGORIES, categories_named
from portal.records.chart import chart_document, records_by_category


def _add_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def _owned(request: HttpRequest) -> list:
    return access.owner_charts(user=request.user, patients=list(request.patient_registrations))


@patient_required
def home_view(request: HttpRequest) -> HttpResponse:
    registrations = request.patient_registrations
    return render(
        request,
        "patient/home.html",
        {
            "registrations": registrations,
            "notifications": consent_selectors.notifications_for(user=request.user),
            "pending": [
                r
                for r in consent_selectors.access_requests_for_owner(user=request.user)
                if r.state == "pending"
            ],
            "recent_access": consent_selectors.access_log_for_owner(
                user=request.user, patients=registrations, limit=5
            ),
            "invitations": consent_selectors.proxy_invitations_received(user=request.user),
        },
    )


def _records_page(request, charts, *, base_title: str, proxy_grant=None) -> HttpResponse:
    category = request.GET.get("category") or "vitals"
    if category not in dict(CHART_CATEGORIES):
        raise Http404("No such category.")
    if not charts:
        raise Http404("No such record.")
    view = records_by_category(charts=charts, category=category)
    if proxy_grant is not None:
        # A carer's read is someone else's access to the patient's records: recorded as
        # staff reads are (via "proxy"), so it is in the patient's access log. The owner's
        # own reads are not (nobody else read anything).
        for chart in charts:
            audit.chart_read_record(reader=request.user, chart=chart)
    first = charts[0]
    return render(
        request,
        "patient/records.html",
        {
            "title": base_title,
            "categories": [(c, label) for c, label in CHART_CATEGORIES if first.allows(c)],
            "category": category,
            "category_label": dict(CHART_CATEGORIES)[category],
            "view": view,
            "patients": [c.patient for c in charts],
            "proxy_grant": proxy_grant,
            # A proxy's grant may share only some categories: the page names the others.
            "withheld_labels": [c.label for c in categories_named(first.withheld)],
            "category_withheld": category in first.withheld,
        },
    )


@patient_required
def records_view(request: HttpRequest) -> HttpResponse:
    return _records_page(request, _owned(request), base_title="My records")


@patient_required
def access_log_view(request: HttpRequest) -> HttpResponse:
    entries = consent_selectors.access_log_for_owner(
        user=request.user, patients=request.patient_registrations
    )
    # Whether each receipt is witnessed: in a checkpoint the witnesses' quorum cosigned.
    witnessing = publication.witness_setup().configured
    witnessed = (
        publication.events_witnessed(event_pks=[e.event.pk for e in entries])
        if witnessing
        else set()
    )
    return render(
        request,
        "patient/access_log.html",
        {"entries": entries, "witnessing": witnessing, "witnessed": witnessed},
    )


@patient_required
def event_verify_view(request: HttpRequest, event_id: str) -> HttpResponse:
    event = ledger_selectors.access_event(request.user, event_id)
    result = consent_selectors.event_verify(event=event, patients=request.patient_registrations)
    return render(
        request,
        "patient/verify.html",
        {
            "event": event,
            "result": result,
            "receipt_filename": ledger_views.receipt_filename(event=event),
            "key_url": request.build_absolute_uri(reverse("ledger:public_key")),
            "verify_command": _verify_command(request, event),
        },
    )


def _verify_command(request: HttpRequest, event) -> str:
    """The shell command that checks the downloaded receipt, as it works when copied: the
    key's absolute URL (a relative one gives curl nothing to fetch, and the verifier an
    empty key), curl failing loudly rather than passing an error page on, every argument
    quoted for a POSIX shell."""
    key_url = request.build_absolute_uri(reverse("ledger:public_key"))
    receipt = ledger_views.receipt_filename(event=event)
    key = f"$(curl -fsS {shlex.quote(key_url)})"
    return f'python -m ledger.verifier {shlex.quote(receipt)} --key "{key}"'


@patient_required
def consents_view(request: HttpRequest) -> HttpResponse:
    consents = consent_selectors.consents_for_owner(user=request.user)
    history = consent_selectors.events_about(objects=consents)
    for consent in consents:
        consent.history = history.get(str(consent.row_uuid), [])
    return render(request, "patient/consents.html", {"consents": consents})


@patient_required
@require_http_methods(["GET", "POST"])
def consent_new_view(request: HttpRequest) -> HttpResponse:
    form = forms.ConsentForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            consent_services.consent_grant(
                patient=data["registration"], actor=request.user,
                grantee_kind=data["grantee_kind"], grantee_hospital=data["grantee_hospital"],
                grantee_department=data["grantee_department"], grantee_user=data["grantee_user"],
                scope_all=data["scope_all"], categories=data["categories"],
                restricted_notes=data["restricted_notes"], purpose=data["purpose"],
                period_start=data["period_start_at"], period_end=data["period_end_at"],
            )  # fmt: skip
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Consent given. You can revoke it at any time.")
            return redirect("patient:consents")
    status = 400 if form.errors else 200
    return render(
        request, "patient/form.html", {"form": form, "title": "Share my records"}, status=status
    )


@patient_required
@require_POST
def consent_revoke_view(request: HttpRequest, consent_id: str) -> HttpResponse:
    consent = consent_selectors.access_consent(request.user, consent_id)
    try:
        consent_services.consent_revoke(consent=consent, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Consent revoked. Access ended now.")
    return redirect("patient:consents")


@patient_required
def requests_view(request: HttpRequest) -> HttpResponse:
    requests = consent_selectors.access_requests_for_owner(user=request.user)
    _attach_history(requests, user=request.user)
    return render(request, "patient/requests.html", {"requests": requests})


def _attach_history(rows: list, *, user) -> None:
    """Each row's ledger events (one query), for receipt links; only events about the
    account's own registrations are linked (the receipt view allows exactly those)."""
    own = {p.pk for p in selectors.patient_registrations_for_user(user=user)}
    history = consent_selectors.events_about(objects=rows)
    for row in rows:
        row.history = [
            e
            for e in history.get(str(row.row_uuid), [])
            if e.patient_id in own or e.actor_id == user.pk
        ]


@patient_required
@require_http_methods(["GET", "POST"])
def request_decide_view(request: HttpRequest, request_id: str) -> HttpResponse:
    access_request = consent_selectors.access_access_request(request.user, request_id)
    form = forms.DecisionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            consent_services.access_request_decide(
                request=access_request, actor=request.user,
                approve=data["decision"] == "approve", scope_all=data["scope_all"],
                categories=data["categories"], period_end=data["period_end_at"],
            )  # fmt: skip
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("patient:requests")
        messages.success(request, "Your answer was recorded.")
        return redirect("patient:requests")
    status = 400 if form.errors else 200
    return render(
        request,
        "patient/form.html",
        {"form": form, "title": "Answer an access request", "access_request": access_request},
        status=status,
    )


@account_required
@require_http_methods(["GET", "POST"])
def proxies_view(request: HttpRequest) -> HttpResponse:
    is_patient = bool(selectors.patient_registrations_for_user(user=request.user))
    form = forms.ProxyForm(request.POST or None) if is_patient else None
    if request.method == "POST":
        if form is None:
            raise Http404("Only patients can give proxy access.")
        if form.is_valid():
            data = form.cleaned_data
            try:
                consent_services.proxy_invite(
                    grantor=request.user, proxy_username=data["proxy_username"],
                    relationship=data["relationship"], scope_all=data["scope_all"],
                    categories=data["categories"], period_end=data["period_end_at"],
                )  # fmt: skip
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                # The same words whether or not that username is anyone's (no probing).
                messages.success(
                    request,
                    "Invitation sent. If that person has a patient account here, they can "
                    "accept it under Proxy access; it shows as waiting until then, and "
                    "lapses after 14 days.",
                )
                return redirect("patient:proxies")
    given = consent_selectors.proxy_grants_given(user=request.user)
    invited = consent_selectors.proxy_invitations_given(user=request.user)
    # A grant's receipts start with the invitation it came from (invited, accepted).
    origins = consent_selectors.proxy_invitations_of(grants=given)
    _attach_history([*given, *invited, *origins.values()], user=request.user)
    for grant in given:
        if grant.pk in origins:
            grant.history = origins[grant.pk].history + grant.history
    context = {
        "form": form,
        "given": given,
        "invited": invited,
        "received": consent_selectors.proxy_grants_received(user=request.user),
        "invitations": consent_selectors.proxy_invitations_received(user=request.user),
    }
    return render(
        request, "patient/proxies.html", context, status=400 if form and form.errors else 200
    )


@account_required
@require_POST
def proxy_accept_view(request: HttpRequest, grant_id: str) -> HttpResponse:
    invitation = consent_selectors.access_proxy_invitation(request.user, grant_id)
    try:
        consent_services.proxy_accept(invitation=invitation, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Accepted: their records are under Proxy access.")
    return redirect("patient:proxies")


@account_required
@require_POST
def proxy_revoke_view(request: HttpRequest, grant_id: str) -> HttpResponse:
    """Ends a grant or an invitation: the patient revokes or withdraws, the proxy steps down
    or declines."""
    item = consent_selectors.access_proxy_item(request.user, grant_id)
    try:
        consent_services.proxy_end(item=item, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        ended = "Proxy access ended." if isinstance(item, ProxyGrant) else "Invitation ended."
        messages.success(request, ended)
    return redirect("patient:proxies")


def _proxy_charts(request: HttpRequest, grant_id: str, *, grant=None) -> list:
    """The registrations a live proxy grant held by this account opens; 404 otherwise."""
    if grant is None:
        grant = consent_selectors.access_proxy_grant(request.user, grant_id)
    charts = [
        access.access_patient_as_owner(request.user, p.pk)
        for p in consent_selectors.registrations_via_proxy(user=request.user, grant=grant)
    ]
    if not charts:
        raise Http404("No such proxy access.")
    return charts


@account_required
def proxy_records_view(request: HttpRequest, grant_id: str) -> HttpResponse:
    grant = consent_selectors.access_proxy_grant(request.user, grant_id)
    charts = _proxy_charts(request, grant_id, grant=grant)
    name = grant.grantor.get_full_name() or grant.grantor.get_username()
    return _records_page(request, charts, base_title=f"Records of {name}", proxy_grant=grant)


@patient_required
def document_download_view(request: HttpRequest, document_id: str) -> HttpResponse:
    """The patient's own document. Not recorded as an access: the log tells the patient who
    else read their records, and a download of one's own is no one else's read."""
    _chart, document = chart_document(charts=_owned(request), document_id=document_id)
    return downloads.document_response(document=document)


@account_required
def proxy_document_download_view(
    request: HttpRequest, grant_id: str, document_id: str
) -> HttpResponse:
    """A document of the patient whose proxy grant covers documents; recorded as a read
    (via "proxy") before it is served, so it is in the patient's access log."""
    charts = _proxy_charts(request, grant_id)
    with transaction.atomic():
        chart, document = chart_document(charts=charts, document_id=document_id)
        audit.chart_read_record(reader=request.user, chart=chart, record=document)
    return downloads.document_response(document=document)


@patient_required
def export_json_view(request: HttpRequest) -> HttpResponse:
    from portal.patient.export import patient_bundle

    bundle = patient_bundle(charts=_owned(request))
    response = HttpResponse(
        json.dumps(bundle, indent=2, default=str), content_type="application/fhir+json"
    )
    stamp = timezone.now().strftime("%Y%m%d")
    filename = wording.download_filename(f"my-records-{stamp}", response["Content-Type"])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@patient_required
def export_print_view(request: HttpRequest) -> HttpResponse:
    charts = _owned(request)
    sections = [
        (label, records_by_category(charts=charts, category=code))
        for code, label in CHART_CATEGORIES
    ]
    return render(
        request,
        "patient/print.html",
        {"patients": [c.patient for c in charts], "sections": sections, "now": timezone.now()},
    )
