"""The recipient's pages (public: the token of the URL, then the code) and the sender's two
actions (revoke, new code).

After a right code the browser holds a short session bound to the link: a signed cookie
(``mssweb_link``, limited to the link's path, HttpOnly, SameSite=Strict) carrying the link id and
when the session began, re-signed at each page so that it ends after
``SECURE_LINK_SESSION_IDLE_MINUTES`` without activity (and ``SECURE_LINK_SESSION_MAX_MINUTES``
after the code in any case). The link's state is checked at every request: a revoked link closes
every open session at once.
"""

import functools
import mimetypes
import secrets
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.attachments.services import BlobTampered, blob_read_verified
from apps.core.request_meta import RequestMeta
from apps.ingestion.sanitize import sanitize_html, text_to_html
from apps.mailbox.views import FRAME_STYLE, HTML_FRAME_CSP, INLINE_IMAGE_TYPES
from apps.securelink import selectors, services
from apps.securelink.forms import CodeForm, ReplyForm
from apps.securelink.models import SecureLink

COOKIE_NAME = "mssweb_link"
COOKIE_SALT = "mssweb.securelink.session"


# --- The recipient's session -------------------------------------------------------------------


def _cookie_path(token: str) -> str:
    return reverse("securelink:open", args=[token])


def _session_started(request: HttpRequest, link: SecureLink) -> float | None:
    """When the browser's session on ``link`` began, or None (no session, another link's,
    idle too long, too old, tampered)."""
    value = request.COOKIES.get(COOKIE_NAME)
    if not value:
        return None
    try:
        data = signing.loads(
            value, salt=COOKIE_SALT, max_age=settings.SECURE_LINK_SESSION_IDLE_MINUTES * 60
        )
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("l") != link.pk:
        return None
    started = data.get("s")
    if not isinstance(started, int | float):
        return None
    if time.time() - started > settings.SECURE_LINK_SESSION_MAX_MINUTES * 60:
        return None
    return started


def _session_set(response: HttpResponse, *, token: str, link: SecureLink, started: float) -> None:
    value = signing.dumps({"l": link.pk, "s": int(started)}, salt=COOKIE_SALT)
    response.set_cookie(
        COOKIE_NAME,
        value,
        path=_cookie_path(token),
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )


def public_page(view):
    """The recipient's pages: open without an account, never cached or indexed, and the token
    in their URL never sent to another site. ``Referrer-Policy: same-origin`` rather than
    ``no-referrer``: with the latter, browsers send ``Origin: null`` with the forms' POSTs and
    the CSRF check (rightly) refuses them; ``same-origin`` sends nothing to other origins."""

    @login_not_required
    @never_cache
    @functools.wraps(view)
    def wrapper(request: HttpRequest, token: str, *args, **kwargs) -> HttpResponse:
        link = selectors.secure_link_by_token(token=token)
        response = view(request, token, link, *args, **kwargs)
        response.setdefault("Referrer-Policy", "same-origin")
        response["X-Robots-Tag"] = "noindex, nofollow"
        response["Cache-Control"] = "private, no-store"
        return response

    return wrapper


def _unavailable(request: HttpRequest, token: str, error: services.LinkUnavailable) -> HttpResponse:
    status = 403 if error.status == "locked" else 410
    response = render(
        request,
        "securelink/unavailable.html",
        {"error": error.message, "status": error.status},
        status=status,
    )
    response.delete_cookie(COOKIE_NAME, path=_cookie_path(token))
    return response


def _read_page(
    request: HttpRequest, token: str, link: SecureLink, *, form=None, status: int = 200
) -> HttpResponse:
    message = link.message
    context = {
        "link": link,
        "token": token,
        "message": message,
        "attachments": selectors.link_attachments(link=link),
        "form": form or ReplyForm(),
        "sent": request.GET.get("envoye") == "1",
    }
    if message.html_body:
        context["frame_url"] = reverse("securelink:frame", args=[token])
    else:
        # text_to_html escapes everything but the links it makes.
        context["body_html"] = mark_safe(text_to_html(message.text_body))  # noqa: S308
    return render(request, "securelink/read.html", context, status=status)


@public_page
@require_http_methods(["GET", "POST"])
def open_view(request: HttpRequest, token: str, link: SecureLink) -> HttpResponse:
    """The code form; with a session, the message, its attachments and the reply form."""
    try:
        services.link_check_available(link=link)
    except services.LinkUnavailable as error:
        return _unavailable(request, token, error)
    started = _session_started(request, link)
    if started is not None and request.method == "GET":
        response = _read_page(request, token, link)
        _session_set(response, token=token, link=link, started=started)
        return response
    form = CodeForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            services.secure_link_verify_code(
                link=link, code=form.cleaned_data["code"], meta=RequestMeta.from_request(request)
            )
        except services.LinkUnavailable as error:
            return _unavailable(request, token, error)
        except services.TooManyAttempts as error:
            form.add_error(None, error.message)
            status = 429
        except services.CodeRefused as error:
            form.add_error("code", error.message)
            status = 400
        else:
            response = redirect(_cookie_path(token))
            _session_set(response, token=token, link=link, started=time.time())
            return response
    return render(request, "securelink/code.html", {"form": form, "link": link}, status=status)


def _no_session(token: str) -> HttpResponse:
    return redirect(_cookie_path(token))


@public_page
@require_GET
def frame_view(request: HttpRequest, token: str, link: SecureLink) -> HttpResponse:
    """The HTML body, sanitised, for the sandboxed frame of the page (as in the webmail:
    nothing remote, no script, our typography by nonce)."""
    try:
        services.link_check_available(link=link)
    except services.LinkUnavailable as error:
        return _unavailable(request, token, error)
    if _session_started(request, link) is None:
        return HttpResponse(status=403)
    message = link.message
    cid_urls = {
        a.content_id: reverse("securelink:download", args=[token, a.pk]) + "?inline=1"
        for a in message.attachments.all()
        if a.content_id and a.content_type in INLINE_IMAGE_TYPES
    }
    body = sanitize_html(message.html_body, cid_urls=cid_urls).html
    nonce = secrets.token_urlsafe(16)
    response = HttpResponse(
        '<!doctype html><html><head><meta charset="utf-8"><base target="_blank">'
        f'<style nonce="{nonce}">{FRAME_STYLE}</style></head><body>{body}</body></html>',
        content_type="text/html; charset=utf-8",
    )
    response["Content-Security-Policy"] = HTML_FRAME_CSP.format(remote="", nonce=nonce)
    response["X-Frame-Options"] = "SAMEORIGIN"
    response["Referrer-Policy"] = "no-referrer"
    return response


@public_page
@require_GET
def download_view(
    request: HttpRequest, token: str, link: SecureLink, attachment_id: int
) -> HttpResponse:
    try:
        services.link_check_available(link=link)
    except services.LinkUnavailable as error:
        return _unavailable(request, token, error)
    started = _session_started(request, link)
    if started is None:
        return _no_session(token)
    attachment = selectors.link_attachment_get(link=link, attachment_id=attachment_id)
    try:
        plaintext = blob_read_verified(attachment.blob)
    except BlobTampered as exc:
        raise Http404 from exc
    content_type = attachment.content_type or (
        mimetypes.guess_type(attachment.filename)[0] or "application/octet-stream"
    )
    # Only the images of an HTML body are shown inline (in the frame); anything else downloads.
    inline = request.GET.get("inline") == "1" and content_type in INLINE_IMAGE_TYPES
    if not inline:
        services.secure_link_download_record(
            link=link, attachment=attachment, meta=RequestMeta.from_request(request)
        )
    response = FileResponse(
        plaintext, as_attachment=not inline, filename=attachment.filename,
        content_type=content_type,
    )  # fmt: skip
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Referrer-Policy"] = "no-referrer"
    _session_set(response, token=token, link=link, started=started)
    return response


@public_page
@require_http_methods(["GET", "POST"])
def reply_view(request: HttpRequest, token: str, link: SecureLink) -> HttpResponse:
    try:
        services.link_check_available(link=link)
    except services.LinkUnavailable as error:
        return _unavailable(request, token, error)
    started = _session_started(request, link)
    if started is None or request.method == "GET":
        return _no_session(token)
    form = ReplyForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            services.secure_link_reply(
                link=link,
                text=form.cleaned_data["text"],
                files=[services.reply_file_from_upload(f) for f in form.cleaned_data["files"]],
                meta=RequestMeta.from_request(request),
            )
        except services.SecureLinkError as error:
            form.add_error(None, error.message)
        else:
            response = redirect(_cookie_path(token) + "?envoye=1#reponse")
            _session_set(response, token=token, link=link, started=started)
            return response
    response = _read_page(request, token, link, form=form, status=400)
    _session_set(response, token=token, link=link, started=started)
    return response


@public_page
@require_POST
def leave_view(request: HttpRequest, token: str, link: SecureLink) -> HttpResponse:
    response = redirect(_cookie_path(token))
    response.delete_cookie(COOKIE_NAME, path=_cookie_path(token))
    return response


# --- The sender --------------------------------------------------------------------------------


def _back_to_message(link: SecureLink) -> HttpResponse:
    return redirect(reverse("mailbox:message", args=[link.message_id]) + f"#lien-{link.pk}")


@require_POST
def revoke_view(request: HttpRequest, link_id: int) -> HttpResponse:
    link = selectors.secure_link_get_for_user(user=request.user, link_id=link_id)
    services.secure_link_revoke(
        user=request.user, link=link, meta=RequestMeta.from_request(request)
    )
    messages.success(
        request, _("Lien révoqué : %(address)s ne peut plus lire ce message.")
        % {"address": link.address},
    )  # fmt: skip
    return _back_to_message(link)


@require_POST
def new_code_view(request: HttpRequest, link_id: int) -> HttpResponse:
    link = selectors.secure_link_get_for_user(user=request.user, link_id=link_id)
    try:
        code = services.secure_link_new_code(
            user=request.user, link=link, meta=RequestMeta.from_request(request)
        )
    except services.SecureLinkError as error:
        messages.error(request, error.message)
    else:
        if code is None:
            messages.success(request, _("Un nouveau code a été envoyé par SMS au destinataire."))
        else:
            messages.success(
                request,
                _("Nouveau code créé : communiquez-le au destinataire (il est affiché une seule "
                  "fois, ci-dessous)."),
            )  # fmt: skip
    return _back_to_message(link)
