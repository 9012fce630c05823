from django.urls import path

from apps.audit import views

app_name = "audit"

urlpatterns = [
    path("compte/activite/", views.activity_view, name="activity"),
    path("messagerie/message/<int:message_id>/tracabilite/", views.trace_view, name="trace"),
    path(
        "messagerie/message/<int:message_id>/tracabilite/export.json",
        views.trace_export_view,
        {"export_format": "json"},
        name="trace_export_json",
    ),
    path(
        "messagerie/message/<int:message_id>/tracabilite/export.pdf",
        views.trace_export_view,
        {"export_format": "pdf"},
        name="trace_export_pdf",
    ),
]
