from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.external.forms import ExternalComposeFields
from apps.ingestion.sanitize import composed_text, sanitize_composed_html
from apps.mailbox.patients import InsInvalid, Patient, ins_validate
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


class ComposeForm(ExternalComposeFields):  # + choices for recipients outside the trust space
    mailbox = forms.TypedChoiceField(label=_("De"), coerce=int)
    to = AddressListField(
        label=_("À"),
        required=False,  # a message to a patient may have only the Patient block
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
    # The Patient block (Mon espace santé): one patient, by INS, with name and birth date.
    patient_ins = forms.CharField(
        label=_("INS du patient"), required=False, max_length=40,
        help_text=_("15 chiffres (matricule INS qualifié, clé comprise)."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                      "inputmode": "numeric"}),
    )  # fmt: skip
    patient_family_name = forms.CharField(
        label=_("Nom de naissance"), required=False, max_length=200
    )
    patient_given_names = forms.CharField(label=_("Prénoms"), required=False, max_length=200)
    patient_birth_date = forms.DateField(
        label=_("Date de naissance"), required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )  # fmt: skip
    patient_no_reply = forms.BooleanField(
        label=_("Le patient ne peut pas répondre"), required=False
    )

    PATIENT_FIELDS = (
        "patient_ins", "patient_family_name", "patient_given_names", "patient_birth_date",
    )  # fmt: skip

    def __init__(self, *args, mailboxes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mailbox"].choices = [(m.pk, m.address) for m in mailboxes]

    def clean_subject(self) -> str:
        return " ".join(self.cleaned_data["subject"].split())

    def clean(self):
        data = super().clean()
        html, text = composed_body(data.get("body_html", ""), data.get("text", ""))
        data["body_html"], data["text"] = html, text
        data["patient"] = self._patient(data)
        return data

    def _patient(self, data) -> Patient | None:
        """The patient of the Patient block, if it was filled in (every field required)."""
        if not any(data.get(name) for name in self.PATIENT_FIELDS) and not self.errors.get(
            "patient_birth_date"
        ):
            return None
        ins = ""
        try:
            ins = ins_validate(data.get("patient_ins", ""))
        except InsInvalid as exc:
            self.add_error("patient_ins", exc.message)
        family = " ".join(data.get("patient_family_name", "").split())
        given = " ".join(data.get("patient_given_names", "").split())
        birth = data.get("patient_birth_date")
        if not family:
            self.add_error("patient_family_name", _("Indiquez le nom de naissance du patient."))
        if not given:
            self.add_error("patient_given_names", _("Indiquez les prénoms du patient."))
        if birth is None and "patient_birth_date" not in self.errors:
            self.add_error("patient_birth_date", _("Indiquez la date de naissance du patient."))
        elif birth is not None and birth > timezone.localdate():
            self.add_error("patient_birth_date", _("La date de naissance est dans le futur."))
        if not (ins and family and given and birth) or birth > timezone.localdate():
            return None
        return Patient(
            ins=ins, family_name=family, given_names=given, birth_date=birth,
            no_reply=bool(data.get("patient_no_reply")),
        )  # fmt: skip

    @property
    def patient_open(self) -> bool:
        """Whether the Patient block has something in it (the page shows it open)."""
        return any(self[name].value() for name in self.PATIENT_FIELDS)


def composed_body(html: str, text: str) -> tuple[str, str]:
    """(HTML, text) of the body as posted: with formatting, the sanitised HTML and the text
    alternative made from it (the posted text is the script's copy); otherwise ("", text)."""
    html = sanitize_composed_html(html or "")
    alternative = composed_text(html) if html else ""
    if not alternative:  # no formatting, or an empty editor
        return "", text
    return html, alternative
