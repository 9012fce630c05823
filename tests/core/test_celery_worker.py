"""A real Celery worker, on the configured broker (the filesystem transport by default, Redis
when REDIS_URL is set), runs a task queued by the application."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.core import mail

from mssweb.celery import app
from tests.conftest import make_user


@pytest.fixture
def real_worker(settings, transactional_db, allow_audit_flush):
    app.conf.task_always_eager = False
    try:
        with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=10):
            yield
    finally:
        app.conf.task_always_eager = True


def test_worker_sends_the_password_reset_mail(real_worker):
    from apps.accounts.tasks import send_password_reset_email

    user = make_user()
    mail.outbox.clear()
    send_password_reset_email.delay(user.pk)
    deadline = time.monotonic() + 20
    while not mail.outbox and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [user.email]
    assert "/compte/mot-de-passe-oublie/" in mail.outbox[0].body
