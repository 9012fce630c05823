from django.urls import path

from apps.notifications import views

app_name = "notifications"

urlpatterns = [
    path("", views.settings_view, name="settings"),
    path("appareils/", views.subscription_add_view, name="subscription_add"),
    path(
        "appareils/<int:subscription_id>/retirer/",
        views.subscription_remove_view,
        name="subscription_remove",
    ),
    path("test/", views.test_push_view, name="test"),
]
