"""Brute-force throttling of password and code attempts.

Failed attempts are rows of ``AuthFailure`` (shared by every web worker, on SQLite and
PostgreSQL alike), counted in a sliding window (``THROTTLE_WINDOW``, 15 min):

* per (account, address) pair: ``THROTTLE_MAX_PER_PAIR`` failures lock that pair. An attacker
  guessing from one place is stopped quickly; the professional elsewhere is not affected.
* per account, from anywhere: ``THROTTLE_MAX_PER_ACCOUNT`` failures lock the account **except for
  browsers holding a device cookie** of that account (set after a full login, see
  ``device_cookie_*``). A distributed attack is stopped, yet the professional's usual browser
  still gets in: the attacker cannot lock them out.
* per address, whatever the account: ``THROTTLE_MAX_PER_ADDRESS`` failures lock the address
  (password spraying).

A lock ends by itself when the oldest counted failure leaves the window, so no lock lasts
longer than the window. The account is keyed by an HMAC of the submitted address whether or not
it exists, so locks and messages are the same for unknown addresses (no enumeration).
"""

import hmac
import math
from datetime import datetime
from hashlib import sha256

from django.conf import settings
from django.core import signing
from django.db.models import Min, QuerySet
from django.utils import timezone

from apps.accounts.models import AuthFailure, normalize_email
from apps.core.exceptions import ApplicationError

DEVICE_COOKIE_NAME = "mssweb_device"
DEVICE_COOKIE_SALT = "mssweb.accounts.device-cookie"
DEVICE_COOKIE_MAX_AGE = 365 * 24 * 3600


class Throttled(ApplicationError):
    def __init__(self, retry_after: int) -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"locked for {minutes} min", extra={"retry_after": retry_after})
        self.retry_after = retry_after
        self.minutes = minutes


def account_key(email: str) -> str:
    return hmac.new(
        settings.SECRET_KEY.encode(), normalize_email(email).encode(), sha256
    ).hexdigest()


def _retry_after(failures: QuerySet, limit: int, now: datetime) -> int | None:
    """Seconds until ``failures`` (already restricted to the window) fall below ``limit``."""
    if limit <= 0 or failures.count() < limit:
        return None
    # The lock lifts when enough of the oldest failures leave the window; using the oldest one
    # keeps it simple and never longer than the window.
    oldest = failures.aggregate(oldest=Min("created_at"))["oldest"]
    return max(1, int((oldest + settings.THROTTLE_WINDOW - now).total_seconds()))


def throttle_check(*, kind: str, email: str, ip: str | None, trusted_device: bool = False) -> None:
    """Raise ``Throttled`` if this attempt must be refused before even checking it."""
    now = timezone.now()
    recent = AuthFailure.objects.filter(kind=kind, created_at__gte=now - settings.THROTTLE_WINDOW)
    key = account_key(email)
    checks = [(recent.filter(account_key=key, ip=ip), settings.THROTTLE_MAX_PER_PAIR)]
    if not trusted_device:
        checks.append((recent.filter(account_key=key), settings.THROTTLE_MAX_PER_ACCOUNT))
    if ip:
        checks.append((recent.filter(ip=ip), settings.THROTTLE_MAX_PER_ADDRESS))
    waits = [w for qs, limit in checks if (w := _retry_after(qs, limit, now)) is not None]
    if waits:
        raise Throttled(max(waits))


def throttle_fail(*, kind: str, email: str, ip: str | None) -> None:
    AuthFailure.objects.create(kind=kind, account_key=account_key(email), ip=ip)


def throttle_clear(*, kind: str, email: str, ip: str | None) -> None:
    """A success forgets the failures of that pair (not the account's or the address's)."""
    AuthFailure.objects.filter(kind=kind, account_key=account_key(email), ip=ip).delete()


def throttle_purge(*, older_than: datetime) -> int:
    deleted, _ = AuthFailure.objects.filter(created_at__lt=older_than).delete()
    return deleted


def device_cookie_value(*, user_id: int) -> str:
    return signing.dumps({"u": user_id}, salt=DEVICE_COOKIE_SALT, compress=True)


def device_cookie_trusted(*, value: str | None, user_id: int | None) -> bool:
    """Whether the browser's device cookie was set by a full login of ``user_id``."""
    if not value or user_id is None:
        return False
    try:
        data = signing.loads(value, salt=DEVICE_COOKIE_SALT, max_age=DEVICE_COOKIE_MAX_AGE)
    except signing.BadSignature:
        return False
    return data.get("u") == user_id
