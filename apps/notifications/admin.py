from django.contrib import admin

from apps.notifications.models import NotificationPreference, PushSubscription


@admin.register(PushSubscription)
class PushSubscriptionAdmin(admin.ModelAdmin):
    """Staff see which devices are alerted (to help a user), never the keys."""

    list_display = ["user", "device_label", "created_at", "last_success_at"]
    search_fields = ["user__email"]
    fields = ["user", "device_label", "created_at", "last_success_at"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "events", "digest", "email_enabled", "sms_enabled", "updated_at"]
    search_fields = ["user__email"]
    readonly_fields = ["last_digest_at", "updated_at"]
