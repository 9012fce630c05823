from django.contrib import admin

from apps.mailbox.models import Mailbox, MailboxMembership


class MembershipInline(admin.TabularInline):
    model = MailboxMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    list_display = ["address", "kind", "display_name", "owner", "domain", "hidden_from_directory"]
    list_filter = ["kind", "domain", "hidden_from_directory"]
    search_fields = ["address", "display_name", "owner__email"]
    autocomplete_fields = ["owner"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        # Address and type never change after creation (MSSanté rule).
        return ["address", "kind", "domain"] if obj else []
