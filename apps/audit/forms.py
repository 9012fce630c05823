from django import forms
from django.utils.translation import gettext_lazy as _

from apps.audit.events import Event
from apps.audit.selectors import ACTIVITY_GROUPS, event_label


class _DateRangeForm(forms.Form):
    date_from = forms.DateField(
        label=_("Du"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("Au"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("La date de fin précède la date de début."))
        return cleaned


class ActivityFilterForm(_DateRangeForm):
    type = forms.ChoiceField(
        label=_("Type"),
        required=False,
        choices=[("", _("Tout"))] + [(key, label) for key, (label, _e) in ACTIVITY_GROUPS.items()],
    )
    avant = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class StaffSearchForm(_DateRangeForm):
    user = forms.CharField(label=_("Compte (adresse)"), required=False, max_length=254)
    mailbox = forms.CharField(label=_("Boîte aux lettres (adresse)"), required=False,
                              max_length=254)  # fmt: skip
    message_id = forms.CharField(label=_("Message-ID"), required=False, max_length=255)
    event = forms.TypedChoiceField(
        label=_("Événement"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", _("Tous"))] + [(int(e), f"{int(e)} — {event_label(e)}") for e in Event],
    )
    ip = forms.GenericIPAddressField(label=_("Adresse IP"), required=False, unpack_ipv4=True)
    avant = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    CRITERIA = ("user", "mailbox", "message_id", "event", "ip", "date_from", "date_to")

    def search_kwargs(self) -> dict:
        """The arguments of ``selectors.staff_search``."""
        data = self.cleaned_data
        return {
            "user": data.get("user") or "",
            "mailbox": data.get("mailbox") or "",
            "message_id": data.get("message_id") or "",
            "event": data.get("event"),
            "ip": data.get("ip") or "",
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to"),
        }

    def criteria(self) -> dict:
        """The non-empty criteria, as JSON values (for the audit row and the export)."""
        out = {}
        for name in self.CRITERIA:
            value = self.cleaned_data.get(name)
            if value in (None, ""):
                continue
            out[name] = value.isoformat() if hasattr(value, "isoformat") else value
        return out
