from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import services
from apps.accounts.models import Domain, User, UserSession, normalize_email
from apps.accounts.tasks import send_password_reset_email
from apps.audit.admin import AuditedChangesMixin
from apps.audit.events import Event
from apps.audit.services import record
from apps.core.request_meta import RequestMeta

# Staff never see a user's authenticator secret: that admin would show it.
if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


@admin.register(Domain)
class DomainAdmin(AuditedChangesMixin, admin.ModelAdmin):
    list_display = ["name", "description", "is_active", "created_at"]
    search_fields = ["name"]
    list_filter = ["is_active"]


class UserAddForm(forms.ModelForm):
    class Meta:
        model = User
        fields = [
            "email",
            "civility",
            "first_name",
            "last_name",
            "idnat",
            "profession_code",
            "specialty_code",
            "phone",
            "is_staff",
        ]

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])

    def clean(self):
        cleaned = super().clean()
        email = cleaned.get("email", "")
        # The account belongs to the operator domain of its address.
        self.instance.domain = Domain.objects.filter(
            name=email.rpartition("@")[2], is_active=True
        ).first()
        if self.instance.domain is None and email and not cleaned.get("is_staff"):
            self.add_error("email", _("Ce domaine n'est pas un domaine actif de l'opérateur."))
        return cleaned


class SecondFactorFilter(admin.SimpleListFilter):
    title = _("second facteur")
    parameter_name = "otp"

    def lookups(self, request, model_admin):
        return [("yes", _("configuré")), ("no", _("non configuré"))]

    def queryset(self, request, queryset):
        enrolled = TOTPDevice.objects.filter(confirmed=True).values("user_id")
        if self.value() == "yes":
            return queryset.filter(pk__in=enrolled)
        if self.value() == "no":
            return queryset.exclude(pk__in=enrolled)
        return queryset


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = [
        "email",
        "last_name",
        "first_name",
        "profession_code",
        "is_active",
        "is_staff",
        "last_login",
    ]
    list_filter = ["is_active", "is_staff", SecondFactorFilter, "profession_code", "domain"]
    search_fields = ["email", "last_name", "first_name", "idnat"]
    ordering = ["last_name", "first_name"]
    actions = ["suspend", "reactivate", "reset_second_factor"]
    readonly_fields = ["email", "domain", "last_login", "date_joined", "suspended_at", "is_active"]
    fieldsets = [
        (None, {"fields": ["email", "domain", "is_active", "suspended_at"]}),
        (
            _("Identité professionnelle"),
            {
                "fields": [
                    "civility",
                    "first_name",
                    "last_name",
                    "idnat",
                    "profession_code",
                    "specialty_code",
                    "phone",
                ]
            },
        ),
        (_("Droits"), {"fields": ["is_staff", "is_superuser", "groups"]}),
        (_("Dates"), {"fields": ["last_login", "date_joined"]}),
    ]

    def has_delete_permission(self, request, obj=None) -> bool:
        # Accounts are suspended, never deleted: their traces must stay attributable.
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = UserAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": UserAddForm.Meta.fields})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        meta = RequestMeta.from_request(request)
        if not change:
            # The new user chooses their password through the e-mailed link, then enrols
            # their authenticator at first login.
            created = services.account_create(
                **{name: form.cleaned_data[name] for name in UserAddForm.Meta.fields},
                password=None,
                actor=request.user,
                meta=meta,
            )
            obj.pk = created.pk
            transaction.on_commit(lambda: send_password_reset_email.delay(created.pk), robust=True)
            return
        super().save_model(request, obj, form, change)
        if form.changed_data:
            record(
                event=Event.ACCOUNT_UPDATED,
                actor=request.user,
                target=obj,
                meta=meta,
                extra={"fields": sorted(form.changed_data)},
            )

    @admin.action(description=_("Suspendre les comptes sélectionnés"))
    def suspend(self, request, queryset):
        self._set_active(request, queryset, active=False)

    @admin.action(description=_("Réactiver les comptes sélectionnés"))
    def reactivate(self, request, queryset):
        self._set_active(request, queryset, active=True)

    def _set_active(self, request, queryset, *, active: bool):
        meta = RequestMeta.from_request(request)
        count = 0
        for user in queryset.exclude(pk=request.user.pk):
            services.account_set_active(user=user, active=active, actor=request.user, meta=meta)
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d compte mis à jour.", "%(count)d comptes mis à jour.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Réinitialiser le second facteur (téléphone perdu)"))
    def reset_second_factor(self, request, queryset):
        meta = RequestMeta.from_request(request)
        count = 0
        for user in queryset:
            services.second_factor_reset_by_staff(user=user, actor=request.user, meta=meta)
            count += 1
        self.message_user(
            request,
            ngettext(
                "Second facteur réinitialisé pour %(count)d compte ; l'utilisateur est prévenu "
                "par e-mail.",
                "Second facteur réinitialisé pour %(count)d comptes ; les utilisateurs sont "
                "prévenus par e-mail.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )


@admin.register(UserSession)
class UserSessionAdmin(admin.ModelAdmin):
    list_display = ["user", "ip", "created_at", "last_seen_at", "ended_at", "end_reason"]
    list_filter = ["end_reason"]
    search_fields = ["user__email", "ip"]
    readonly_fields = [f.name for f in UserSession._meta.fields if f.name != "session_key"]
    exclude = ["session_key"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
