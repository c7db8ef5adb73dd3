from django import forms


class LoginForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True}))
    password = forms.CharField(strip=False, widget=forms.PasswordInput)


def _code_field(label: str, *, autofocus: bool = False) -> forms.RegexField:
    attrs = {"autocomplete": "one-time-code", "inputmode": "numeric"}
    if autofocus:
        attrs["autofocus"] = True
    return forms.RegexField(
        regex=r"^\s*\d{6}\s*$",
        label=label,
        error_messages={
            "invalid": "Enter the 6-digit code shown in your authenticator app.",
            "required": "Enter the 6-digit code shown in your authenticator app.",
        },
        widget=forms.TextInput(attrs=attrs),
    )


class TokenForm(forms.Form):
    token = _code_field("6-digit code from your authenticator app", autofocus=True)

    def clean_token(self) -> str:
        return self.cleaned_data["token"].strip()


class NewDeviceForm(forms.Form):
    """Adding (or replacing) a device: a code from the new app, and a current code from an
    app already set up; an account with no device yet (a patient turning two-factor sign-in
    on) gives its password instead."""

    new_token = _code_field("6-digit code from the new app", autofocus=True)
    current_token = _code_field("6-digit code from an app you already use")
    password = forms.CharField(
        label="Your password", strip=False, widget=forms.PasswordInput, required=False
    )

    def __init__(self, *args, has_device: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if has_device:
            del self.fields["password"]
        else:
            del self.fields["current_token"]
            self.fields["password"].required = True

    def clean_new_token(self) -> str:
        return self.cleaned_data["new_token"].strip()

    def clean_current_token(self) -> str:
        return self.cleaned_data["current_token"].strip()


class SwitchHospitalForm(forms.Form):
    hospital = forms.IntegerField(min_value=1)
