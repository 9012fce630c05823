from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from apps.audit.testing import allow_audit_flush  # noqa: F401  (a fixture, used by name)


@pytest.fixture
def make_user(db):
    # Staff accounts: a professional also needs a domain and a national id, not needed here.
    def make(email: str = "claire.morel@example.org"):
        return get_user_model().objects.create_user(email=email, password=None, is_staff=True)

    return make


@pytest.fixture
def tamper(db):
    """Run SQL as an attacker with database rights would: on PostgreSQL, past the trigger
    (for the rest of the test's transaction only)."""

    def run(sql: str, params: list | None = None) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL mssweb.audit_maintenance = 'on'")
            cursor.execute(sql, params)

    return run


def verify(*args: str) -> str:
    """``manage.py audit_verify`` with these arguments: its output."""
    out = StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue().strip()


def verify_fails(*args: str) -> str:
    """``manage.py audit_verify`` that must exit 1: its message."""
    with pytest.raises(CommandError) as failure:
        verify(*args)
    assert failure.value.returncode == 1
    return str(failure.value)


def rows_delete(tamper, condition: str, params: list | None = None) -> None:
    """Delete sealed events and their links, chosen by a condition on the links (``seq >= %s``),
    as someone with the database would remove rows from the trail."""
    tamper(
        "DELETE FROM audit_auditevent WHERE id IN "  # noqa: S608 - the tests' own SQL
        f"(SELECT event_id FROM audit_auditlink WHERE {condition})",
        params,
    )
    tamper(f"DELETE FROM audit_auditlink WHERE {condition}", params)  # noqa: S608
