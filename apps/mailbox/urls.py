from django.urls import path

from apps.mailbox import preview_views, search_views, views

app_name = "mailbox"

urlpatterns = [
    path("", views.index_view, name="index"),
    path("ecrire/", views.compose_view, name="compose"),
    path("brouillon/", views.draft_autosave_view, name="draft_autosave"),
    path("<int:mailbox_id>/actions/", views.messages_action_view, name="actions"),
    path("<int:mailbox_id>/dossiers/", views.folders_manage_view, name="folders"),
    path("<int:mailbox_id>/recherche/", search_views.search_view, name="search"),
    path("<int:mailbox_id>/<str:kind>/", views.folder_view, name="folder"),
    path("message/<int:message_id>/", views.message_view, name="message"),
    path("message/<int:message_id>/html/", views.message_html_view, name="message_html"),
    path("piece-jointe/<int:attachment_id>/", views.attachment_view, name="attachment"),
    path(
        "piece-jointe/<int:attachment_id>/apercu/",
        preview_views.attachment_preview_view,
        name="attachment_preview",
    ),
    path(
        "piece-jointe/<int:attachment_id>/apercu/page/<int:number>.png",
        preview_views.attachment_preview_page_view,
        name="attachment_preview_page",
    ),
    path(
        "piece-jointe/<int:attachment_id>/apercu/image/",
        preview_views.attachment_preview_image_view,
        name="attachment_preview_image",
    ),
]
