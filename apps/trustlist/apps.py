from django.apps import AppConfig


class TrustlistConfig(AppConfig):
    name = "apps.trustlist"
    label = "trustlist"
