from django.contrib import admin

from apps.audit.admin import AuditedChangesMixin
from apps.audit.events import Event
from apps.audit.services import record
from apps.core.request_meta import RequestMeta
from apps.mailbox.models import Mailbox, MailboxMembership


class MembershipInline(admin.TabularInline):
    model = MailboxMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Mailbox)
class MailboxAdmin(AuditedChangesMixin, admin.ModelAdmin):
    list_display = ["address", "kind", "display_name", "owner", "domain", "hidden_from_directory"]
    list_filter = ["kind", "domain", "hidden_from_directory"]
    search_fields = ["address", "display_name", "owner__email"]
    autocomplete_fields = ["owner"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        # Address and type never change after creation (MSSanté rule).
        return ["address", "kind", "domain", "used_bytes"] if obj else ["used_bytes"]

    def save_formset(self, request, form, formset, change):
        """Granting or removing a member of a shared mailbox is audited, with the staff member
        as actor."""
        before = set(form.instance.memberships.values_list("user_id", flat=True))
        super().save_formset(request, form, formset, change)
        after = set(form.instance.memberships.values_list("user_id", flat=True))
        if before != after:
            record(
                event=Event.MAILBOX_MEMBERSHIP_CHANGED,
                actor=request.user,
                target=form.instance,
                meta=RequestMeta.from_request(request),
                extra={"added": sorted(after - before), "removed": sorted(before - after)},
            )
