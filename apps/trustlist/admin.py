from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from apps.trustlist.models import TrustedEntry, TrustList


class ReadOnlyAdmin(admin.ModelAdmin):
    """The list changes only through an import (command or daily task)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TrustList)
class TrustListAdmin(ReadOnlyAdmin):
    """Import history: what was imported when, from where, with which counts or why refused."""

    list_display = [
        "imported_at", "status", "generated_at", "entry_count", "domain_count", "dn_count",
        "rejected_count", "checked_at", "source",
    ]  # fmt: skip
    list_filter = ["status"]
    search_fields = ["sha256", "source"]
    readonly_fields = [f.name for f in TrustList._meta.fields]


class SeveralCertificatesFilter(admin.SimpleListFilter):
    title = _("certificats par domaine")
    parameter_name = "several"

    def lookups(self, request, model_admin):
        return [("yes", _("plusieurs DN")), ("no", _("un seul DN"))]

    def queryset(self, request, queryset):
        several = (
            TrustedEntry.objects.values("domain")
            .annotate(n=Count("dn_canonical", distinct=True))
            .filter(n__gt=1)
            .values("domain")
        )
        if self.value() == "yes":
            return queryset.filter(domain__in=several)
        if self.value() == "no":
            return queryset.exclude(domain__in=several)
        return queryset


@admin.register(TrustedEntry)
class TrustedEntryAdmin(ReadOnlyAdmin):
    """The list in service: search by domain or certificate DN."""

    list_display = ["domain", "dn", "description", "date_maj"]
    list_filter = [SeveralCertificatesFilter, "date_maj"]
    search_fields = ["domain", "dn", "dn_canonical", "description"]
    readonly_fields = [f.name for f in TrustedEntry._meta.fields]
    list_per_page = 100

    def get_queryset(self, request):
        return super().get_queryset(request).filter(trust_list__status=TrustList.Status.ACTIVE)
