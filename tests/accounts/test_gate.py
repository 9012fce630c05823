"""Every page but the few that finish a login is closed to a session that has only given its
password (or nothing)."""

import uuid

import pytest
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

# The only views reachable before both factors: finishing or abandoning a login, password reset,
# the language switch, and the load balancers' health check.
OPEN_VIEWS = {
    "accounts:login",
    "accounts:verify",
    "accounts:enrol",
    "accounts:logout",
    "accounts:password_reset",
    "accounts:password_reset_done",
    "accounts:password_reset_confirm",
    "accounts:password_reset_complete",
    "set_language",
    "healthz",
    "admin:login",  # only redirects to accounts:login
    # The installable web app: manifest, service worker and offline page hold nothing personal.
    "pwa:manifest",
    "pwa:service_worker",
    "pwa:offline",
    # Secure links: the recipient outside the trust space has no account; the pages need the
    # link's secret token, then its code (apps/securelink).
    "securelink:open",
    "securelink:frame",
    "securelink:download",
    "securelink:reply",
    "securelink:leave",
}
# The admin sends to its login view, which only redirects to the portal's (tested below).
LOGIN_PAGES = ("/compte/connexion/?", "/admin/login/?")
SAMPLE_KWARGS = {
    "public_id": uuid.uuid4(),
    "object_id": "1",
    "app_label": "accounts",
    "content_type_id": "1",
    "uidb64": "MQ",
    "token": "x-y",
    "url": "x",
    "idnat": "810001045367",
    "contact_id": 1,
    "mailbox_id": 1,
    "kind": "inbox",
    "message_id": 1,
    "attachment_id": 1,
    "subscription_id": 1,
    "number": 1,
    "link_id": 1,
    "key_id": 1,
}


def _named_urls(resolver=None, namespace=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _named_urls(entry, ns)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{namespace}{entry.name}", entry


def _paths():
    for name, pattern in _named_urls():
        kwargs = (
            {k: SAMPLE_KWARGS[k] for k in pattern.pattern.converters}
            if hasattr(pattern.pattern, "converters")
            else {}
        )
        try:
            path = reverse(name, kwargs=kwargs or None)
        except NoReverseMatch:  # admin patterns with regex groups
            continue
        yield name, path


ALL_PATHS = sorted(set(_paths()))


def test_the_url_list_covers_the_site():
    names = {name for name, _ in ALL_PATHS}
    assert {"core:home", "accounts:security", "accounts:sessions", "admin:index"} <= names
    assert len(ALL_PATHS) > 30


@pytest.mark.parametrize(("name", "path"), ALL_PATHS)
@pytest.mark.parametrize("state", ["anonymous", "password_only"])
def test_closed_pages_redirect_to_login(client, user, name, path, state):
    if state == "password_only":
        client.post(reverse("accounts:login"), {"email": user.email, "password": PASSWORD})
    for method in ("get", "post"):
        response = getattr(client, method)(path)
        if name in OPEN_VIEWS:
            continue
        assert response.status_code == 302, (name, method, response.status_code)
        assert response["Location"].startswith(LOGIN_PAGES), (name, method)


def test_open_views_are_exactly_the_intended_ones(client, db):
    reachable = set()
    for name, path in ALL_PATHS:
        response = client.get(path)
        if response.status_code != 302 or not response["Location"].startswith(LOGIN_PAGES):
            reachable.add(name)
    assert reachable <= OPEN_VIEWS


def test_admin_login_is_the_portal_login(client, db):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/compte/connexion/?next=%2Fadmin%2F"
