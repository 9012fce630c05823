from django.urls import path

from apps.directory import views

app_name = "directory"

urlpatterns = [
    path("", views.search_view, name="search"),
    path("pro/<str:idnat>/", views.professional_view, name="professional"),
    path("autocompletion/", views.autocomplete_view, name="autocomplete"),
    path("contacts/", views.contacts_view, name="contacts"),
    path("contacts/nouveau/", views.contact_edit_view, name="contact_new"),
    path("contacts/depuis-annuaire/", views.contact_add_from_directory_view, name="contact_add"),
    path("contacts/<int:contact_id>/", views.contact_edit_view, name="contact_edit"),
    path("contacts/<int:contact_id>/supprimer/", views.contact_delete_view, name="contact_delete"),
]
