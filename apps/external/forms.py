from django import forms
from django.utils.translation import gettext_lazy as _

from apps.external.openpgp import MAX_KEY_SIZE
from apps.external.services import ExternalOptions, Protection


class ExternalComposeFields(forms.Form):
    """The compose page's choices for recipients outside the trust space (a base of
    ``mailbox.forms.ComposeForm``). ``external_confirmed`` lists the addresses the sender was
    shown (by the page's script, or by the confirmation step): sending goes ahead only when it
    covers every external recipient."""

    external_protection = forms.ChoiceField(
        label=_("Sans clé OpenPGP connue, protéger l'envoi par :"),
        help_text=_(
            "Lien sécurisé (recommandé) : le message reste ici, le destinataire le lit avec un "
            "code. Pièces jointes chiffrées : fichiers .pgp et un mot de passe à lui transmettre."
        ),
        choices=[(Protection.LINK, _("lien sécurisé")),
                 (Protection.FILES, _("pièces jointes chiffrées"))],
        initial=Protection.LINK, required=False, widget=forms.RadioSelect,
    )  # fmt: skip
    external_subject_clear = forms.BooleanField(
        label=_("L'objet peut être envoyé en clair (il ne contient aucune donnée de santé)"),
        required=False,
    )
    external_phone = forms.CharField(
        label=_("Mobile du destinataire (facultatif : code ou mot de passe envoyé par SMS)"),
        required=False, max_length=30,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}),
    )  # fmt: skip
    external_confirmed = forms.CharField(
        required=False, max_length=5000, widget=forms.HiddenInput, strip=True
    )

    def external_options(self) -> ExternalOptions:
        data = self.cleaned_data
        confirmed = frozenset(
            a.strip().lower() for a in data.get("external_confirmed", "").split(",") if a.strip()
        )
        return ExternalOptions(
            protection=data.get("external_protection") or Protection.LINK,
            subject_in_clear=bool(data.get("external_subject_clear")),
            phone=(data.get("external_phone") or "").strip(),
            confirmed=confirmed,
        )


class KeyImportForm(forms.Form):
    contact = forms.TypedChoiceField(label=_("Contact"), coerce=int)
    armored = forms.CharField(
        label=_("Clé publique (texte « BEGIN PGP PUBLIC KEY BLOCK »)"), required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        max_length=MAX_KEY_SIZE,
    )  # fmt: skip
    upload = forms.FileField(label=_("ou fichier .asc"), required=False)

    def __init__(self, *args, contacts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["contact"].choices = [(c.pk, f"{c.display_name} <{c.email}>") for c in contacts]

    def clean(self):
        data = super().clean()
        upload = data.get("upload")
        if upload is not None:
            if upload.size > MAX_KEY_SIZE:
                raise forms.ValidationError(_("Fichier trop volumineux pour une clé publique."))
            data["key_data"] = upload.read()
        elif (data.get("armored") or "").strip():
            data["key_data"] = data["armored"].strip()
        else:
            raise forms.ValidationError(_("Collez la clé publique ou choisissez un fichier .asc."))
        return data
