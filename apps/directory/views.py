from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.directory import selectors, services
from apps.directory.forms import ContactForm, ContactFromDirectoryForm, SearchForm
from apps.directory.models import Contact


@require_GET
def search_view(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET or None)
    page = None
    if form.is_bound and form.is_valid():
        filters = form.filters()
        page = selectors.directory_search(filters=filters, cursor=form.cleaned_data["after"])
        if not filters.empty:
            services.search_count(user=request.user)
    next_query = None
    if page and page.next_cursor:
        params = request.GET.copy()
        params["after"] = page.next_cursor
        next_query = params.urlencode()
    return render(
        request,
        "directory/search.html",
        {
            "form": form,
            "page": page,
            "next_query": next_query,
            "contact_addresses": set(
                Contact.objects.filter(owner=request.user).values_list("email", flat=True)
            ),
        },
    )


@require_GET
def professional_view(request: HttpRequest, idnat: str) -> HttpResponse:
    person = selectors.professional_get(idnat=idnat)
    return render(
        request,
        "directory/professional.html",
        {
            "person": person,
            "contact_addresses": set(
                Contact.objects.filter(owner=request.user).values_list("email", flat=True)
            ),
        },
    )


def _rate_limited(user_id: int) -> bool:
    """At most DIRECTORY_AUTOCOMPLETE_RATE answers per user per 10-second window."""
    key = f"dir-ac:{user_id}"
    cache.add(key, 0, timeout=10)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=10)
        count = 1
    return count > settings.DIRECTORY_AUTOCOMPLETE_RATE


@require_GET
def autocomplete_view(request: HttpRequest) -> JsonResponse:
    if _rate_limited(request.user.pk):
        return JsonResponse({"error": "rate_limited", "results": []}, status=429)
    query = request.GET.get("q", "")[:100]
    results = selectors.recipient_autocomplete(
        user=request.user, query=query, limit=settings.DIRECTORY_AUTOCOMPLETE_LIMIT
    )
    if query.strip():
        services.search_count(user=request.user, autocomplete=True)
    response = JsonResponse({"results": results})
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
def contacts_view(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:100]
    return render(
        request,
        "directory/contacts.html",
        {
            "contacts": selectors.contacts_for_user(user=request.user, query=query)[:500],
            "q": query,
        },
    )


@require_POST
def contact_add_from_directory_view(request: HttpRequest) -> HttpResponse:
    form = ContactFromDirectoryForm(request.POST)
    box = form.is_valid() and selectors.mailbox_in_directory(address=form.cleaned_data["address"])
    if not box:
        messages.error(request, _("Cette adresse n'est pas dans l'annuaire."))
        return redirect("directory:search")
    name = selectors.mailbox_display_name(
        **{k: box[k] for k in ("bal_type", "civility", "first_name", "last_name",
                               "structure_name", "service")}
    )  # fmt: skip
    existing = Contact.objects.filter(owner=request.user, email=box["address"]).first()
    services.contact_save(
        owner=request.user,
        email=box["address"],
        display_name=name,
        idnat=box["idnat"],
        profession_label=box["profession_label"],
        town=box["town"],
        is_favourite=existing.is_favourite if existing else False,
        note=existing.note if existing else "",
        contact=existing,
    )
    messages.success(request, _("%(name)s est dans vos contacts.") % {"name": name})
    next_url = request.POST.get("next", "")
    if next_url.startswith("/") and not next_url.startswith("//"):
        return redirect(next_url)
    return redirect("directory:contacts")


@require_http_methods(["GET", "POST"])
def contact_edit_view(request: HttpRequest, contact_id: int | None = None) -> HttpResponse:
    contact = (
        selectors.contact_get_for_user(user=request.user, contact_id=contact_id)
        if contact_id
        else None
    )
    initial = {}
    if contact:
        initial = {
            "display_name": contact.display_name, "email": contact.email,
            "profession_label": contact.profession_label, "town": contact.town,
            "is_favourite": contact.is_favourite, "note": contact.note,
        }  # fmt: skip
    form = ContactForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.contact_save(
                owner=request.user, contact=contact, idnat=contact.idnat if contact else "",
                **form.cleaned_data,
            )  # fmt: skip
        except services.ContactError as exc:
            form.add_error("email", exc.message)
        else:
            messages.success(request, _("Contact enregistré."))
            return redirect("directory:contacts")
    return render(request, "directory/contact_form.html", {"form": form, "contact": contact})


@require_POST
def contact_delete_view(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = selectors.contact_get_for_user(user=request.user, contact_id=contact_id)
    services.contact_delete(contact=contact)
    messages.success(request, _("Contact supprimé."))
    return redirect("directory:contacts")
