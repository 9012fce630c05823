"""A Celery worker killed (SIGKILL) in the middle of a delivery: before it has said anything to
the peer, and after the end of the data but before the peer's reply. Its broker message is
stuck unacknowledged; the lease runs out, the sweeper re-enqueues the row, a new worker delivers
it. Before connecting, the peer gets exactly one copy; after the end of data (the ambiguous
"sent but not acknowledged" window) at most one duplicate."""

import time

import pytest

from .conftest import PEER_DOMAIN, delivery_env, tally, wait_until

pytestmark = pytest.mark.slow

DOCTOR = f"jacques.bideault@{PEER_DOMAIN}"


def all_closed(site) -> dict | None:
    state = site.agent("outbox-state")
    return state if all(r["status"] in ("delivered", "failed") for r in state["rows"]) else None


@pytest.mark.parametrize(
    ("hold_at", "duplicates_allowed"),
    [("connect", 0), ("data", 1)],
    ids=["before-connecting", "after-end-of-data"],
)
def test_a_worker_killed_mid_delivery_delays_the_message_but_never_loses_it(
    make_site, own_redis, sink, pki, hold_at, duplicates_allowed
):
    site = make_site(CELERY_BROKER_URL=own_redis.url, **delivery_env(pki, sink))
    site.agent("sender-setup")
    sink.handler.hold_at = hold_at
    [msgid] = site.agent("send", "--to", DOCTOR)["message_ids"]

    first = site.worker()
    assert sink.handler.held.wait(timeout=30), first.output()[-3000:]
    first.kill()
    [row] = site.agent("outbox-state")["rows"]
    assert (row["status"], row["attempts"], row["leased"]) == ("pending", 1, True)
    sink.handler.release.set()  # the killed worker's connection is gone anyway

    site.worker()
    time.sleep(3.2)  # DELIVERY_LEASE_SECONDS: the dead worker's lease runs out
    # The dead worker's broker message stays unacknowledged (Redis gives it back only after
    # the visibility timeout, an hour): only the sweeper brings the row back.
    assert site.agent("outbox-state")["rows"][0]["status"] == "pending"

    state = wait_until(lambda: _sweep_then_check(site), timeout=60, what="the row to end")
    result = tally(f"worker SIGKILL {hold_at}", state, sink.received)
    assert not result.problems, result.problems
    assert result.lost == 0
    assert result.delivered == 1
    assert sink.received[(msgid, DOCTOR)] == 1 + duplicates_allowed
    assert result.duplicates <= duplicates_allowed
    [row] = state["rows"]
    assert row["attempts"] == 2


def _sweep_then_check(site) -> dict | None:
    site.manage("delivery_sweep")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = all_closed(site)
        if state:
            return state
        time.sleep(0.3)
    return None
