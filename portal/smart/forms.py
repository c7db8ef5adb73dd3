from __future__ import annotations

from django import forms
from oauth2_provider.forms import AllowForm

from portal.smart.scopes import CONTEXT_SCOPES, scope_words

# Context scopes granted with any approval (they name no records): shown, not ticked.
ALWAYS = frozenset({"openid", "fhirUser", "profile", "launch", "launch/patient"})


class ConsentForm(AllowForm):
    """DOT's authorization form, plus what the person chooses: which of the requested
    permissions to give (they may untick any) and, for a patient with several
    registrations, whose records. `scope` ends up the granted subset."""

    granted = forms.MultipleChoiceField(
        label="What the app may do", required=False, widget=forms.CheckboxSelectMultiple
    )
    patient = forms.TypedChoiceField(label="Whose records", coerce=int, required=False)
    launch = forms.CharField(required=False, widget=forms.HiddenInput())
    aud = forms.CharField(required=False, widget=forms.HiddenInput())

    def __init__(self, *args, requested: list[str], patients: list, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.requested = requested
        choosable = [s for s in requested if s not in ALWAYS]
        self.fields["granted"].choices = [(s, scope_words(s)) for s in choosable]
        self.fields["granted"].initial = choosable
        self.fields["patient"].choices = [
            (p.pk, f"{p.given_name} {p.family_name}, registered at {p.hospital.name}")
            for p in patients
        ]
        if patients:
            self.fields["patient"].initial = patients[0].pk
        else:
            del self.fields["patient"]

    def always_words(self) -> list[str]:
        return sorted({CONTEXT_SCOPES[s] for s in self.requested if s in ALWAYS})

    def clean(self):
        data = super().clean()
        if data.get("allow"):
            granted = [s for s in data.get("granted") or [] if s in self.requested]
            clinical = [s for s in granted if "/" in s and not s.startswith("launch")]
            if not clinical:
                raise forms.ValidationError("Tick at least one kind of record, or choose Deny.")
            if "patient" in self.fields and not data.get("patient"):
                raise forms.ValidationError("Choose whose records the app may read.")
            data["scope"] = " ".join([s for s in self.requested if s in ALWAYS] + granted)
        return data
