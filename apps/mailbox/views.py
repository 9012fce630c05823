import mimetypes
import re
import secrets
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.attachments.services import BlobTampered, blob_read_verified
from apps.core.request_meta import RequestMeta
from apps.delivery import selectors as delivery_selectors
from apps.delivery import services as delivery_services
from apps.external.views import external_context, remember_sent
from apps.ingestion.build import forward_subject, quote_text, reply_subject
from apps.ingestion.sanitize import sanitize_html, text_to_html
from apps.mailbox import selectors, services
from apps.mailbox.forms import ComposeForm, composed_body
from apps.mailbox.models import FolderKind, Message
from apps.mailbox.patients import patient_domain
from apps.securelink.services import secure_links_panel

INLINE_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


@require_GET
def index_view(request: HttpRequest) -> HttpResponse:
    mailbox = selectors.mailboxes_for_user(user=request.user).first()
    if mailbox is None:
        messages.info(request, _("Aucune boîte aux lettres n'est rattachée à votre compte."))
        return redirect("core:home")
    return redirect("mailbox:folder", mailbox_id=mailbox.pk, kind=FolderKind.INBOX)


def _cursor(value: str | None) -> tuple[datetime, int] | None:
    if not value or "_" not in value:
        return None
    stamp, _sep, pk = value.rpartition("_")
    date = parse_datetime(stamp)
    return (date, int(pk)) if date and pk.isdigit() else None


@never_cache
@require_GET
def folder_view(request: HttpRequest, mailbox_id: int, kind: str) -> HttpResponse:
    folder = selectors.folder_get_for_user(user=request.user, mailbox_id=mailbox_id, kind=kind)
    services.folders_ensure(mailbox=folder.mailbox)
    # ?patient=<INS>: the messages about one patient, across the mailbox.
    patient_ins = request.GET.get("patient", "").strip().upper()
    patient_ins = patient_ins if re.fullmatch(r"[0-9A-Z]{1,32}", patient_ins) else ""
    rows = selectors.folder_messages(
        folder=folder, before=_cursor(request.GET.get("avant")), patient_ins=patient_ins
    )
    more = len(rows) > selectors.PAGE_SIZE
    rows = rows[: selectors.PAGE_SIZE]
    next_cursor = f"{rows[-1].date.isoformat()}_{rows[-1].pk}" if more and rows else None
    selectors.patients_attach(messages=rows)
    patient_badge = patient_ins and selectors.patient_badge_in_mailbox(
        mailbox=folder.mailbox, patient_ins=patient_ins
    )
    return render(
        request,
        "mailbox/folder.html",
        {
            "mailbox": folder.mailbox,
            "folder": folder,
            "folders": selectors.folders_with_unread(mailbox=folder.mailbox),
            "mailboxes": selectors.mailboxes_for_user(user=request.user),
            "rows": rows,
            "next_cursor": next_cursor,
            "patient_ins": patient_ins,
            "patient_badge": patient_badge,
        },
    )


@never_cache
@require_GET
def message_view(request: HttpRequest, message_id: int) -> HttpResponse:
    message = selectors.message_get_for_user(user=request.user, message_id=message_id)
    if message.folder.kind == FolderKind.DRAFTS:
        return redirect(f"{reverse('mailbox:compose')}?brouillon={message.pk}")
    meta = RequestMeta.from_request(request)
    services.message_mark_read(user=request.user, message=message, meta=meta)
    receipt_ask = delivery_services.read_receipt_on_open(
        user=request.user, message=message, meta=meta
    )
    thread = selectors.conversation_messages(message=message)
    selectors.patients_attach(messages=thread)
    message.patient_badge = next((m.patient_badge for m in thread if m.pk == message.pk), None)
    remote = request.GET.get("distant") == "1"
    for item in thread:
        if item.html_body:
            # Shown in a sandboxed frame (message_html_view); here only to count what it blocks.
            item.blocked_remote = sanitize_html(item.html_body).blocked_remote
            item.frame_url = reverse("mailbox:message_html", args=[item.pk]) + (
                "?distant=1" if remote else ""
            )
        else:
            # text_to_html escapes everything but the links it makes.
            item.body_html = mark_safe(text_to_html(item.text_body))  # noqa: S308
    return render(
        request,
        "mailbox/message.html",
        {
            "mailbox": message.mailbox,
            "folder": message.folder,
            "folders": selectors.folders_with_unread(mailbox=message.mailbox),
            "message": message,
            "thread": thread,
            "remote": remote,
            "inline_types": INLINE_IMAGE_TYPES,
            "deliveries": delivery_selectors.delivery_statuses(message=message),
            "receipt_ask": receipt_ask,
            "secure_links": secure_links_panel(user=request.user, messages=thread),
        },
    )


HTML_FRAME_CSP = (
    "default-src 'none'; img-src 'self' data:{remote}; style-src 'nonce-{nonce}'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)


FRAME_STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;"
    "font-size:15px;line-height:1.5;color:#14212b;margin:12px;overflow-wrap:anywhere}"
    "img{max-width:100%;height:auto}table{max-width:100%}a{color:#0b5c6b}"
    "img:not([src]){display:inline-block;border:1px dashed #8a99a5;padding:2px 6px}"
)


@never_cache
@require_GET
def message_html_view(request: HttpRequest, message_id: int) -> HttpResponse:
    """The HTML body, sanitised, for a sandboxed frame: no script can run (sandbox and CSP),
    nothing remote loads unless the reader asked for it for this message."""
    message = selectors.message_get_for_user(user=request.user, message_id=message_id)
    remote = request.GET.get("distant") == "1"
    cid_urls = {
        a.content_id: reverse("mailbox:attachment", args=[a.pk]) + "?inline=1"
        for a in message.attachments.all()
        if a.content_id and a.content_type in INLINE_IMAGE_TYPES
    }
    body = sanitize_html(message.html_body, allow_remote=remote, cid_urls=cid_urls).html
    # Our own typography only (the sanitiser removed every style of the message), by nonce.
    nonce = secrets.token_urlsafe(16)
    response = HttpResponse(
        '<!doctype html><html><head><meta charset="utf-8"><base target="_blank">'
        f'<style nonce="{nonce}">{FRAME_STYLE}</style></head><body>{body}</body></html>',
        content_type="text/html; charset=utf-8",
    )
    response["Content-Security-Policy"] = HTML_FRAME_CSP.format(
        remote=" https: http:" if remote else "", nonce=nonce
    )
    response["X-Frame-Options"] = "SAMEORIGIN"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response


@never_cache
@require_GET
def attachment_view(request: HttpRequest, attachment_id: int) -> HttpResponse:
    attachment = selectors.attachment_get_for_user(user=request.user, attachment_id=attachment_id)
    try:
        plaintext = blob_read_verified(attachment.blob)
    except BlobTampered as exc:
        raise Http404 from exc
    services.attachment_download_record(
        user=request.user, attachment=attachment, meta=RequestMeta.from_request(request)
    )
    content_type = attachment.content_type or (
        mimetypes.guess_type(attachment.filename)[0] or "application/octet-stream"
    )
    # Only plain images are ever shown inline (by a message's HTML); everything else downloads.
    inline = request.GET.get("inline") == "1" and content_type in INLINE_IMAGE_TYPES
    response = FileResponse(
        plaintext, as_attachment=not inline, filename=attachment.filename,
        content_type=content_type,
    )  # fmt: skip
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


ACTIONS = {"read", "unread", "flag", "unflag", "archive", "delete", "move", "inbox"}


def _back(request: HttpRequest, fallback: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(fallback)


@require_POST
def messages_action_view(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """Bulk actions on selected messages of one mailbox (works without JavaScript)."""
    fallback = reverse("mailbox:folder", args=[mailbox_id, FolderKind.INBOX])
    action = request.POST.get("action", "")
    ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()]
    if action not in ACTIONS or not ids:
        messages.info(request, _("Sélectionnez des messages et une action."))
        return _back(request, fallback)
    chosen = selectors.messages_get_for_user(user=request.user, mailbox_id=mailbox_id, ids=ids)
    meta = RequestMeta.from_request(request)
    mailbox = selectors.mailbox_get_for_user(user=request.user, mailbox_id=mailbox_id)
    folders = services.folders_ensure(mailbox=mailbox)
    try:
        if action in ("read", "unread"):
            services.messages_set_flags(messages=chosen, read=action == "read")
        elif action in ("flag", "unflag"):
            services.messages_set_flags(messages=chosen, flagged=action == "flag")
        elif action == "delete":
            count = services.messages_delete(user=request.user, messages=chosen, meta=meta)
            messages.success(
                request,
                ngettext("%(count)d message supprimé.", "%(count)d messages supprimés.", count)
                % {"count": count},
            )
        else:
            if action == "move":
                target = selectors.folder_get_for_user(
                    user=request.user, mailbox_id=mailbox_id,
                    kind=request.POST.get("target", ""),
                )  # fmt: skip
            else:
                target = folders[FolderKind.ARCHIVE if action == "archive" else FolderKind.INBOX]
            count = services.messages_move(
                user=request.user, messages=chosen, target=target, meta=meta
            )
            messages.success(
                request,
                ngettext(
                    "%(count)d message déplacé vers « %(folder)s ».",
                    "%(count)d messages déplacés vers « %(folder)s ».",
                    count,
                )
                % {"count": count, "folder": target.label},
            )
    except services.MailError as exc:
        messages.error(request, exc.message)
    return _back(request, fallback)


@require_http_methods(["GET", "POST"])
def folders_manage_view(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    """Create, rename and delete one's own folders."""
    mailbox = selectors.mailbox_get_for_user(user=request.user, mailbox_id=mailbox_id)
    services.folders_ensure(mailbox=mailbox)
    if request.method == "POST":
        meta = RequestMeta.from_request(request)
        operation = request.POST.get("operation")
        try:
            if operation == "create":
                parent_id = request.POST.get("parent", "")
                parent = (
                    selectors.folder_get_for_user(
                        user=request.user, mailbox_id=mailbox_id, kind=parent_id
                    )
                    if parent_id
                    else None
                )
                services.folder_create(
                    user=request.user, mailbox=mailbox, name=request.POST.get("name", ""),
                    parent=parent, meta=meta,
                )  # fmt: skip
                messages.success(request, _("Dossier créé."))
            elif operation in ("rename", "delete"):
                folder = selectors.folder_get_for_user(
                    user=request.user, mailbox_id=mailbox_id,
                    kind=request.POST.get("folder", ""),
                )  # fmt: skip
                if operation == "rename":
                    services.folder_rename(
                        user=request.user, folder=folder, name=request.POST.get("name", ""),
                        meta=meta,
                    )  # fmt: skip
                    messages.success(request, _("Dossier renommé."))
                else:
                    services.folder_delete(user=request.user, folder=folder, meta=meta)
                    messages.success(request, _("Dossier supprimé."))
        except services.MailError as exc:
            messages.error(request, exc.message)
        return redirect("mailbox:folders", mailbox_id=mailbox.pk)
    folders = selectors.folders_with_unread(mailbox=mailbox)
    return render(
        request,
        "mailbox/folders.html",
        {
            "mailbox": mailbox,
            "folders": folders,
            "mailboxes": selectors.mailboxes_for_user(user=request.user),
            "folder": None,
            "own": [f for f in folders if f.kind == FolderKind.CUSTOM],
            "parents": [f for f in folders if f.kind == FolderKind.CUSTOM and not f.parent_id],
        },
    )


def _draft_for(request: HttpRequest) -> Message | None:
    draft_id = request.POST.get("draft") or request.GET.get("brouillon")
    if not (draft_id and str(draft_id).isdigit()):
        return None
    draft = selectors.message_get_for_user(user=request.user, message_id=int(draft_id))
    if draft.folder.kind != FolderKind.DRAFTS:
        raise Http404
    return draft


def _related(request: HttpRequest, name: str, query: str, state: dict) -> Message | None:
    value = request.POST.get(name) or request.GET.get(query) or state.get(name)
    if value and str(value).isdigit():
        return selectors.message_get_for_user(user=request.user, message_id=int(value))
    return None


def _outgoing(uploads) -> list:
    """Uploaded files as the services take them (streamed, never read whole here)."""
    return [
        services.OutgoingFile(
            filename=f.name,
            content_type=f.content_type or "application/octet-stream",
            size=f.size,
            stream=f.file,
        )
        for f in uploads
    ]


def _save_draft(request: HttpRequest, mailboxes: list, draft, *, with_files: bool):
    data = request.POST
    mailbox_id = data.get("mailbox", "")
    mailbox = next((m for m in mailboxes if str(m.pk) == mailbox_id), mailboxes[0])
    files = _outgoing(request.FILES.getlist("files")) if with_files else []
    html, text = composed_body(data.get("body_html", ""), data.get("text", ""))
    return services.draft_save(
        user=request.user,
        mailbox=mailbox,
        draft=draft,
        subject=" ".join(data.get("subject", "").split())[:500],
        text=text,
        html=html,
        state={
            "to": data.get("to", ""),
            "cc": data.get("cc", ""),
            "bcc": data.get("bcc", ""),
            "urgent": bool(data.get("urgent")),
            "read_receipt": bool(data.get("read_receipt")),
            "reply_to": data.get("reply_to") or None,
            "forward_of": data.get("forward_of") or None,
            **{name: data.get(name, "") for name in ComposeForm.PATIENT_FIELDS},
            "patient_no_reply": bool(data.get("patient_no_reply")),
        },
        files=files,
    )


@require_POST
def draft_autosave_view(request: HttpRequest) -> JsonResponse:
    """Called by the compose page's script every few seconds and when the page is left."""
    mailboxes = list(selectors.mailboxes_for_user(user=request.user))
    if not mailboxes:
        raise Http404
    draft = _save_draft(request, mailboxes, _draft_for(request), with_files=False)
    return JsonResponse({"draft": draft.pk, "saved_at": localtime(draft.date).strftime("%H:%M")})


@never_cache
@require_http_methods(["GET", "POST"])
def compose_view(request: HttpRequest) -> HttpResponse:
    mailboxes = list(selectors.mailboxes_for_user(user=request.user))
    if not mailboxes:
        raise Http404
    draft = _draft_for(request)
    state = draft.draft_state if draft is not None else {}
    reply_to = _related(request, "reply_to", "repondre", state)
    forward_of = _related(request, "forward_of", "transferer", state)
    initial = {"mailbox": mailboxes[0].pk, "to": request.GET.get("to", "")}
    if reply_to is not None:
        initial.update(
            mailbox=reply_to.mailbox_id,
            to=reply_to.from_address,
            subject=reply_subject(reply_to.subject),
            text="\n\n" + quote_text(reply_to.text_body, reply_to.from_name or
                                     reply_to.from_address, reply_to.date),
            reply_to=reply_to.pk,
        )  # fmt: skip
    if forward_of is not None:
        initial.update(
            mailbox=forward_of.mailbox_id,
            subject=forward_subject(forward_of.subject),
            text="\n\n" + forward_header(forward_of) + forward_of.text_body,
            forward_of=forward_of.pk,
        )
    if draft is not None:
        initial.update(
            mailbox=draft.mailbox_id, subject=draft.subject, text=draft.text_body,
            draft=draft.pk, **{k: v for k, v in state.items() if v not in (None, "")},
        )  # fmt: skip
    if request.method == "POST" and "discard" in request.POST:
        if draft is not None:
            services.draft_discard(
                user=request.user, draft=draft, meta=RequestMeta.from_request(request)
            )
            messages.success(request, _("Brouillon supprimé."))
            return redirect("mailbox:folder", mailbox_id=draft.mailbox_id, kind=FolderKind.DRAFTS)
        return redirect("mailbox:index")
    if request.method == "POST" and "save_draft" in request.POST:
        draft = _save_draft(request, mailboxes, draft, with_files=True)
        messages.success(request, _("Brouillon enregistré."))
        return redirect(f"{reverse('mailbox:compose')}?brouillon={draft.pk}")
    form = ComposeForm(
        request.POST or None, request.FILES or None, mailboxes=mailboxes, initial=initial
    )
    external_warning = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        mailbox = next(m for m in mailboxes if m.pk == data["mailbox"])
        files = _outgoing(data["files"])
        try:
            sent = services.message_send(
                user=request.user, mailbox=mailbox, to=data["to"], cc=data["cc"],
                bcc=data["bcc"], subject=data["subject"], text=data["text"],
                html=data["body_html"], files=files,
                urgent=data["urgent"], read_receipt=data["read_receipt"], reply_to=reply_to,
                forward_of=forward_of, draft=draft, meta=RequestMeta.from_request(request),
                patient=data["patient"], external=form.external_options(),
            )  # fmt: skip
        except services.ExternalConfirmationNeeded as exc:
            draft, form = _external_confirm(request, mailboxes, draft, exc.addresses)
            form.add_error(None, exc.message)
            external_warning = external_context(user=request.user, addresses=exc.addresses)
        except services.RecipientRefused as exc:
            form.add_error("to", exc.message)
        except services.MailError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Message envoyé."))
            if remember_sent(request, sent.external_sent):  # passphrases, codes: shown once
                return redirect("external:sent")
            return redirect(reverse("mailbox:folder", args=[sent.mailbox_id, FolderKind.SENT]))
    return render(
        request,
        "mailbox/compose.html",
        {
            "form": form, "reply_to": reply_to, "forward_of": forward_of, "draft": draft,
            "external_warning": external_warning,
            "external_policy": settings.EXTERNAL_RECIPIENTS_POLICY,
            **_editor_context(request, draft, reply_to, forward_of),
        },
    )  # fmt: skip


def _external_confirm(request: HttpRequest, mailboxes: list, draft, addresses: list[str]):
    """The confirmation step for recipients outside the trust space: the same form, with the
    warning and the choices; uploaded files go to the draft (a file input cannot be filled
    again), so nothing typed or attached is lost."""
    if request.FILES:
        draft = _save_draft(request, mailboxes, draft, with_files=True)
    data = request.POST.copy()
    data["external_confirmed"] = ",".join(addresses)
    if draft is not None:
        data["draft"] = str(draft.pk)
    form = ComposeForm(data, mailboxes=mailboxes)
    form.is_valid()
    return draft, form


def _editor_context(request: HttpRequest, draft, reply_to, forward_of) -> dict:
    """What the formatting editor starts from (the page's script reads it from data
    attributes): the HTML being written (posted again after a refusal, or the draft's), and
    for a reply or forward of an HTML message, that message to quote."""
    if request.method == "POST":
        editor_html = composed_body(request.POST.get("body_html", ""), "")[0]
    else:
        editor_html = draft.html_body if draft is not None else ""
    quoted = reply_to or forward_of
    quote_html = quote_head = ""
    if quoted is not None and quoted.html_body:
        quote_html = sanitize_html(quoted.html_body).html
        if reply_to is not None:
            author = reply_to.from_name or reply_to.from_address
            quote_head = quote_text("", author, reply_to.date).split("\n")[0]
        else:
            quote_head = forward_header(forward_of)
    return {
        "editor_html": editor_html,
        "quote_html": quote_html,
        "quote_head": quote_head,
        "max_message_size": settings.MAILBOX_MAX_MESSAGE_SIZE,
        "patient_domain": patient_domain(),
        "patient_max_mb": settings.MSSANTE_PATIENT_MAX_SIZE // 1_000_000,
    }


def forward_header(message) -> str:
    recipients = ", ".join(r.address for r in message.recipients.all() if r.kind != "bcc")
    return (
        _("-------- Message transféré --------")
        + "\n"
        + _("De : %(sender)s") % {"sender": f"{message.from_name} <{message.from_address}>"}
        + "\n"
        + _("Date : %(date)s") % {"date": date_format(localtime(message.date), "DATETIME_FORMAT")}
        + "\n"
        + _("Objet : %(subject)s") % {"subject": message.subject}
        + "\n"
        + _("À : %(to)s") % {"to": recipients}
        + "\n\n"
    )
