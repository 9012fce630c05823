from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from apps.mailbox.forms import MultipleFileField


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code reçu"),
        max_length=20,
        help_text=_("Le code à 6 chiffres reçu par SMS ou communiqué par votre correspondant."),
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "autofocus": True}
        ),
    )


class ReplyForm(forms.Form):
    text = forms.CharField(label=_("Votre réponse"), widget=forms.Textarea(attrs={"rows": 6}))
    files = MultipleFileField(label=_("Pièces jointes (facultatif)"), required=False)

    def clean_text(self) -> str:
        text = self.cleaned_data["text"].strip()
        if len(text) > settings.SECURE_LINK_REPLY_MAX_CHARS:
            raise forms.ValidationError(_("Votre réponse est trop longue."))
        return text

    def clean_files(self) -> list:
        files = self.cleaned_data.get("files") or []
        if len(files) > settings.SECURE_LINK_REPLY_MAX_FILES:
            raise forms.ValidationError(
                _("Au plus %(count)d pièces jointes.")
                % {"count": settings.SECURE_LINK_REPLY_MAX_FILES}
            )
        if sum(f.size for f in files) > settings.SECURE_LINK_REPLY_MAX_SIZE:
            raise forms.ValidationError(
                _("Les pièces jointes dépassent %(mb)d Mo au total.")
                % {"mb": settings.SECURE_LINK_REPLY_MAX_SIZE // 1_000_000}
            )
        return files
