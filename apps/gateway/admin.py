from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apps.core.request_meta import RequestMeta
from apps.gateway.models import InboundDelivery, InboundMessage, InboundStatus
from apps.gateway.services import inbound_replay


class InboundDeliveryInline(admin.TabularInline):
    model = InboundDelivery
    fields = ["mailbox", "outcome", "message", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(InboundMessage)
class InboundMessageAdmin(admin.ModelAdmin):
    """Mail received by the gateway, for the staff to follow and replay. Read-only; no content
    is shown beyond what identifies a message (Message-ID, sizes, envelope, channel)."""

    list_display = [
        "id", "received_at", "status", "size", "recipient_count", "peer_ip", "tls_version",
        "attempts", "last_error",
    ]  # fmt: skip
    list_filter = ["status", "protocol"]
    search_fields = ["=message_id", "=sha256", "=id"]
    date_hierarchy = "received_at"
    fields = [
        "status", "received_at", "ingested_at", "message_id", "size", "sha256", "mail_from",
        "rcpt_tos", "protocol", "peer_ip", "helo", "tls_version", "tls_cipher", "client_cert_dn",
        "attempts", "next_attempt_at", "last_error",
    ]  # fmt: skip
    readonly_fields = fields
    inlines = [InboundDeliveryInline]
    actions = ["replay"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("raw")

    @admin.display(description=_("destinataires"))
    def recipient_count(self, obj: InboundMessage) -> int:
        return len(obj.rcpt_tos)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_replay_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    @admin.action(description=_("Rejouer (messages en quarantaine)"), permissions=["replay"])
    def replay(self, request, queryset):
        meta = RequestMeta.from_request(request)
        replayed = 0
        for inbound in queryset.filter(status=InboundStatus.QUARANTINED):
            replayed += inbound_replay(inbound=inbound, user=request.user, meta=meta)
        skipped = queryset.count() - replayed
        if replayed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d message remis en file de distribution.",
                    "%(count)d messages remis en file de distribution.",
                    replayed,
                )
                % {"count": replayed},
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d message ignoré : seuls les messages en quarantaine se rejouent.",
                    "%(count)d messages ignorés : seuls les messages en quarantaine se rejouent.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )
