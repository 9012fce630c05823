"""A short, human name for a browser from its User-Agent ("Chrome sur Android")."""

import re

from django.utils.translation import gettext as _

_SYSTEMS = [
    (r"iPhone", "iPhone"), (r"iPad", "iPad"), (r"Android", "Android"),
    (r"Windows", "Windows"), (r"Mac OS X|Macintosh", "macOS"), (r"CrOS", "ChromeOS"),
    (r"Linux", "Linux"),
]  # fmt: skip
_BROWSERS = [
    (r"Edg(A|iOS)?/", "Edge"), (r"SamsungBrowser/", "Samsung Internet"),
    (r"Firefox/|FxiOS/", "Firefox"),
    (r"OPR/", "Opera"), (r"Chrome/|CriOS/|Chromium/", "Chrome"), (r"Safari/", "Safari"),
]  # fmt: skip


def device_label(user_agent: str) -> str:
    browser = next((name for pattern, name in _BROWSERS if re.search(pattern, user_agent)), "")
    system = next((name for pattern, name in _SYSTEMS if re.search(pattern, user_agent)), "")
    if browser and system:
        return _("%(browser)s sur %(system)s") % {"browser": browser, "system": system}
    return browser or system or _("Navigateur inconnu")
