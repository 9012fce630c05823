"""The mail search page: a GET form, results with the matches highlighted, offset pagination."""

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.mailbox import selectors
from apps.mailbox.models import FolderKind
from apps.mailbox.search import MAX_OFFSET, message_search

PAGE_SIZE = 50

FOLDER_CHOICES = [
    ("", _("Tous les dossiers (sauf la corbeille)")),
    (FolderKind.INBOX, FolderKind.INBOX.label),
    (FolderKind.SENT, FolderKind.SENT.label),
    (FolderKind.DRAFTS, FolderKind.DRAFTS.label),
    (FolderKind.ARCHIVE, FolderKind.ARCHIVE.label),
    (FolderKind.CUSTOM, _("Mes dossiers")),
    (FolderKind.TRASH, FolderKind.TRASH.label),
]


class SearchForm(forms.Form):
    q = forms.CharField(
        label=_("Rechercher dans les messages"),
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
        help_text=_("Objet, expéditeur, destinataires, texte et noms des pièces jointes."),
    )
    folder = forms.ChoiceField(label=_("Dossier"), required=False, choices=FOLDER_CHOICES)
    # "from" is a Python keyword: the field is added in __init__.
    to = forms.CharField(label=_("À"), required=False, max_length=200)
    date_from = forms.DateField(
        label=_("Du"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("Au"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    has_attachment = forms.BooleanField(label=_("Avec pièce jointe"), required=False)
    unread = forms.BooleanField(label=_("Non lus"), required=False)
    urgent = forms.BooleanField(label=_("Urgents"), required=False)
    offset = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_OFFSET, widget=forms.HiddenInput
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from"] = forms.CharField(label=_("De"), required=False, max_length=200)
        self.order_fields(["q", "folder", "from", "to"])

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("La date de fin précède la date de début."))
        return data

    def has_criteria(self) -> bool:
        data = self.cleaned_data
        return any(data.get(name) for name in self.fields if name != "offset")

    def has_more_criteria(self) -> bool:
        """Whether a criterion other than the words was given (the form shows them open)."""
        return any(self[name].value() for name in self.fields if name not in ("q", "offset"))


@never_cache
@require_GET
def search_view(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    mailbox = selectors.mailbox_get_for_user(user=request.user, mailbox_id=mailbox_id)
    form = SearchForm(request.GET or None)
    results, offset = None, 0
    if form.is_valid() and form.has_criteria():
        data = form.cleaned_data
        offset = data["offset"] or 0
        results = message_search(
            user=request.user, mailbox_id=mailbox.pk, query=data["q"],
            folder_kind=data["folder"] or None, from_=data["from"], to=data["to"],
            date_from=data["date_from"], date_to=data["date_to"],
            has_attachment=data["has_attachment"], unread=data["unread"],
            urgent=data["urgent"], limit=PAGE_SIZE, offset=offset,
        )  # fmt: skip
        selectors.patients_attach(messages=[hit.message for hit in results.results])
    return render(
        request,
        "mailbox/search.html",
        {
            "mailbox": mailbox,
            "folder": None,
            "folders": selectors.folders_with_unread(mailbox=mailbox),
            "mailboxes": selectors.mailboxes_for_user(user=request.user),
            "form": form,
            "results": results,
            "next_offset": offset + PAGE_SIZE if results and results.has_more else None,
            "previous_offset": max(0, offset - PAGE_SIZE) if offset else None,
        },
    )
