"""Draw the installable app's icons (static/icons/*.png) from the mssweb logo, with Chromium.

    .venv/bin/python bench/draw_icons.py

The PNGs are committed; run this again only when the logo changes. It needs the dev
dependencies (Playwright) and Debian's Chromium (/usr/bin/chromium).
"""

from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parents[1] / "static" / "icons"
TEAL, MINT, WHITE = "#0b5c6b", "#e5f4f1", "#ffffff"

# The logo's drawing (static/img/logo.svg) without its background, on a 64 × 64 grid.
ENVELOPE = (
    f'<path d="M12 20h40v26a4 4 0 0 1-4 4H16a4 4 0 0 1-4-4z" fill="{WHITE}"/>'
    f'<path d="M12 21l20 15 20-15" fill="none" stroke="{TEAL}" stroke-width="4" '
    'stroke-linejoin="round"/>'
)
CROSS = (
    f'<path d="M44 8h8v6h6v8h-6v6h-8v-6h-6v-8h6z" fill="{MINT}" stroke="{TEAL}" stroke-width="2"/>'
)


def svg(body: str, *, background: str = "") -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">{background}{body}</svg>'


ROUNDED = svg(ENVELOPE + CROSS, background=f'<rect width="64" height="64" rx="14" fill="{TEAL}"/>')
# Full-bleed square, the drawing shrunk into the centre: Android crops maskable icons to a
# circle or squircle (safe zone: the middle 80 %), iOS rounds the corners itself.
FULL_BLEED = svg(
    f'<g transform="translate(32 32) scale(.72) translate(-35 -29)">{ENVELOPE}{CROSS}</g>',
    background=f'<rect width="64" height="64" fill="{TEAL}"/>',
)
APPLE = svg(
    f'<g transform="translate(32 32) scale(.86) translate(-35 -29)">{ENVELOPE}{CROSS}</g>',
    background=f'<rect width="64" height="64" fill="{TEAL}"/>',
)
# Android's status-bar badge: one colour (only the alpha counts), no background.
BADGE = svg(
    '<mask id="flap"><rect width="64" height="64" fill="#fff"/>'
    '<path d="M12 21l20 15 20-15" fill="none" stroke="#000" stroke-width="4" '
    'stroke-linejoin="round"/></mask>'
    '<g transform="translate(32 32) scale(1.05) translate(-35 -29)" mask="url(#flap)">'
    '<path d="M12 20h40v26a4 4 0 0 1-4 4H16a4 4 0 0 1-4-4z" fill="#fff"/>'
    '<path d="M44 8h8v6h6v8h-6v6h-8v-6h-6v-8h6z" fill="#fff"/></g>'
)

ICONS = {
    "icon-192.png": (ROUNDED, 192),
    "icon-512.png": (ROUNDED, 512),
    "maskable-512.png": (FULL_BLEED, 512),
    "apple-touch-icon.png": (APPLE, 180),
    "favicon-32.png": (ROUNDED, 32),
    "badge-96.png": (BADGE, 96),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for name, (drawing, size) in ICONS.items():
            # Chromium will not shrink a window to 32 px: draw in a corner, clip to the icon.
            page = browser.new_page(viewport={"width": max(size, 200), "height": max(size, 200)})
            page.set_content(
                "<!doctype html><style>html,body{margin:0;background:transparent}"
                f"svg{{display:block;width:{size}px;height:{size}px}}</style>{drawing}"
            )
            page.screenshot(
                path=OUT / name,
                omit_background=True,
                clip={"x": 0, "y": 0, "width": size, "height": size},
            )
            page.close()
            print(OUT / name)
        browser.close()


if __name__ == "__main__":
    main()
