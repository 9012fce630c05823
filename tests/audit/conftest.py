import pytest
from django.contrib.auth import get_user_model
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
