"""Print the current TOTP code of a *demo* account (local use only, DJANGO_DEBUG=true)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Print the current authenticator code of a demo account (debug mode only)."

    def add_arguments(self, parser):
        parser.add_argument("email")

    def handle(self, *args, email, **options):
        if not settings.DEBUG:
            raise CommandError("demo_code only works with DJANGO_DEBUG=true.")
        if not email.lower().endswith("@" + settings.MSSWEB_DEMO_DOMAIN):
            raise CommandError(f"Only accounts of the demo domain {settings.MSSWEB_DEMO_DOMAIN}.")
        device = TOTPDevice.objects.filter(user__email=email.lower(), confirmed=True).first()
        if device is None:
            raise CommandError("No authenticator for that account.")
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        self.stdout.write(f"{totp.token():06d}")
