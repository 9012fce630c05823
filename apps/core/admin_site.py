from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_not_required
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext_lazy as _


class SecureAdminSite(admin.AdminSite):
    """The staff panel: staff accounts only, and only once their second factor is verified.
    Its login is the portal's own (password then code); it has no login form of its own."""

    site_header = _("mssweb — administration de l'opérateur")
    site_title = _("administration mssweb")
    index_title = _("Comptes, boîtes et traces")

    def has_permission(self, request) -> bool:
        user = request.user
        return bool(
            user.is_active and user.is_staff and getattr(user, "is_verified", lambda: False)()
        )

    @method_decorator(login_not_required)
    def login(self, request, extra_context=None):
        next_url = request.GET.get(REDIRECT_FIELD_NAME, "")
        if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
            next_url = reverse("admin:index")
        if request.user.is_authenticated:
            # Staff go on; anyone else is not for this panel.
            return redirect(next_url if self.has_permission(request) else "core:home")
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")
