"""Test helpers for projects whose tests touch the audit table on PostgreSQL."""

import pytest


@pytest.fixture
def allow_audit_flush(transactional_db):
    """Let Django empty the audit table after a transactional test on PostgreSQL.

    ``transactional_db`` (and ``live_server``, which uses it) ends each test with ``flush``,
    a ``TRUNCATE`` that the audit trigger refuses. Once the test body is done, this fixture
    sets ``mssweb.audit_maintenance = 'on'`` for the database session, the trigger's escape;
    the flush then runs. The setting does not outlive the test: Django closes every connection
    after a transactional test. Tests using the ``db`` fixture roll back and need nothing.

    Request it statically, since it brings ``transactional_db`` with it: as a test argument,
    with ``pytest.mark.usefixtures("allow_audit_flush")``, or from a ``tests/conftest.py``
    collection hook that adds it to the items using ``transactional_db``, ``live_server`` or
    ``django_db(transaction=True)``. On SQLite it does nothing.
    """
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET mssweb.audit_maintenance = 'on'")


def sealed(*rows):
    """Seal the recorded events (``apps.audit.services.seal``) and give ``rows`` back reloaded,
    with their place in the chain: one row for one argument, else a list."""
    from apps.audit.models import AuditEvent
    from apps.audit.services import seal

    seal()
    by_id = AuditEvent.objects.select_related("link").in_bulk([row.pk for row in rows])
    fresh = [by_id[row.pk] for row in rows]
    return fresh[0] if len(fresh) == 1 else fresh


def chain_rows() -> list[dict]:
    """Every sealed event in chain order, as ``apps.audit.integrity.rows_stream`` gives them:
    ``id`` (the event's), ``seq``, ``prev_hash``, ``row_hash`` and the hashed fields."""
    from apps.audit.integrity import rows_stream

    return list(rows_stream(start_seq=1))
