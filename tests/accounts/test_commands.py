import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import Domain, User
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.mailbox.models import Mailbox
from tests.conftest import DOMAIN

pytestmark = pytest.mark.django_db


def run(*args, stdin: str = "") -> str:
    out = io.StringIO()
    import sys

    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command(*args, stdout=out)
    finally:
        sys.stdin = old
    return out.getvalue()


def test_create_account_with_password_from_stdin_and_totp_secret(domain):
    out = run(
        "create_account",
        "--email",
        f"anne.bernard@{DOMAIN}",
        "--first-name",
        "Anne",
        "--last-name",
        "Bernard",
        "--idnat",
        "810001045367",
        "--profession",
        "40",
        "--specialty",
        "scd01",
        "--password-stdin",
        "--totp-secret",
        "JBSWY3DPEHPK3PXPJBSWY3DP",
        stdin="une phrase de passe solide\n",
    )
    assert "Created account" in out
    user = User.objects.get(email=f"anne.bernard@{DOMAIN}")
    assert user.check_password("une phrase de passe solide")
    assert user.specialty_code == "SCD01"
    assert TOTPDevice.objects.get(user=user).confirmed
    assert Mailbox.objects.get(owner=user).kind == "PER"
    assert AuditEvent.objects.filter(event=Event.ACCOUNT_CREATED, target_id=str(user.pk)).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--idnat", "810001045368"], "clé de contrôle"),
        (["--idnat", "81000104536"], "11 chiffres"),
        (["--idnat", "1234567890"], "commence par 8"),
    ],
)
def test_create_account_refuses_a_bad_idnat(domain, args, message):
    with pytest.raises(CommandError, match=message):
        run(
            "create_account",
            "--email",
            f"x@{DOMAIN}",
            "--first-name",
            "X",
            "--last-name",
            "Y",
            "--password-stdin",
            *args,
            stdin="une phrase de passe solide\n",
        )
    assert not User.objects.exists()


def test_create_account_refuses_a_weak_password(domain):
    with pytest.raises(CommandError, match="trop court"):
        run(
            "create_account",
            "--email",
            f"x@{DOMAIN}",
            "--first-name",
            "X",
            "--last-name",
            "Y",
            "--idnat",
            "0123456789",
            "--password-stdin",
            stdin="short\n",
        )


def test_create_account_refuses_a_foreign_domain(db):
    with pytest.raises(CommandError, match="domaine"):
        run(
            "create_account",
            "--email",
            "x@elsewhere.fr",
            "--first-name",
            "X",
            "--last-name",
            "Y",
            "--idnat",
            "0123456789",
            "--password-stdin",
            stdin="une phrase solide 42\n",
        )


def test_create_staff_account_needs_no_domain(db):
    run(
        "create_account",
        "--email",
        "ops@operator.example",
        "--first-name",
        "O",
        "--last-name",
        "P",
        "--staff",
        "--password-stdin",
        stdin="une phrase solide 42\n",
    )
    assert User.objects.get().is_staff


def test_seed_demo_once_then_prints_the_same_logins(settings, tmp_path):
    from apps.directory.selectors import SearchFilters, directory_search

    settings.VAR_DIR = tmp_path
    settings.MSSWEB_DEMO_DIRECTORY_PEOPLE = 60
    first = run("seed_demo")
    # The demo directory has the synthetic people and the demo professionals.
    page = directory_search(filters=SearchFilters(query="morel claire"))
    assert [m["address"] for m in page.people[0].mailboxes] == [
        f"claire.morel@{settings.MSSWEB_DEMO_DOMAIN}"
    ]
    assert directory_search(filters=SearchFilters(department="69")).people
    assert Domain.objects.filter(name=settings.MSSWEB_DEMO_DOMAIN).exists()
    assert User.objects.filter(is_staff=True).count() == 1
    assert User.objects.count() == 4
    assert "otpauth://totp/" in first
    credentials = json.loads((tmp_path / "demo-credentials.json").read_text())
    for entry in credentials:
        user = User.objects.get(email=entry["email"])
        assert user.check_password(entry["password"])
        assert entry["password"] in first
    second = run("seed_demo")
    assert User.objects.count() == 4
    assert first.endswith(second)
    org = Mailbox.objects.get(kind="ORG")
    assert org.members.count() == 2
