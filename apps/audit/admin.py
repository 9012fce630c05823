from django.contrib import admin

from apps.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: audit rows are never added, changed or deleted by hand."""

    list_display = ["seq", "created_at", "event", "actor_label", "ip", "target_type", "target_id"]
    list_filter = ["event"]
    search_fields = ["actor_label", "=target_id", "=ip"]
    date_hierarchy = "created_at"
    ordering = ["-seq"]
    show_full_result_count = False  # no COUNT(*) over the whole trail on every search

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
