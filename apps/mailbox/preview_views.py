"""Attachment previews: a page of images, which works without JavaScript and runs none."""

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.attachments.services import BlobTampered
from apps.core.request_meta import RequestMeta
from apps.mailbox import preview, selectors

# What a preview image may do when opened on its own: nothing.
IMAGE_CSP = "default-src 'none'; sandbox"


def _image_headers(response: HttpResponse) -> HttpResponse:
    """Never stored by a browser or a proxy (``no-store`` says it all: not ``never_cache``)."""
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    response["Content-Security-Policy"] = IMAGE_CSP
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@never_cache
@require_GET
def attachment_preview_view(request: HttpRequest, attachment_id: int) -> HttpResponse:
    attachment = selectors.attachment_get_for_user(user=request.user, attachment_id=attachment_id)
    kind = preview.preview_kind(content_type=attachment.content_type, filename=attachment.filename)
    if kind is None:
        raise Http404
    context = {"attachment": attachment, "message": attachment.message, "downloadable": True}
    status = 200
    try:
        context["preview"] = preview.attachment_preview(attachment=attachment)
    except BlobTampered:
        context["error"] = _(
            "Aperçu impossible : la pièce jointe stockée est endommagée ou a été modifiée. "
            "Elle ne peut être ni affichée ni téléchargée ; prévenez l'expéditeur ou le support."
        )
        context["downloadable"] = False
        status = 404
    except preview.PreviewUnavailable as exc:
        context["error"] = exc.message
    else:
        preview.attachment_preview_record(
            user=request.user, attachment=attachment, meta=RequestMeta.from_request(request)
        )
    return render(request, "mailbox/preview.html", context, status=status)


@require_GET
def attachment_preview_page_view(request: HttpRequest, attachment_id: int, number: int):
    """One page of a PDF as a PNG (audited once, by the preview page, not per image)."""
    attachment = selectors.attachment_get_for_user(user=request.user, attachment_id=attachment_id)
    try:
        image = preview.attachment_preview_page(attachment=attachment, number=number)
    except (BlobTampered, preview.PreviewUnavailable) as exc:
        raise Http404 from exc
    return _image_headers(HttpResponse(image, content_type="image/png"))


@require_GET
def attachment_preview_image_view(request: HttpRequest, attachment_id: int):
    """An image attachment, inline, under the raster type its bytes prove."""
    attachment = selectors.attachment_get_for_user(user=request.user, attachment_id=attachment_id)
    try:
        plaintext, content_type = preview.attachment_preview_image(attachment=attachment)
    except (BlobTampered, preview.PreviewUnavailable) as exc:
        raise Http404 from exc
    response = FileResponse(
        plaintext, as_attachment=False, filename=attachment.filename, content_type=content_type
    )
    return _image_headers(response)
