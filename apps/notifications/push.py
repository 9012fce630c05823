"""Sending one Web Push message (RFC 8030 + VAPID RFC 8292, payload encrypted per RFC 8291).

The push service (Google, Mozilla, Apple, Microsoft) only relays ciphertext; still, payloads
carry no health data: see ``services.push_payload``.
"""

import json
from urllib.parse import urlsplit

import requests
from django.conf import settings
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from apps.core.exceptions import ApplicationError
from apps.notifications.conf import vapid_keys

TTL_SECONDS = 24 * 3600  # a phone that is off for a day still hears of its messages


class PushError(ApplicationError):
    pass


class PushGone(PushError):
    """The push service says the subscription no longer exists (404/410): forget it."""


class PushFailed(PushError):
    """Anything else (5xx, 429, network): worth retrying later."""


def endpoint_allowed(endpoint: str) -> bool:
    """Only known push services, over HTTPS: the endpoint comes from the browser, and the worker
    must not be made to post to an address inside the operator's network."""
    parts = urlsplit(endpoint)
    if parts.scheme != "https" and (settings.WEBPUSH_REQUIRE_HTTPS or parts.scheme != "http"):
        return False
    host = (parts.hostname or "").lower()
    for allowed in settings.WEBPUSH_ALLOWED_HOSTS:
        allowed = allowed.lower()
        if host == allowed.lstrip(".") or (allowed.startswith(".") and host.endswith(allowed)):
            return True
    return False


def push_send_raw(*, endpoint: str, p256dh: str, auth: str, payload: dict, urgent: bool) -> None:
    if not endpoint_allowed(endpoint):
        raise PushGone("endpoint not allowed")
    keys = vapid_keys()
    try:
        webpush(
            subscription_info={"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
            data=json.dumps(payload, ensure_ascii=False),
            vapid_private_key=Vapid.from_string(private_key=keys.private_key),
            vapid_claims={"sub": keys.subject},
            ttl=TTL_SECONDS,
            timeout=settings.WEBPUSH_TIMEOUT,
            headers={"Urgency": "high" if urgent else "normal"},
        )
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (404, 410):
            raise PushGone(f"push service answered {status}") from None
        raise PushFailed(f"push service answered {status}") from None
    except requests.RequestException as exc:
        raise PushFailed(type(exc).__name__) from None
