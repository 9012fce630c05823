from django import forms
from django.utils.translation import gettext_lazy as _

from apps.accounts.nomenclatures import PROFESSION_CHOICES
from apps.directory.selectors import SearchFilters


class SearchForm(forms.Form):
    q = forms.CharField(
        label=_("Nom"),
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={"type": "search", "autocomplete": "off", "placeholder": _("ex. dupont marie")}
        ),
    )
    profession = forms.ChoiceField(
        label=_("Profession"), required=False, choices=[("", _("Toutes")), *PROFESSION_CHOICES]
    )
    specialty = forms.CharField(
        label=_("Code de spécialité"),
        required=False,
        max_length=10,
        widget=forms.TextInput(attrs={"placeholder": _("ex. SCD01")}),
    )
    place = forms.CharField(
        label=_("Ville, code postal ou département"),
        required=False,
        max_length=60,
        widget=forms.TextInput(attrs={"placeholder": _("ex. Lyon, 69003 ou 69")}),
    )
    has_mssante = forms.BooleanField(label=_("Avec une adresse MSSanté"), required=False)
    after = forms.CharField(required=False, widget=forms.HiddenInput, max_length=400)

    def filters(self) -> SearchFilters:
        data = self.cleaned_data
        place = data.get("place", "").strip()
        department = postcode = town = ""
        compact = place.replace(" ", "").upper()
        if compact.isdigit() and len(compact) == 5:
            postcode = compact
        elif compact in ("2A", "2B") or (compact.isdigit() and len(compact) in (2, 3)):
            department = compact
        else:
            town = place
        return SearchFilters(
            query=data.get("q", ""),
            profession=data.get("profession", ""),
            specialty=data.get("specialty", "").strip(),
            department=department,
            postcode=postcode,
            town=town,
            has_mssante=data.get("has_mssante", False),
        )


class ContactForm(forms.Form):
    display_name = forms.CharField(label=_("Nom"), max_length=200)
    email = forms.EmailField(label=_("Adresse"), max_length=254)
    profession_label = forms.CharField(label=_("Profession"), max_length=120, required=False)
    town = forms.CharField(label=_("Ville"), max_length=100, required=False)
    is_favourite = forms.BooleanField(label=_("Favori"), required=False)
    note = forms.CharField(
        label=_("Note personnelle"),
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class ContactFromDirectoryForm(forms.Form):
    address = forms.EmailField(max_length=254)
