from django import forms
from django.contrib.auth import forms as auth_forms
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import normalize_email


class LoginForm(forms.Form):
    email = forms.EmailField(
        label=_("Adresse MSSanté"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password = forms.CharField(
        label=_("Mot de passe"),
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code à 6 chiffres ou code de secours"),
        max_length=20,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autofocus": True,
                "inputmode": "text",
                "autocapitalize": "none",
                "spellcheck": "false",
            }
        ),
    )


class EnrolForm(forms.Form):
    code = forms.CharField(
        label=_("Code affiché par l'application"),
        max_length=10,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "pattern": "[0-9 ]*",
                "autofocus": True,
            }
        ),
    )


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    """Django's form; saving is done by ``services.password_change`` (sessions, audit)."""

    def save(self, commit=True):  # pragma: no cover - the view never calls it
        raise RuntimeError("Use services.password_change.")


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's reset form, but the e-mail is built and sent by a Celery worker: the answer takes
    the same time whether the address has an account or not, and the reset link never travels
    through the broker."""

    def save(self, **kwargs) -> None:
        from apps.accounts.models import User
        from apps.accounts.tasks import send_password_reset_email

        email = normalize_email(self.cleaned_data["email"])
        for user_id in User.objects.filter(email=email, is_active=True).values_list(
            "pk", flat=True
        ):
            send_password_reset_email.delay(user_id)
