"""The staff's view of the audit trail: a search (by account, mailbox, Message-ID, event, IP and
dates), read-only, with CSV and JSON exports streamed; every search and export is audited with
the staff member as actor. The admin site itself requires staff with a verified second factor
(``apps.core.admin_site``).

``AuditedChangesMixin`` records the settings staff change through other admins
(``SETTINGS_CHANGED_BY_STAFF``).
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit import exports, reporting
from apps.audit.events import Event
from apps.audit.forms import StaffSearchForm
from apps.audit.models import AuditEvent
from apps.audit.selectors import device_summary, event_label, staff_search
from apps.audit.services import record, seal
from apps.core.request_meta import RequestMeta

STAFF_PAGE_SIZE = 100


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: audit rows are never added, changed or deleted by hand. The list is the
    staff search below; one row still opens in the standard read-only form."""

    list_display = ["seq", "created_at", "event", "actor_label", "ip", "target_type", "target_id"]
    readonly_fields = [
        "seq", "created_at", "event", "actor_label", "actor_ref", "ip", "user_agent",
        "target_type", "target_id", "detail", "prev_hash", "row_hash",
    ]  # fmt: skip
    fields = readonly_fields
    ordering = ["-id"]
    show_full_result_count = False  # no COUNT(*) over the whole trail on every search

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("link")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                {"export_format": "csv"},
                name="{}_{}_export_csv".format(*info),
            ),
            path(
                "export.json",
                self.admin_site.admin_view(self.export_view),
                {"export_format": "json"},
                name="{}_{}_export_json".format(*info),
            ),
            *super().get_urls(),
        ]

    def _form(self, request: HttpRequest) -> StaffSearchForm:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return StaffSearchForm(request.GET or None)

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        form = self._form(request)
        rows, next_cursor, searched = [], None, False
        if form.is_bound and form.is_valid():
            criteria = form.criteria()
            qs = staff_search(**form.search_kwargs())
            before = form.cleaned_data.get("avant")
            if before:
                qs = qs.filter(id__lt=before)
            rows = list(qs[: STAFF_PAGE_SIZE + 1])
            if len(rows) > STAFF_PAGE_SIZE:
                rows = rows[:STAFF_PAGE_SIZE]
                next_cursor = rows[-1].pk
            for row in rows:
                row.label = event_label(row.event)
                row.device = device_summary(row.user_agent) if row.user_agent else ""
            searched = True
            reporting.staff_searched(
                user=request.user,
                criteria=criteria | ({"page_before": before} if before else {}),
                meta=RequestMeta.from_request(request),
            )
        query = request.GET.copy()
        query.pop("avant", None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Journal d'audit"),
            "form": form,
            "rows": rows,
            "searched": searched,
            "next_cursor": next_cursor,
            "query": query.urlencode(),
            "export_csv": reverse("admin:audit_auditevent_export_csv"),
            "export_json": reverse("admin:audit_auditevent_export_json"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "audit/admin_search.html", context)

    def export_view(self, request: HttpRequest, export_format: str) -> HttpResponse:
        if export_format not in ("csv", "json"):
            raise PermissionDenied
        form = self._form(request)
        if not form.is_valid():
            return self.changelist_view(request)
        criteria = form.criteria()
        reporting.staff_exported(
            user=request.user,
            criteria=criteria,
            export_format=export_format,
            meta=RequestMeta.from_request(request),
        )
        seal()  # exported rows carry their place in the chain and their hashes
        qs = staff_search(**form.search_kwargs())
        rows = qs.iterator(chunk_size=2000)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        if export_format == "csv":
            response = StreamingHttpResponse(
                exports.rows_csv(rows), content_type="text/csv; charset=utf-8"
            )
        else:
            response = StreamingHttpResponse(
                exports.rows_json(rows, criteria=criteria, by=request.user.email),
                content_type="application/json; charset=utf-8",
            )
        response["Content-Disposition"] = (
            f'attachment; filename="journal-audit-{stamp}.{export_format}"'
        )
        return response


class AuditedChangesMixin:
    """For the admins of operator settings (domains, mailboxes…): every addition, change and
    deletion is recorded as ``SETTINGS_CHANGED_BY_STAFF`` with the staff member as actor, the
    model and the names of the fields changed (never their values: they may be personal)."""

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if change and not form.changed_data:
                return
            record(
                event=Event.SETTINGS_CHANGED_BY_STAFF,
                actor=request.user,
                target=obj,
                meta=RequestMeta.from_request(request),
                extra={
                    "action": "changed" if change else "added",
                    "fields": sorted(form.changed_data),
                },
            )

    def delete_model(self, request, obj):
        with transaction.atomic():
            target = (obj._meta.label_lower, obj.pk)
            super().delete_model(request, obj)
            record(
                event=Event.SETTINGS_CHANGED_BY_STAFF,
                actor=request.user,
                target=target,
                meta=RequestMeta.from_request(request),
                extra={"action": "deleted", "label": str(obj)[:200]},
            )

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)
