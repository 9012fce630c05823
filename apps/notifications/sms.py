"""SMS gateways: one small interface, chosen by ``settings.SMS_BACKEND`` (a dotted path).

An SMS only ever says that a secure message is waiting ("connectez-vous"): no sender, subject,
patient or body. The operator plugs in its provider by writing a class with the same ``send``.
"""

import logging
import re

from django.conf import settings
from django.utils.module_loading import import_string

from apps.core.exceptions import ApplicationError

logger = logging.getLogger(__name__)

# French mobile numbers, stored in E.164: +336… / +337… (and the overseas departments' +26x…).
PHONE_RE = re.compile(r"\+(33[67]\d{8}|26[29]\d{9}|59[046]\d{9}|687\d{6}|689\d{8})")


class SmsError(ApplicationError):
    """The gateway could not take the SMS (worth retrying)."""


def normalise_phone(text: str) -> str | None:
    """``"06 12 34 56 78"`` / ``"+33 6 12 34 56 78"`` → ``"+33612345678"``; None if not a mobile."""
    digits = re.sub(r"[\s.\-()]", "", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif re.fullmatch(r"0[67]\d{8}", digits):
        digits = "+33" + digits[1:]
    return digits if PHONE_RE.fullmatch(digits) else None


def redact_phone(phone: str) -> str:
    return phone[:4] + "…" + phone[-2:] if len(phone) > 6 else "…"


class BaseBackend:
    def send(self, *, phone: str, text: str) -> None:
        raise NotImplementedError


class ConsoleBackend(BaseBackend):
    """Development: the SMS goes to the log (number redacted) instead of a phone."""

    def send(self, *, phone: str, text: str) -> None:
        logger.info("sms (console backend)", extra={"phone": redact_phone(phone), "text": text})


class LocmemBackend(BaseBackend):
    """Tests: SMS are kept in ``LocmemBackend.outbox`` as ``(phone, text)``."""

    outbox: list[tuple[str, str]] = []

    def send(self, *, phone: str, text: str) -> None:
        LocmemBackend.outbox.append((phone, text))


def sms_send(*, phone: str, text: str) -> None:
    backend = import_string(settings.SMS_BACKEND)()
    backend.send(phone=phone, text=text)
