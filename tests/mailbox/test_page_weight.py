"""The message list on a slow phone connection: a budget for what a full inbox page weighs.

A page of the inbox (50 messages) is HTML only — no web font, no image but the icons, one style
sheet and small scripts that the service worker keeps after the first visit. These budgets
keep it that way: at 3G speeds (~400 kbit/s) the first visit stays around two seconds and later
ones need the HTML only."""

import gzip
import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import client_for, mailbox_of
from tests.mailbox.test_search import deliver

pytestmark = pytest.mark.django_db

HTML_BUDGET = 60_000  # bytes of HTML for a page of 50 messages, uncompressed
HTML_GZIP_BUDGET = (
    12_000  # the same, as a gzip-compressing proxy or WhiteNoise-like server sends it
)
STATIC_BUDGET = 90_000  # style sheet + scripts + icons the page loads, uncompressed


def test_a_full_inbox_page_stays_light(alice):
    box = mailbox_of(alice)
    for n in range(60):
        body = "Bonjour,\n" + "Le patient a été vu ce jour. " * 20
        deliver(box, subject=f"Compte rendu n° {n}", body=body, urgent=n % 10 == 0)
    page = client_for(alice).get(f"/messagerie/{box.pk}/inbox/")
    assert page.status_code == 200
    html = page.content
    assert html.count(b'class="message-row') >= 50
    assert len(html) <= HTML_BUDGET, len(html)
    assert len(gzip.compress(html)) <= HTML_GZIP_BUDGET

    assets = set(re.findall(rb'(?:href|src)="(/static/[^"?]+)', html))
    assert assets, "the page loads its style sheet and scripts from /static/"
    root = Path(settings.BASE_DIR) / "static"
    sizes = {a: (root / a.decode().removeprefix("/static/")).stat().st_size for a in assets}
    assert sum(sizes.values()) <= STATIC_BUDGET, sizes
    # Nothing from outside the site.
    assert not re.search(rb'(?:href|src)="(?:https?:)?//', html)
