"""A hostile HTML mail runs no script and loads nothing remote, in a real browser."""

import http.server
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.mailbox import services
from apps.mailbox.models import Mailbox
from tests.browser.test_login_flows import confirmed_device, log_in
from tests.conftest import make_user, totp_code

pytestmark = pytest.mark.browser

FIXTURE = Path(__file__).resolve().parent.parent / "mailbox" / "fixtures" / "hostile.eml"


@pytest.fixture
def remote_server():
    """A loopback server standing for a tracker: it counts the requests it gets."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/gif")
            self.end_headers()
            self.wfile.write(b"GIF89a")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def test_hostile_mail_runs_no_script_and_loads_nothing_remote(page, viewport, remote_server):
    address, hits = remote_server
    alice = make_user(first_name="Alice", last_name="Martin")
    raw = FIXTURE.read_bytes().replace(b"REMOTE", address.encode()).replace(b"\n", b"\r\n")
    message = services.message_deliver_raw(mailbox=Mailbox.objects.get(owner=alice), raw=raw)

    log_in(page, viewport, alice, totp_code(confirmed_device(alice)))
    page.goto(f"/messagerie/message/{message.pk}/")
    frame = page.frame_locator("iframe.mail-frame")
    expect(frame.get_by_text("Bonjour")).to_be_visible()
    expect(frame.get_by_text("cliquez")).to_be_visible()
    page.wait_for_timeout(500)
    assert page.evaluate("window.pwned") is None
    assert hits == []

    page.get_by_role("link", name="Afficher le contenu distant").click()
    expect(page.frame_locator("iframe.mail-frame").get_by_text("Bonjour")).to_be_visible()
    page.wait_for_timeout(500)
    assert page.evaluate("window.pwned") is None
    assert "/tracker.gif" in hits
