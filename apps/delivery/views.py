from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.request_meta import RequestMeta
from apps.delivery import services
from apps.delivery.forms import ReceiptModeForm
from apps.mailbox import selectors as mailbox_selectors


@require_POST
def receipt_answer_view(request: HttpRequest, message_id: int) -> HttpResponse:
    """The reader's answer to "L'expéditeur demande un accusé de lecture": Envoyer / Ignorer."""
    message = mailbox_selectors.message_get_for_user(user=request.user, message_id=message_id)
    send = request.POST.get("answer") == "send"
    sent = services.read_receipt_answer(
        user=request.user, message=message, send=send, meta=RequestMeta.from_request(request)
    )
    if sent:
        messages.success(request, _("Accusé de lecture envoyé."))
    return redirect("mailbox:message", message_id=message.pk)


@never_cache
@require_http_methods(["GET", "POST"])
def receipt_settings_view(request: HttpRequest) -> HttpResponse:
    form = ReceiptModeForm(
        request.POST or None, initial={"mode": services.receipt_mode_for(user=request.user)}
    )
    if request.method == "POST" and form.is_valid():
        services.receipt_mode_set(user=request.user, mode=form.cleaned_data["mode"])
        messages.success(request, _("Préférence enregistrée."))
        return redirect("delivery:receipt_settings")
    return render(request, "delivery/receipt_settings.html", {"form": form})
