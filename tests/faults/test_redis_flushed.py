"""Redis stopped (``SHUTDOWN NOSAVE``) and started again empty while a worker drains a queue of
1,000 messages: every queued task is gone, the one being run loses its broker. The database is
the queue: the sweeper re-enqueues every open row and the peer ends with each message once."""

import time

import pytest

from .conftest import PEER_DOMAIN, delivery_env, tally, wait_until

pytestmark = pytest.mark.slow

DOCTOR = f"jacques.bideault@{PEER_DOMAIN}"
COUNT = 1000
LATE = 3  # sent while Redis is down


def test_redis_lost_and_flushed_mid_queue_loses_no_message(make_site, own_redis, sink, pki):
    site = make_site(
        CELERY_BROKER_URL=own_redis.url, **delivery_env(pki, sink, DELIVERY_LEASE_SECONDS="5")
    )
    site.agent("sender-setup")
    msgids = site.agent("send", "--count", str(COUNT), "--to", DOCTOR)["message_ids"]
    assert len(set(msgids)) == COUNT
    assert own_redis.client().llen("celery") == COUNT  # one delivery task per message

    worker = site.worker()
    wait_until(lambda: len(sink.received) >= COUNT // 4, timeout=60, what="a quarter delivered")
    own_redis.stop_flushed()
    delivered_before = len(sink.received)
    # Users go on sending while the broker is down: their messages are committed (the outbox
    # is the queue) and the sending does not fail.
    late = site.agent("send", "--count", str(LATE), "--to", DOCTOR)["message_ids"]
    own_redis.start()
    assert own_redis.client().llen("celery") == 0  # flushed: the queued tasks are gone
    assert delivered_before < COUNT, "the queue was drained before Redis stopped"

    def sweep_until_closed() -> dict | None:
        nonlocal worker
        if not worker.alive:  # the worker gave up on its broker: start another
            worker = site.worker()
        site.manage("delivery_sweep")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = site.agent("outbox-state")
            if all(r["status"] in ("delivered", "failed") for r in state["rows"]):
                return state
            time.sleep(0.5)
        return None

    state = wait_until(sweep_until_closed, timeout=90, interval=0, what="the queue to drain")
    fault = f"Redis flushed after {delivered_before} of {COUNT} (+{LATE} sent while down)"
    result = tally(fault, state, sink.received)
    assert not result.problems, result.problems[:10]
    assert result.accepted == COUNT + LATE
    assert result.delivered == COUNT + LATE
    assert result.lost == 0
    assert {msgid for msgid, _rcpt in sink.received} == {*msgids, *late}
    # A duplicate needs a delivery cut between the end of data and its recording.
    assert result.duplicates <= 1
