"""The project's URLs plus the search page, until apps/mailbox/urls.py routes it (it must come
before ``<int:mailbox_id>/<str:kind>/``, which would take "recherche" for a folder)."""

from django.urls import path

from apps.mailbox import search_views
from mssweb.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("messagerie/<int:mailbox_id>/recherche/", search_views.search_view),
    *project_urlpatterns,
]
