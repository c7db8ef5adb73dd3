"""Writes of SMART App Launch: registering an app, an authorization (with its ledger event,
in one transaction), its revocation (every token it issued goes at once), EHR launch
contexts, and linking DOT's codes and tokens to the authorization they came from."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    revoke_access_token,
)

from ledger.events import event_record
from portal.records.models import Patient
from portal.smart.models import LaunchContext, SmartApp, SmartAuthorization, SmartCode, SmartToken
from portal.smart.scopes import ScopeError, clinical_scope
from portal.tenancy.models import Hospital

LAUNCH_LIFETIME = timedelta(minutes=5)


def token_checksum(value: str) -> str:
    """How DOT finds a token by its value (its token_checksum column: SHA-256 hex)."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class RegisteredApp:
    application: Any  # DOT's (swappable) Application model
    client_id: str
    client_secret: str  # shown once; empty for a public client


def smart_app_register(
    *,
    name: str,
    redirect_uris: list[str],
    confidential: bool = False,
    launch_url: str = "",
    ehr_launch: bool | None = None,
    description: str = "",
) -> RegisteredApp:
    """A SMART app: a DOT Application for the authorization code grant (RS256 id_tokens),
    public or confidential, with its SMART launch page. The secret is returned once (DOT
    keeps only its hash)."""
    if not name.strip() or not redirect_uris:
        raise ValidationError("An app needs a name and at least one redirect URI.")
    application_model = get_application_model()
    secret = secrets.token_urlsafe(32) if confidential else ""
    with transaction.atomic():
        app = application_model(
            name=name.strip(),
            redirect_uris=" ".join(redirect_uris),
            client_type=application_model.CLIENT_CONFIDENTIAL
            if confidential
            else application_model.CLIENT_PUBLIC,
            authorization_grant_type=application_model.GRANT_AUTHORIZATION_CODE,
            algorithm=application_model.RS256_ALGORITHM,
            client_secret=secret,
            skip_authorization=False,
        )
        app.full_clean(exclude=["client_secret"] if not confidential else None)
        app.save()
        SmartApp.objects.create(
            application=app,
            launch_url=launch_url,
            ehr_launch=bool(launch_url) if ehr_launch is None else ehr_launch,
            description=description,
        )
    return RegisteredApp(application=app, client_id=app.client_id, client_secret=secret)


def _scopes_checked(scopes: list[str], *, audience: str) -> list[str]:
    for scope in scopes:
        try:
            clinical = clinical_scope(scope)
        except ScopeError as exc:
            raise ValidationError(str(exc)) from None
        if clinical is not None and clinical.level == "user" and audience != "staff":
            raise ValidationError("user/ scopes are for staff only.")
    return scopes


@transaction.atomic
def smart_authorization_create(
    *,
    application,
    user: User,
    hospital: Hospital,
    patient: Patient | None,
    audience: str,
    launch: str,
    scopes: list[str],
    two_factor: bool,
) -> SmartAuthorization:
    """A person approved an app: the authorization and its ledger event, together. Staff
    need a session verified with two factors (the database refuses otherwise too)."""
    if audience == SmartAuthorization.Audience.STAFF and not two_factor:
        raise ValidationError("Staff authorize apps only after signing in with two factors.")
    if patient is not None and patient.hospital_id != hospital.pk:
        raise ValidationError("The patient is not one of this hospital's.")
    if audience == SmartAuthorization.Audience.PATIENT and (
        patient is None or patient.user_id != user.pk
    ):
        raise ValidationError("Choose one of your own records.")
    authorization = SmartAuthorization(
        application=application, user=user, hospital=hospital, patient=patient,
        audience=audience, launch=launch,
        scope=" ".join(sorted(set(_scopes_checked(scopes, audience=audience)))),
        two_factor=two_factor,
    )  # fmt: skip
    authorization.save()
    event_record(
        kind="smart.authorized", hospital=hospital.pk, subject=authorization, actor=user,
        patient=patient.pk if patient is not None else None,
        # The app by its client id, a code, as reads through it are recorded (the access
        # log shows its name).
        attrs={"app": application.client_id, "audience": audience, "launch": launch,
               "two_factor": two_factor},
    )  # fmt: skip
    return authorization


@transaction.atomic
def smart_authorization_revoke(
    *, authorization: SmartAuthorization, actor: User | None, via: str
) -> SmartAuthorization:
    """End an authorization: every token it issued is revoked in the same transaction (the
    next request with one is refused), and the ledger records who ended it (`via`: patient,
    app, admin). Revoking an ended one changes nothing."""
    authorization = (
        SmartAuthorization.objects.select_for_update()
        .select_related("application")
        .get(pk=authorization.pk)
    )
    if authorization.revoked_at is not None:
        return authorization
    access_tokens = get_access_token_model().objects.filter(
        smart_token__authorization=authorization
    )
    for token in list(access_tokens):
        revoke_access_token(token)
    get_grant_model().objects.filter(smart_code__authorization=authorization).delete()
    authorization.revoked_at = timezone.now()
    authorization.revoked_by = actor if actor is not None and actor.is_authenticated else None
    authorization.save(update_fields=["revoked_at", "revoked_by"])
    event_record(
        kind="smart.revoked", hospital=authorization.hospital_id, subject=authorization,
        actor=actor, patient=authorization.patient_id,
        attrs={"app": authorization.application.client_id, "audience": authorization.audience,
               "by": via},
    )  # fmt: skip
    return authorization


def smart_code_link(*, authorization_id: int, code: str, application) -> None:
    grant = get_grant_model().objects.get(code=code, application=application)
    SmartCode.objects.create(authorization_id=authorization_id, grant=grant)


def smart_token_link(*, authorization: SmartAuthorization, access_token_value: str) -> None:
    token = get_access_token_model().objects.get(token_checksum=token_checksum(access_token_value))
    SmartToken.objects.get_or_create(access_token=token, defaults={"authorization": authorization})


def smart_launch_create(*, application, user: User, hospital: Hospital, patient: Patient) -> str:
    """An EHR launch context for a chart the caller has opened; returns the opaque `launch`
    value the app receives (only its hash is kept)."""
    launch = secrets.token_urlsafe(24)
    LaunchContext.objects.create(
        launch_hash=token_checksum(launch), application=application, user=user,
        hospital=hospital, patient=patient, expires_at=timezone.now() + LAUNCH_LIFETIME,
    )  # fmt: skip
    return launch


def smart_launch_use(
    *, launch: str, user: User, application, consume: bool
) -> LaunchContext | None:
    """The launch context named by `launch`, for the user who launched it and the app it was
    launched for, unused and unexpired (`consume`: marked used). None otherwise."""
    with transaction.atomic():
        context = (
            LaunchContext.objects.select_for_update()
            .select_related("patient", "hospital")
            .filter(
                launch_hash=token_checksum(launch),
                user=user,
                application=application,
                used_at__isnull=True,
                expires_at__gt=timezone.now(),
            )
            .first()
        )
        if context is not None and consume:
            context.used_at = timezone.now()
            context.save(update_fields=["used_at"])
    return context


DEMO_APP_NAME = "Demo SMART app"


def smart_demo_app_ensure(*, base_url: str) -> RegisteredApp:
    """The demo's SMART app (served by the portal at /smart-demo/), registered once as a
    public client for standalone and EHR launch at `base_url`; its URLs follow the demo's
    address if it moves."""
    base_url = base_url.rstrip("/")
    redirect_uri = f"{base_url}/smart-demo/app/"
    existing = (
        SmartApp.objects.select_related("application")
        .filter(application__name=DEMO_APP_NAME)
        .order_by("pk")
        .first()
    )
    if existing is None:
        registered = smart_app_register(
            name=DEMO_APP_NAME, redirect_uris=[redirect_uri], ehr_launch=True,
            description="The portal's own demo app: reads your observations.",
        )  # fmt: skip
        existing = registered.application.smart_app
    app = existing.application
    app.redirect_uris = redirect_uri
    app.save(update_fields=["redirect_uris"])
    existing.launch_url = f"{base_url}/smart-demo/?client_id={app.client_id}"
    existing.ehr_launch = True
    existing.save(update_fields=["launch_url", "ehr_launch"])
    return RegisteredApp(application=app, client_id=app.client_id, client_secret="")
