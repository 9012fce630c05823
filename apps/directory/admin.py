from django.contrib import admin

from apps.directory.models import ImportRun


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    """Staff follow the directory imports (read-only: imports run from the command or beat)."""

    list_display = [
        "started_at", "status", "slot", "activity_rows", "mailbox_rows", "rejected_rows",
        "finished_at",
    ]  # fmt: skip
    list_filter = ["status"]
    readonly_fields = [f.name for f in ImportRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
