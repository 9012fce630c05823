"""SMS gateways: one small interface, chosen by ``settings.SMS_BACKEND`` (a dotted path).

An SMS only ever says that a secure message is waiting ("connectez-vous"): no sender, subject,
patient or body. The operator plugs in its provider by writing a class with the same ``send``.
"""

import abc
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request

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


class BaseBackend(abc.ABC):
    """What an SMS gateway offers: send ``text`` (never health data) to ``phone`` (E.164)."""

    @abc.abstractmethod
    def send(self, *, phone: str, text: str) -> None: ...


class ConsoleBackend(BaseBackend):
    """Development: the SMS goes to the log (number redacted) instead of a phone."""

    def send(self, *, phone: str, text: str) -> None:
        logger.info("sms (console backend)", extra={"phone": redact_phone(phone), "text": text})


class LocmemBackend(BaseBackend):
    """Tests: SMS are kept in ``LocmemBackend.outbox`` as ``(phone, text)``."""

    outbox: list[tuple[str, str]] = []

    def send(self, *, phone: str, text: str) -> None:
        LocmemBackend.outbox.append((phone, text))


class HttpBackend(BaseBackend):
    """A provider's HTTP API, shaped like the common French ones: ``POST SMS_HTTP_URL`` with
    ``Authorization: Bearer SMS_HTTP_TOKEN`` and a JSON body (or a form, ``SMS_HTTP_FORMAT =
    "form"``) ``{"sender": SMS_HTTP_SENDER, "recipients": ["+336…"], "message": "…"}``; any
    2xx answer is success. Refusals and time-outs raise ``SmsError`` (the text and the number
    are never logged)."""

    def send(self, *, phone: str, text: str) -> None:
        url = settings.SMS_HTTP_URL
        if not url.startswith(("https://", "http://")):
            raise SmsError("SMS_HTTP_URL is not set (https://…).")
        fields = {"sender": settings.SMS_HTTP_SENDER, "recipients": [phone], "message": text}
        headers = {"Accept": "application/json", "User-Agent": "mssweb"}
        if settings.SMS_HTTP_TOKEN:
            headers["Authorization"] = f"Bearer {settings.SMS_HTTP_TOKEN}"
        if settings.SMS_HTTP_FORMAT == "form":
            body = urllib.parse.urlencode({**fields, "recipients": phone}).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = json.dumps(fields).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked above
        try:
            with urllib.request.urlopen(request, timeout=settings.SMS_HTTP_TIMEOUT) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            logger.warning("sms: gateway unreachable", extra={"problem": type(exc).__name__})
            raise SmsError("SMS gateway unreachable.") from exc
        if not 200 <= status < 300:
            logger.warning("sms: gateway refused", extra={"status": status})
            raise SmsError(f"SMS gateway answered HTTP {status}.")
        logger.info("sms sent", extra={"phone": redact_phone(phone), "status": status})


def sms_send(*, phone: str, text: str) -> None:
    backend = import_string(settings.SMS_BACKEND)()
    backend.send(phone=phone, text=text)
