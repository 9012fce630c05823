from django.urls import path

from apps.accounts import views

app_name = "accounts"

urlpatterns = [
    path("connexion/", views.login_view, name="login"),
    path("connexion/code/", views.verify_view, name="verify"),
    path("connexion/inscription-2fa/", views.enrol_view, name="enrol"),
    path("deconnexion/", views.logout_view, name="logout"),
    path("securite/", views.security_view, name="security"),
    path("securite/authentificateur/", views.reenrol_view, name="reenrol"),
    path("securite/codes-de-secours/", views.backup_codes_view, name="backup_codes"),
    path("securite/mot-de-passe/", views.password_change_view, name="password_change"),
    path("sessions/", views.sessions_view, name="sessions"),
    path(
        "sessions/fermer-les-autres/",
        views.sessions_revoke_others_view,
        name="sessions_revoke_others",
    ),
    path("sessions/<uuid:public_id>/fermer/", views.session_revoke_view, name="session_revoke"),
    path("mot-de-passe-oublie/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "mot-de-passe-oublie/envoye/",
        views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "mot-de-passe-oublie/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "mot-de-passe-oublie/termine/",
        views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]
