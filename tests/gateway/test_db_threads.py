"""The gateway's database threads after the database restarted: a connection found broken on a
call's first statement is replaced and the call runs once more (no 451 for a peer that only met
a stale connection); a call that failed after the database answered one of its statements is
never run again."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import OperationalError, connection

from apps.gateway import selectors
from apps.gateway.server import _in_thread
from tests.gateway.conftest import LOCAL_DOMAIN, make_mailbox

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_audit_flush"),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="a server-side end of a connection needs PostgreSQL (pg_terminate_backend)",
    ),
]


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone()[0]


@pytest.fixture
def db_thread():
    executor = ThreadPoolExecutor(max_workers=1)  # one thread: one connection, kept

    def run(function, **kwargs):
        return executor.submit(_in_thread, function, kwargs).result()

    yield run
    executor.submit(lambda: connection.close()).result()  # the thread's own connection
    executor.shutdown()


def test_a_connection_ended_by_the_server_is_replaced_and_the_call_runs_once_more(db_thread):
    make_mailbox("secretariat")
    address = f"secretariat@{LOCAL_DOMAIN}"
    first_pid = db_thread(_backend_pid)
    _terminate(first_pid)  # what a restart of PostgreSQL does to every connection

    assert db_thread(selectors.recipient_state, address=address) == selectors.RecipientState.OK
    assert db_thread(_backend_pid) != first_pid


def test_a_call_that_failed_after_a_statement_is_not_run_again(db_thread):
    calls = []

    def cut_after_one_statement():
        calls.append(1)
        pid = _backend_pid()  # answered by the database
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

    with pytest.raises(OperationalError):
        db_thread(cut_after_one_statement)
    assert calls == [1]
    assert db_thread(_backend_pid)  # and the next call has a working connection
