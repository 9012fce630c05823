from django.urls import path

from apps.securelink import views

app_name = "securelink"

urlpatterns = [
    # Public: the recipient outside the trust space (no account; the token and the code).
    path("lien/<str:token>/", views.open_view, name="open"),
    path("lien/<str:token>/contenu/", views.frame_view, name="frame"),
    path("lien/<str:token>/pj/<int:attachment_id>/", views.download_view, name="download"),
    path("lien/<str:token>/repondre/", views.reply_view, name="reply"),
    path("lien/<str:token>/quitter/", views.leave_view, name="leave"),
    # The sender.
    path("messagerie/lien/<int:link_id>/revoquer/", views.revoke_view, name="revoke"),
    path("messagerie/lien/<int:link_id>/nouveau-code/", views.new_code_view, name="new_code"),
]
