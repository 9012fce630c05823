import pytest

from apps.notifications import services
from apps.notifications.sms import LocmemBackend
from tests.browser.conftest import browser_type_launch_args, new_page, page  # noqa: F401
from tests.browser.test_directory import directory  # noqa: F401 - fixture
from tests.notifications.pushservice import BrowserKeys, PushService


@pytest.fixture
def push_service(settings):
    """A push service on loopback, which the worker is allowed to reach (plain HTTP)."""
    settings.WEBPUSH_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBPUSH_REQUIRE_HTTPS = False
    settings.WEBPUSH_TIMEOUT = 5.0
    service = PushService().start()
    yield service
    service.stop()


@pytest.fixture
def subscribe(push_service):
    """``subscribe(user, "phone")`` registers a device of ``user`` (keys made like a browser's)
    whose endpoint is ``/push/phone`` on the test push service; returns (subscription, keys)."""

    def make(user, name: str, user_agent: str = "Mozilla/5.0 (Linux; Android 14) Chrome/130.0"):
        keys = BrowserKeys()
        subscription = services.subscription_save(
            user=user,
            endpoint=push_service.endpoint(name),
            p256dh=keys.p256dh,
            auth=keys.auth,
            user_agent=user_agent,
        )
        return subscription, keys

    return make


@pytest.fixture
def sms_outbox(settings):
    settings.SMS_BACKEND = "apps.notifications.sms.LocmemBackend"
    LocmemBackend.outbox = []
    return LocmemBackend.outbox
