import hashlib
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.request_meta import RequestMeta
from apps.notifications import selectors, services
from apps.notifications.conf import vapid_keys
from apps.notifications.forms import PreferenceForm, SubscriptionForm

# --- Settings page ----------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def settings_view(request: HttpRequest) -> HttpResponse:
    preference = selectors.preference_for_user(user=request.user)
    form = PreferenceForm(request.POST or None, instance=preference)
    if request.method == "POST" and form.is_valid():
        services.preference_save(
            preference=form.save(commit=False), meta=RequestMeta.from_request(request)
        )
        messages.success(request, _("Préférences de notification enregistrées."))
        return redirect("notifications:settings")
    return render(
        request,
        "notifications/settings.html",
        {
            "form": form,
            "subscriptions": selectors.subscriptions_for_user(user=request.user),
            "vapid_public_key": vapid_keys().public_key,
        },
        status=400 if form.errors else 200,
    )


@require_POST
def subscription_add_view(request: HttpRequest) -> JsonResponse:
    """Called by the page's script with this browser's push subscription."""
    form = SubscriptionForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": _("Abonnement incomplet.")}, status=400)
    try:
        subscription = services.subscription_save(
            user=request.user,
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
            meta=RequestMeta.from_request(request),
            **form.cleaned_data,
        )
    except services.SubscriptionRefused as exc:
        return JsonResponse({"error": exc.message}, status=400)
    messages.success(request, _("Notifications activées sur cet appareil."))
    return JsonResponse({"id": subscription.pk, "label": subscription.device_label}, status=201)


@require_POST
def subscription_remove_view(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = selectors.subscription_get_for_user(
        user=request.user, subscription_id=subscription_id
    )
    services.subscription_delete(
        subscription=subscription, actor=request.user, meta=RequestMeta.from_request(request)
    )
    messages.success(request, _("Cet appareil ne recevra plus de notifications."))
    return redirect("notifications:settings")


@require_POST
def test_push_view(request: HttpRequest) -> HttpResponse:
    count = services.push_test_send(user=request.user)
    if count:
        messages.success(
            request,
            ngettext(
                "Notification de test envoyée à %(count)d appareil.",
                "Notification de test envoyée à %(count)d appareils.",
                count,
            )
            % {"count": count},
        )
    else:
        messages.info(request, _("Aucun appareil n'est encore activé."))
    return redirect("notifications:settings")


# --- Installable web app: manifest, service worker, offline page -----------------------------

SW_SOURCE = Path(settings.BASE_DIR) / "static" / "sw.js"
SHELL_ASSETS = [
    "css/app.css", "js/pwa.js", "img/logo.svg", "img/favicon.svg",
    "icons/icon-192.png", "icons/badge-96.png",
]  # fmt: skip


@login_not_required
@require_GET
@cache_control(max_age=3600, public=True)
def manifest_view(request: HttpRequest) -> JsonResponse:
    icon = lambda name, size, purpose="any": {  # noqa: E731
        "src": static(f"icons/{name}"), "sizes": size, "type": "image/png", "purpose": purpose,
    }  # fmt: skip
    manifest = {
        "name": _("%(site)s — Messagerie sécurisée de santé") % {"site": settings.SITE_NAME},
        "short_name": settings.SITE_NAME,
        "description": _("Messagerie sécurisée de santé (MSSanté) pour les professionnels."),
        "lang": settings.LANGUAGE_CODE,
        "id": "/",
        "start_url": reverse("mailbox:index"),
        "scope": "/",
        "display": "standalone",
        "orientation": "any",
        "background_color": "#f3f6f8",
        "theme_color": "#0b5c6b",
        "icons": [
            icon("icon-192.png", "192x192"),
            icon("icon-512.png", "512x512"),
            icon("maskable-512.png", "512x512", "maskable"),
        ],
    }
    response = JsonResponse(manifest, json_dumps_params={"ensure_ascii": False})
    response["Content-Type"] = "application/manifest+json"
    return response


@login_not_required
@require_GET
def service_worker_view(request: HttpRequest) -> HttpResponse:
    """The service worker, served from the site root so that its scope is the whole site. The
    list of shell files (with their hashed names in production) and a version are prepended."""
    offline = reverse("pwa:offline")
    lang = _language(request.GET.get("lang", ""))
    if lang:
        offline += f"?lang={lang}"
    shell = [offline, *(static(name) for name in SHELL_ASSETS)]
    source = SW_SOURCE.read_text()
    version = hashlib.sha256((source + "".join(shell)).encode()).hexdigest()[:12]
    # Hashed names (production) never change content: cache first. Plain names (development)
    # do: network first, so an edited style sheet shows at the next reload.
    hashed = "Manifest" in settings.STORAGES["staticfiles"]["BACKEND"]
    header = (
        f"const VERSION = {version!r};\n"
        f"const STATIC_CACHE_FIRST = {'true' if hashed else 'false'};\n"
        f"const OFFLINE_URL = {shell[0]!r};\n"
        f"const STATIC_PREFIX = {static('')!r};\n"
        f"const SHELL = {shell!r};\n"
    )
    response = HttpResponse(header + source, content_type="text/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    response["Cache-Control"] = "no-cache"
    return response


@login_not_required
@require_GET
def offline_view(request: HttpRequest) -> HttpResponse:
    """Shown by the service worker when a page cannot be reached. It carries nothing personal:
    the worker fetches it without cookies."""
    lang = _language(request.GET.get("lang", ""))
    with translation.override(lang or translation.get_language()):
        response = render(request, "notifications/offline.html")
    response["Cache-Control"] = "no-cache"
    return response


def _language(code: str) -> str:
    """``code`` when it is one of the site's languages, else ``""``."""
    return code if code in dict(settings.LANGUAGES) else ""
