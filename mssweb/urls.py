from django.contrib import admin
from django.urls import include, path

from apps.core import views as core_views

urlpatterns = [
    path("", include("apps.core.urls")),
    path("", include("apps.notifications.pwa_urls")),
    path("", include("apps.audit.urls")),
    path("", include("apps.securelink.urls")),
    path("compte/", include("apps.accounts.urls")),
    path("compte/notifications/", include("apps.notifications.urls")),
    path("annuaire/", include("apps.directory.urls")),
    path("messagerie/", include("apps.mailbox.urls")),
    path("acheminement/", include("apps.delivery.urls")),
    path("externe/", include("apps.external.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("healthz", core_views.healthz, name="healthz"),
]
