"""Real-browser tests: Playwright drives Debian's Chromium against pytest-django's live server.

One browser is launched per test session (pytest-playwright's ``browser`` fixture); each test
opens its own contexts (one context = one browser profile with its own cookies) at the
viewport it is parametrized with: a desktop screen and a phone.
"""

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

# Playwright's sync API runs an event loop in the test thread; Django would otherwise refuse
# every ORM call made from the test (fixtures, assertions) as "async unsafe".
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "var" / "screenshots"

# Chromium's background services (updates, sync, QUIC probes) try to reach the internet, and
# here those connections are refused in a way that disturbs the browser: keep them all off.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


@dataclass(frozen=True)
class Viewport:
    name: str
    width: int
    height: int
    is_mobile: bool = False

    @property
    def context_args(self) -> dict:
        args: dict = {"viewport": {"width": self.width, "height": self.height}}
        if self.is_mobile:
            args.update(is_mobile=True, has_touch=True, device_scale_factor=2)
        return args


DESKTOP = Viewport("desktop", 1280, 800)
PHONE = Viewport("phone", 360, 640, is_mobile=True)


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict:
    """Overrides pytest-playwright's: its own browser download does not work here, so use the
    system Chromium — or skip (a failure under MSSWEB_NO_SKIP=1) when there is none."""
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return {"executable_path": path, "args": CHROMIUM_ARGS}


@pytest.fixture(params=[DESKTOP, PHONE], ids=lambda viewport: viewport.name)
def viewport(request) -> Viewport:
    return request.param


@pytest.fixture
def new_page(
    browser: Browser, live_server, viewport: Viewport, allow_audit_flush
) -> Iterator[Callable[[], Page]]:
    """Open a page in a fresh browser context (its own cookies) at the test's viewport, with
    relative URLs resolved against the live server. Call it twice for two separate browsers."""
    contexts = []

    def open_page() -> Page:
        # No service worker: its installation (six fetches, then claiming the page) can hold a
        # form's navigation back on a loaded machine. The PWA test opens its own context.
        context = browser.new_context(
            base_url=live_server.url,
            locale="fr-FR",
            service_workers="block",
            **viewport.context_args,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    # A compose page saves its draft when it is left (a beacon sent as the context closes): give
    # the live server the moment it needs to answer it while the test database is still there.
    composing = any(
        "/messagerie/ecrire" in page.url for context in contexts for page in context.pages
    )
    for context in contexts:
        context.close()
    if composing:
        time.sleep(0.5)


@pytest.fixture
def page(new_page) -> Page:
    """One page at the test's viewport (replaces pytest-playwright's ``page``)."""
    return new_page()


@pytest.fixture
def screenshot(viewport: Viewport) -> Callable[[Page, str], None]:
    """Save ``var/screenshots/<name>-<viewport>.png`` for a human to look at (no assertion)."""

    def save(page: Page, name: str) -> None:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT_DIR / f"{name}-{viewport.name}.png", full_page=True)

    return save
