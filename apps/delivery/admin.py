from django.contrib import admin

from apps.delivery.models import OutboundDelivery


@admin.register(OutboundDelivery)
class OutboundDeliveryAdmin(admin.ModelAdmin):
    """Read-only: the queue is changed by the worker and the sweeper, never by hand."""

    list_display = ["pk", "domain", "route", "status", "attempts", "next_attempt_at",
                    "created_at"]  # fmt: skip
    list_filter = ["status", "route"]
    search_fields = ["domain", "msgid"]
    ordering = ["-created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
