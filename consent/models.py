"""Consents, access requests, break-glass and proxy grants: who outside a patient's own
hospital and care team may see their records, and why.

Modelled on FHIR R4 Consent (patient, grantee as provision.actor, scope as
provision.class/data, purpose, period, status). A row is never overwritten: revoking or
expiring changes only its status (and when, and by whom); every change is a ledger event.
What a grant lets someone see lives in the object-permission tables (portal.records.grants),
written in the same transaction by consent.services; these rows are the why and the history.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.records.categories import CATEGORY_LABELS
from portal.records.fields import EncryptedTextField
from portal.records.models import ClinicalNote, Patient
from portal.tenancy.models import Department, Hospital


class Purpose(models.TextChoices):
    """HL7 v3 PurposeOfUse codes offered to patients."""

    TREATMENT = "TREAT", "Treatment"
    CARE_MANAGEMENT = "CAREMGT", "Care coordination"
    PATIENT_REQUEST = "PATRQT", "At my request"
    RESEARCH = "HRESCH", "Research"


class ScopeMixin(models.Model):
    """All records, or only some categories (restricted notes never, unless named)."""

    scope_all = models.BooleanField(default=True)
    categories = models.JSONField(default=list, blank=True)

    class Meta:
        abstract = True

    @property
    def scope_labels(self) -> list[str]:
        if self.scope_all:
            return ["All records"]
        return [CATEGORY_LABELS.get(c, c) for c in self.categories]


class Consent(ScopeMixin):
    class GranteeKind(models.TextChoices):
        HOSPITAL = "hospital", "A hospital"
        DEPARTMENT = "department", "A department or team"
        PRACTITIONER = "practitioner", "One practitioner"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    # The registration whose records are shared, and (for admin scoping) its hospital.
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="consents")
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    grantee_kind = models.CharField(max_length=20, choices=GranteeKind.choices)
    grantee_hospital = models.ForeignKey(
        Hospital, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    grantee_department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    grantee_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    restricted_notes = models.ManyToManyField(ClinicalNote, blank=True, related_name="+")
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.TREATMENT)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    access_request = models.OneToOneField(
        "consent.AccessRequest", on_delete=models.PROTECT, null=True, blank=True,
        related_name="consent",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "period_end"])]

    def __str__(self) -> str:
        return f"Consent {self.row_uuid} of patient {self.patient_id}"

    @property
    def source(self) -> str:
        return f"consent:{self.row_uuid}"

    @property
    def state(self) -> str:
        """The status as of now: an active consent past its end is expired already,
        whether or not the sweep has written that down."""
        now = timezone.now()
        if self.status == self.Status.ACTIVE:
            if self.period_end is not None and self.period_end <= now:
                return self.Status.EXPIRED
            if self.period_start > now:
                return "scheduled"
        return self.status

    @property
    def grantee_label(self) -> str:
        if self.grantee_kind == self.GranteeKind.HOSPITAL:
            return str(self.grantee_hospital)
        if self.grantee_kind == self.GranteeKind.DEPARTMENT:
            return str(self.grantee_department)
        user = self.grantee_user
        return user.get_full_name() or user.username if user else "?"


class AccessRequest(models.Model):
    """A clinician at another hospital asks a patient for access to their records.

    The patient is found from details the patient gave the clinician (their hospital, MRN
    and birth date); the request stores only the match, never the details typed in. Until the
    patient approves, everything the requesting side can see of a request (its page, the API,
    its hospital admin's view, the ledger events and receipts the requester may fetch) is the
    same whether or not the details matched: see `requester_state` and `addressee`.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the patient"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"

    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requester_hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    # Whom the details matched; None when they matched nobody with a portal account (the
    # request then simply never gets an answer). Read only on the patient's side, and kept
    # out of the ledger's digest of the row (LEDGER_EXCLUDE): the requester may fetch the
    # request's events, and a digest covering it would tell a match from none.
    addressee = models.ForeignKey(
        Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The chart an approval opened: set when the patient approves, and attested from then on.
    # (Requests made before addressees existed have it set from the start; the requesting
    # side shows it only once approved.)
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="access_requests"
    )
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.TREATMENT)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    # Unanswered requests lapse: the patient can no longer approve them, and the requester
    # sees "expired" whether or not the details ever matched anyone.
    ANSWER_WITHIN = timedelta(days=14)

    LEDGER_EXCLUDE = frozenset({"addressee_id"})  # canonical content is keyed by attname

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Access request {self.row_uuid}"

    @property
    def requester_state(self) -> str:
        """What the requesting side is told: approved, else waiting until the answer period
        is over and then expired, alike whether the details matched nobody, or the patient
        denied, or has not answered (a denial must not tell the requester that the patient
        exists)."""
        if self.status == self.Status.APPROVED:
            return self.Status.APPROVED
        if self.created_at + self.ANSWER_WITHIN <= timezone.now():
            return "expired"
        return self.Status.PENDING

    @property
    def requester_state_label(self) -> str:
        return {
            self.Status.APPROVED: "Approved",
            self.Status.PENDING: "Waiting for an answer",
            "expired": "Expired without an answer",
        }[self.requester_state]

    @property
    def state(self) -> str:
        if self.status == self.Status.PENDING and (
            self.created_at + self.ANSWER_WITHIN <= timezone.now()
        ):
            return "expired"
        return self.status

    @property
    def state_label(self) -> str:
        if self.state == "expired":
            return "Expired without an answer"
        return self.get_status_display()


class BreakGlass(models.Model):
    """Emergency access to a chart without consent: time-limited, flagged and reported."""

    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # Where the clinician works (the hospital they acted from) and the chart's own hospital.
    user_hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="break_glass")
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    # Free text may hold clinical detail: encrypted under the chart's hospital.
    reason = EncryptedTextField()
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # E-mail notices (bookkeeping, not part of the ledger digest): when the mail server
    # accepted the patient's and the admins' mails, when both were done (None: a notice is
    # still to be sent; the admin lists these), and when sending was last tried.
    mailed_at = models.DateTimeField(null=True, blank=True)
    patient_mailed_at = models.DateTimeField(null=True, blank=True)
    admins_mailed_at = models.DateTimeField(null=True, blank=True)
    mail_tried_at = models.DateTimeField(null=True, blank=True)

    LEDGER_EXCLUDE = frozenset(
        {"mailed_at", "patient_mailed_at", "admins_mailed_at", "mail_tried_at"}
    )

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Break-glass {self.row_uuid}"

    @property
    def source(self) -> str:
        return f"breakglass:{self.row_uuid}"

    @property
    def is_active(self) -> bool:
        return self.expires_at > timezone.now()


class BreakGlassFailure(models.Model):
    """An emergency-access attempt whose details matched no patient.

    Counted for the per-user lockout (consent.services.break_glass_attempt) and shown to the
    admins of both hospitals involved. It holds no typed detail (MRN, birth date), only who
    tried, from where, which hospital they named, and when.
    """

    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    user_hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    # The hospital the details named (where the chart was looked for).
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="+")
    attempted_at = models.DateTimeField()

    class Meta:
        ordering = ["-attempted_at", "-id"]
        indexes = [models.Index(fields=["user", "-attempted_at"], name="consent_bgfail_user")]

    def __str__(self) -> str:
        return f"Failed break-glass attempt {self.row_uuid}"


class ProxyGrant(ScopeMixin):
    """A patient lets another account holder (a parent, a carer) view their records."""

    class Relationship(models.TextChoices):
        PARENT = "parent", "Parent or guardian"
        CARER = "carer", "Carer"
        FAMILY = "family", "Family member"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    grantor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="proxy_grants_given"
    )
    proxy = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="proxy_grants_received"
    )
    relationship = models.CharField(max_length=10, choices=Relationship.choices)
    period_end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Proxy grant {self.row_uuid}"

    @property
    def source(self) -> str:
        return f"proxy:{self.row_uuid}"

    @property
    def state(self) -> str:
        if (
            self.status == self.Status.ACTIVE
            and self.period_end is not None
            and self.period_end <= timezone.now()
        ):
            return self.Status.EXPIRED
        return self.status


class ProxyInvitation(ScopeMixin):
    """A patient invites another account holder, by username, to be their proxy.

    Nothing is looked up when the invitation is made, so the patient learns nothing about
    which usernames exist or whose they are: every invitation shows as waiting until the
    account with that username accepts it, and only an account with a patient registration,
    no staff membership and no admin rights is offered it (consent.selectors.proxy_eligible).
    Accepting creates the ProxyGrant; a declined invitation looks to the patient like one not
    answered yet.
    """

    class Status(models.TextChoices):
        INVITED = "invited", "Waiting for them to accept"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        WITHDRAWN = "withdrawn", "Withdrawn"

    row_uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    grantor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="proxy_invitations_given"
    )
    # As the patient typed it (a username, not necessarily anyone's).
    username = models.CharField(max_length=150)
    relationship = models.CharField(max_length=10, choices=ProxyGrant.Relationship.choices)
    period_end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.INVITED)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    grant = models.OneToOneField(
        ProxyGrant, on_delete=models.PROTECT, null=True, blank=True, related_name="invitation"
    )

    # Unanswered invitations lapse, as access requests do.
    ACCEPT_WITHIN = timedelta(days=14)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["username", "status"], name="consent_proxyinv_username")]

    def __str__(self) -> str:
        return f"Proxy invitation {self.row_uuid}"

    @property
    def is_open(self) -> bool:
        """Waiting for an answer, and still answerable."""
        now = timezone.now()
        return (
            self.status == self.Status.INVITED
            and self.created_at + self.ACCEPT_WITHIN > now
            and (self.period_end is None or self.period_end > now)
        )

    @property
    def grantor_state(self) -> str:
        """What the inviting patient is told: a declined invitation is shown as one not
        answered (waiting, then expired), so declining never reveals the account."""
        if self.status in (self.Status.ACCEPTED, self.Status.WITHDRAWN):
            return self.status
        now = timezone.now()
        lapsed = self.created_at + self.ACCEPT_WITHIN <= now or (
            self.period_end is not None and self.period_end <= now
        )
        return "expired" if lapsed else self.Status.INVITED

    @property
    def grantor_state_label(self) -> str:
        return {
            self.Status.INVITED: "Waiting for them to accept",
            "expired": "Not accepted in time",
            self.Status.ACCEPTED: "Accepted",
            self.Status.WITHDRAWN: "Withdrawn",
        }[self.grantor_state]


class Notification(models.Model):
    """A message in a user's portal (break-glass on my chart, an answer to my request).

    Texts name hospitals, staff and times, never a patient's clinical details."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=32)
    text = models.CharField(max_length=300)
    flagged = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"Notification {self.pk} for user {self.user_id}"
