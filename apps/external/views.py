"""Recipients outside the trust space: the compose page's live route check, the page that
shows passphrases and codes once after sending, and the OpenPGP keys on contacts."""

from email.utils import getaddresses

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.exceptions import ApplicationError
from apps.core.request_meta import RequestMeta
from apps.external import selectors, services
from apps.external.forms import KeyImportForm

SESSION_KEY = "external_sent"
MAX_ADDRESSES = 100


def _rate_limited(user_id: int) -> bool:
    """At most EXTERNAL_ROUTES_RATE answers per user per 10-second window."""
    key = f"ext-routes:{user_id}"
    cache.add(key, 0, timeout=10)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=10)
        count = 1
    return count > settings.EXTERNAL_ROUTES_RATE


def external_context(*, user, addresses: list[str]) -> list[dict]:
    """Each external address, with the fingerprint of the contact's key when it has one."""
    keys = selectors.contact_keys_for(user=user, addresses=addresses)
    return [
        {"address": a, "fingerprint": keys[a].fingerprint_display if a in keys else ""}
        for a in addresses
    ]


@require_GET
def routes_view(request: HttpRequest) -> JsonResponse:
    """``?addresses=a@x.fr, Name <b@y.com>`` → which are outside the trust space, and which of
    those the sender has an OpenPGP key for. Read-only (a GET changes nothing)."""
    if _rate_limited(request.user.pk):
        return JsonResponse({"error": "rate_limited", "external": []}, status=429)
    text = request.GET.get("addresses", "")[:10_000].replace(";", ",")
    addresses = [a for _name, a in getaddresses([text]) if "@" in a][:MAX_ADDRESSES]
    outside = selectors.external_addresses(addresses)
    response = JsonResponse(
        {
            "policy": settings.EXTERNAL_RECIPIENTS_POLICY,
            "external": [
                {
                    "address": item["address"],
                    "openpgp": bool(item["fingerprint"]),
                    "fingerprint": item["fingerprint"],
                }
                for item in external_context(user=request.user, addresses=outside)
            ],
        }
    )
    response["Cache-Control"] = "private, no-store"
    return response


def remember_sent(request: HttpRequest, sent: list[services.ExternalSent]) -> bool:
    """Keep what the sender must see once (passphrases, codes) for ``sent_view``; True when
    there is something to show."""
    items = [
        {"address": s.address, "protection": s.protection, "fingerprint": s.fingerprint,
         "passphrase": s.passphrase, "code": s.code, "sms": s.sms}
        for s in sent
    ]  # fmt: skip
    if not items:
        return False
    request.session[SESSION_KEY] = items
    return True


@never_cache
@require_GET
def sent_view(request: HttpRequest) -> HttpResponse:
    """Shown once: the passphrases and codes to transmit by another channel."""
    items = request.session.pop(SESSION_KEY, None)
    if not items:
        return redirect("mailbox:index")
    response = render(request, "external/sent.html", {"items": items})
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def keys_view(request: HttpRequest) -> HttpResponse:
    contacts = selectors.contacts_with_keys(user=request.user)
    initial = {"contact": request.GET.get("contact")} if request.GET.get("contact") else {}
    form = KeyImportForm(
        request.POST or None, request.FILES or None, contacts=contacts, initial=initial
    )
    if request.method == "POST" and form.is_valid():
        contact = selectors.contact_get_for_user(
            user=request.user, contact_id=form.cleaned_data["contact"]
        )
        try:
            key = services.contact_key_import(
                user=request.user, contact=contact, data=form.cleaned_data["key_data"],
                meta=RequestMeta.from_request(request),
            )  # fmt: skip
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                _("Clé %(fingerprint)s importée pour %(name)s.")
                % {"fingerprint": key.fingerprint_display, "name": contact.display_name},
            )
            return redirect("external:keys")
    return render(
        request,
        "external/keys.html",
        {"form": form, "contacts": [c for c in contacts if c.openpgp_keys.all()]},
    )


@require_POST
def key_remove_view(request: HttpRequest, key_id: int) -> HttpResponse:
    key = selectors.contact_key_get_for_user(user=request.user, key_id=key_id)
    services.contact_key_remove(user=request.user, key=key, meta=RequestMeta.from_request(request))
    messages.success(request, _("Clé retirée."))
    return redirect("external:keys")
