import os
import time

import pytest
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import services
from apps.accounts.models import Domain
from apps.audit.testing import allow_audit_flush  # noqa: F401 - fixture used by transactional tests
from apps.mailbox.models import Mailbox
from tests.pki import pki  # noqa: F401 - the federation tests' PKI

PASSWORD = "correct horse battery staple"
DOMAIN = "test.mssante.fr"


def totp_code(device: TOTPDevice, *, at: float | None = None) -> str:
    """The code the user's phone would show now for ``device`` — or, if that time step was
    already used, the next step's (still accepted thanks to the one-step tolerance)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = at if at is not None else time.time()
    if totp.t() <= device.last_t:
        totp.time += device.step * (device.last_t + 1 - totp.t())
    return f"{totp.token():0{device.digits}d}"


@pytest.fixture(autouse=True)
def _french_first():
    """Each test starts in the site's language: a request in English earlier in the same thread
    (LocaleMiddleware) must not change what a service says in the next test."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate limits live in the cache; ids are reused across rolled-back tests."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def alice(db):
    return make_user(first_name="Alice", last_name="Martin")


@pytest.fixture
def bob(db):
    return make_user(first_name="Bob", last_name="Durand")


def client_for(user, **headers) -> Client:
    """A test client signed in as ``user`` (password and second factor)."""
    client = Client(**headers)
    login(client, user)
    return client


def mailbox_of(user) -> Mailbox:
    """The personal mailbox of ``user``."""
    return Mailbox.objects.get(owner=user)


@pytest.fixture
def domain(db):
    return Domain.objects.get_or_create(name=DOMAIN)[0]


_counter = iter(range(10_000))


def make_user(*, enrolled: bool = True, staff: bool = False, password: str = PASSWORD, **extra):
    from apps.accounts.management.commands.seed_demo import rpps

    Domain.objects.get_or_create(name=DOMAIN)
    n = next(_counter)
    fields = {
        "email": f"user{n}@{DOMAIN}",
        "first_name": "Claire",
        "last_name": f"Morel{n}",
        "idnat": rpps(f"{9970050000 + n}"),
        "profession_code": "40",
        "specialty_code": "SCD03",
        "civility": "DR",
    }
    fields.update(extra)
    return services.account_create(
        password=password,
        totp_secret=services.new_totp_secret() if enrolled else None,
        is_staff=staff,
        is_superuser=staff,
        **fields,
    )


@pytest.fixture
def user(db):
    return make_user()


@pytest.fixture
def staff_user(db):
    return make_user(staff=True)


def login(client, user, *, password: str = PASSWORD, code: str | None = None):
    """Log ``client`` in through the real two-step form; returns the last response."""
    response = client.post("/compte/connexion/", {"email": user.email, "password": password})
    assert response.status_code == 302, response.content[:500]
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    return client.post("/compte/connexion/code/", {"code": code or totp_code(device)})


@pytest.fixture
def logged_in_client(client, user):
    response = login(client, user)
    assert response.status_code == 302
    assert response["Location"] == "/"
    client.user = user
    return client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With MSSWEB_NO_SKIP=1 (CI's PostgreSQL and browser steps) a skipped test is a failure:
    a part that should be there (PostgreSQL, Redis, Chromium) is missing."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and os.environ.get("MSSWEB_NO_SKIP") == "1"
        and not hasattr(report, "wasxfail")
    ):
        report.outcome = "failed"
        report.longrepr = f"skipped, but MSSWEB_NO_SKIP=1 forbids skips: {report.longrepr}"
