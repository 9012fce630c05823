from django import forms
from django.utils.translation import gettext_lazy as _

from apps.ingestion.sanitize import composed_text, sanitize_composed_html
from apps.mailbox.services import MailError, parse_addresses


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"multiple": True}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)] if data else []


class AddressListField(forms.CharField):
    def clean(self, value):
        value = super().clean(value)
        try:
            return parse_addresses(value or "")
        except MailError as exc:
            raise forms.ValidationError(exc.message) from exc


class ComposeForm(forms.Form):
    mailbox = forms.TypedChoiceField(label=_("De"), coerce=int)
    to = AddressListField(
        label=_("À"),
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "inputmode": "email",
                   "data-autocomplete": "/annuaire/autocompletion/"}
        ),
    )  # fmt: skip
    cc = AddressListField(label=_("Cc"), required=False)
    bcc = AddressListField(label=_("Cci"), required=False)
    subject = forms.CharField(label=_("Objet"), max_length=500, required=False)
    text = forms.CharField(
        label=_("Message"), required=False, widget=forms.Textarea(attrs={"rows": 12})
    )
    # Filled by the editor's script only (with formatting on); never rendered with a value.
    body_html = forms.CharField(required=False, strip=False, widget=forms.HiddenInput)
    files = MultipleFileField(label=_("Pièces jointes"), required=False)
    urgent = forms.BooleanField(label=_("Urgent"), required=False)
    read_receipt = forms.BooleanField(label=_("Demander un accusé de lecture"), required=False)
    reply_to = forms.IntegerField(required=False, widget=forms.HiddenInput)
    forward_of = forms.IntegerField(required=False, widget=forms.HiddenInput)
    draft = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, mailboxes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mailbox"].choices = [(m.pk, m.address) for m in mailboxes]

    def clean_subject(self) -> str:
        return " ".join(self.cleaned_data["subject"].split())

    def clean(self):
        data = super().clean()
        html, text = composed_body(data.get("body_html", ""), data.get("text", ""))
        data["body_html"], data["text"] = html, text
        return data


def composed_body(html: str, text: str) -> tuple[str, str]:
    """(HTML, text) of the body as posted: with formatting, the sanitised HTML and the text
    alternative made from it (the posted text is the script's copy); otherwise ("", text)."""
    html = sanitize_composed_html(html or "")
    alternative = composed_text(html) if html else ""
    if not alternative:  # no formatting, or an empty editor
        return "", text
    return html, alternative
