from django.urls import path

from apps.external import views

app_name = "external"

urlpatterns = [
    path("routes/", views.routes_view, name="routes"),
    path("envoye/", views.sent_view, name="sent"),
    path("cles/", views.keys_view, name="keys"),
    path("cles/<int:key_id>/retirer/", views.key_remove_view, name="key_remove"),
]
