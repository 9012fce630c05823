from django import forms
from django.utils.translation import gettext_lazy as _

from apps.notifications.models import NotificationPreference
from apps.notifications.sms import normalise_phone


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = [
            "events", "push_enabled", "push_content", "digest", "quiet_start", "quiet_end",
            "email_enabled", "personal_email", "sms_enabled", "phone", "suspicious_login_email",
        ]  # fmt: skip
        widgets = {
            "events": forms.RadioSelect,
            "push_content": forms.RadioSelect,
            "digest": forms.RadioSelect,
            "quiet_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "quiet_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "personal_email": forms.EmailInput(attrs={"autocomplete": "email"}),
            "phone": forms.TextInput(
                attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel"}
            ),
        }
        help_texts = {
            "digest": _("Les messages urgents sont toujours signalés tout de suite."),
            "quiet_start": _("Heure de Paris. Pendant les heures calmes, seuls les messages "
                             "urgents vous sont signalés ; les autres le sont à la fin."),
            "personal_email": _("Recevra seulement « un message urgent vous attend, "
                                "connectez-vous », jamais le contenu."),
            "phone": _("Mobile, par exemple 06 12 34 56 78. Même règle : aucun contenu."),
            "suspicious_login_email": _("Nouvel appareil, nouvelle adresse IP ou plusieurs "
                                        "échecs avant la connexion : un e-mail à l'adresse de "
                                        "votre compte, avec l'heure, l'adresse IP et "
                                        "l'appareil."),
        }  # fmt: skip

    def clean_phone(self) -> str:
        phone = self.cleaned_data.get("phone", "").strip()
        if not phone:
            return ""
        normalised = normalise_phone(phone)
        if normalised is None:
            raise forms.ValidationError(
                _("Indiquez un numéro de mobile français, par exemple 06 12 34 56 78.")
            )
        return normalised

    def clean(self) -> dict:
        data = super().clean()
        if data.get("email_enabled") and not data.get("personal_email"):
            self.add_error("personal_email", _("Indiquez l'adresse qui recevra l'avis."))
        if data.get("sms_enabled") and not data.get("phone") and "phone" not in self.errors:
            self.add_error("phone", _("Indiquez le numéro qui recevra l'avis."))
        if bool(data.get("quiet_start")) != bool(data.get("quiet_end")):
            self.add_error("quiet_end", _("Indiquez le début et la fin des heures calmes."))
        return data


class SubscriptionForm(forms.Form):
    """The JSON that PushManager.subscribe() gives, flattened by the page's script."""

    endpoint = forms.CharField(max_length=1000)
    p256dh = forms.CharField(max_length=200)
    auth = forms.CharField(max_length=100)
