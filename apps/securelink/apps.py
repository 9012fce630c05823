from django.apps import AppConfig


class SecurelinkConfig(AppConfig):
    name = "apps.securelink"
    label = "securelink"
