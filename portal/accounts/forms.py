from django import forms


class LoginForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True}))
    password = forms.CharField(strip=False, widget=forms.PasswordInput)


class TokenForm(forms.Form):
    token = forms.RegexField(
        regex=r"^\s*\d{6}\s*$",
        label="6-digit code from your authenticator app",
        error_messages={"invalid": "Enter the 6-digit code shown in your authenticator app."},
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )

    def clean_token(self) -> str:
        return self.cleaned_data["token"].strip()


class SwitchHospitalForm(forms.Form):
    hospital = forms.IntegerField(min_value=1)
