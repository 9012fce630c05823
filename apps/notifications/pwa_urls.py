"""Root-level URLs of the installable web app (the service worker's scope is its own path)."""

from django.urls import path

from apps.notifications import views

app_name = "pwa"

urlpatterns = [
    path("manifest.webmanifest", views.manifest_view, name="manifest"),
    path("sw.js", views.service_worker_view, name="service_worker"),
    path("hors-ligne/", views.offline_view, name="offline"),
]
