from django.urls import path

from apps.delivery import views

app_name = "delivery"

urlpatterns = [
    path("accuse-de-lecture/<int:message_id>/", views.receipt_answer_view, name="receipt_answer"),
    path("accuses-de-lecture/", views.receipt_settings_view, name="receipt_settings"),
]
