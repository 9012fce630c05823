"""The one place where HTML from outside is made safe to show (allow-list sanitiser: nh3).

``sanitize_html`` keeps text formatting, lists, tables, links, images, headings, quotes and
code; it drops everything that runs code or loads something by itself (scripts, event handlers,
styles — CSS can exfiltrate —, SVG/MathML, forms, frames, objects, ``<meta>``, ``<base>``) and
every URL scheme but http(s), mailto, ``cid:`` and a few base64 image ``data:`` URLs.

Remote images (http, https or scheme-relative ``//host`` sources) are trackers until the reader
says otherwise: their ``src`` is removed (the ``<img>`` keeps its ``alt`` text, which browsers
show in place of the picture) and counted, unless ``allow_remote=True``. ``cid:`` sources are
rewritten to the URLs the caller gives in ``cid_urls``. All of this happens inside the single
nh3 pass, in its ``attribute_filter`` callback — the output is never edited afterwards.

The result is meant for a sandboxed frame under a strict CSP; sanitising is one layer, not the
only one. ``text_to_html`` turns a text/plain body into safe HTML; ``html_to_text`` gives a
plain text version of an HTML-only message (previews, search, replies).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from html.parser import HTMLParser

import nh3
from django.utils.html import escape

# Tags kept (their attributes are filtered below). Anything else is removed, its text kept,
# except the CLEAN_CONTENT tags, removed with everything inside them.
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "address", "article", "b", "bdi", "bdo", "blockquote", "br", "caption",
        "cite", "code", "col", "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em",
        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
        "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "section",
        "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
        "thead", "tr", "tt", "u", "ul", "var", "wbr",
    }
)  # fmt: skip
CLEAN_CONTENT_TAGS = frozenset(
    {
        "script", "style", "title", "noscript", "template", "iframe", "frame", "frameset",
        "object", "embed", "applet", "svg", "math", "textarea", "select", "button", "xmp",
        "noembed", "noframes", "plaintext",
    }
)  # fmt: skip
_TABLE_CELL = {"colspan", "rowspan", "align", "valign", "width", "height", "scope"}
ALLOWED_ATTRIBUTES = {
    "*": {"title", "dir", "lang"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "table": {"width", "align", "border", "cellpadding", "cellspacing", "summary"},
    "td": _TABLE_CELL,
    "th": _TABLE_CELL,
    "col": {"span", "width", "align", "valign"},
    "colgroup": {"span", "width", "align", "valign"},
    "tr": {"align", "valign"},
    "p": {"align"},
    "div": {"align"},
    "ol": {"start", "type"},
    "li": {"value"},
}
# Checked again by nh3 on the value the filter returns; the filter is the finer check.
URL_SCHEMES = frozenset({"http", "https", "mailto", "cid", "data"})
LINK_REL = "noopener noreferrer nofollow"
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*\Z", re.I)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))


@dataclass(frozen=True)
class SanitizedHtml:
    html: str
    blocked_remote: int  # remote images whose source was removed


def _url_parts(value: str) -> tuple[str | None, str]:
    """(scheme or None, URL) as a browser reads the attribute: outer controls and spaces
    stripped, tabs and newlines inside removed, scheme lower-cased; a scheme-relative
    ``//host/…`` (or ``\\\\host``) is reported as https."""
    url = value.strip(_C0_AND_SPACE).replace("\t", "").replace("\n", "").replace("\r", "")
    match = _SCHEME.match(url)
    if match:
        return match.group(1).lower(), url
    if url[:2] in ("//", "\\\\", "/\\", "\\/"):
        return "https", "https://" + url[2:]
    return None, url


def sanitize_html(
    html: str,
    *,
    allow_remote: bool = False,
    cid_urls: dict[str, str] | None = None,
    blocked_src: str | None = None,
) -> SanitizedHtml:
    """Sanitise ``html`` with the allow-list above.

    ``cid_urls`` maps Content-IDs (without angle brackets) to the URLs that serve those inline
    parts; a ``cid:`` reference to an id absent from it is left as is (it loads nothing). With
    ``blocked_src`` (e.g. a static placeholder picture), a blocked remote image gets that
    source instead of none.
    """
    blocked = 0
    cid_map = {key.strip("<>").lower(): url for key, url in (cid_urls or {}).items()}
    own_urls = set(cid_map.values())
    if blocked_src:
        own_urls.add(blocked_src)

    def attribute_filter(tag: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        if attribute not in ("href", "src"):
            return value
        scheme, url = _url_parts(value)
        if scheme in ("http", "https"):
            if tag != "img" or allow_remote:
                return url
            blocked += 1
            return blocked_src
        if scheme == "cid":
            return cid_map.get(url[4:].strip("<>").lower(), url)
        if scheme == "mailto":
            return url if tag == "a" else None
        if scheme == "data":
            return url if tag == "img" and _DATA_IMAGE.match(url) else None
        # Other schemes (javascript:, vbscript:, file:, …) and relative URLs, which would
        # point at this site from inside the frame.
        return None

    def relative_url(url: str) -> str | None:
        # Called after the filter: only the URLs this module itself put in may be relative.
        return url if url in own_urls else None

    cleaner = nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(CLEAN_CONTENT_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=attribute_filter,
        strip_comments=True,
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        url_schemes=set(URL_SCHEMES),
        url_relative=relative_url,
    )
    cleaned = cleaner.clean(html)
    return SanitizedHtml(html=cleaned, blocked_remote=blocked)


# --- HTML written in the compose editor ----------------------------------------------------

# Much stricter than what is shown: the simple formatting the editor offers, nothing else.
COMPOSED_TAGS = frozenset(
    {"p", "br", "strong", "b", "em", "i", "u", "ul", "ol", "li", "blockquote", "a"}
)
COMPOSED_URL_SCHEMES = frozenset({"http", "https", "mailto"})
COMPOSED_LINK_REL = "noopener noreferrer"


def sanitize_composed_html(html: str) -> str:
    """The body written with the compose editor, cut down to its allow-list: paragraphs, line
    breaks, bold, italic, underline, lists, quotes and links (http, https and mailto only, with
    ``rel="noopener noreferrer"``). No other tag and no attribute but ``href``: no style, class,
    id or event handler. Scripts, styles, frames, SVG… are removed with their content."""

    def attribute_filter(tag: str, attribute: str, value: str) -> str | None:
        if tag != "a":
            return None
        if attribute == "rel":  # set by nh3 itself (``link_rel``); a posted rel is dropped
            return value
        if attribute != "href":
            return None
        scheme, url = _url_parts(value)
        return url if scheme in COMPOSED_URL_SCHEMES else None

    cleaner = nh3.Cleaner(
        tags=set(COMPOSED_TAGS),
        clean_content_tags=set(CLEAN_CONTENT_TAGS) | {"head"},
        attributes={"a": {"href"}},
        generic_attribute_prefixes=set(),
        attribute_filter=attribute_filter,
        strip_comments=True,
        link_rel=COMPOSED_LINK_REL,
        url_schemes=set(COMPOSED_URL_SCHEMES),
        url_relative=lambda _url: None,
    )
    return cleaner.clean(html).strip()


def composed_text(html: str) -> str:
    """The text/plain alternative of a composed HTML body: paragraphs and line breaks kept,
    list items as ``- `` (``1. `` when numbered), links as ``text <url>``, quotes as ``> ``."""
    return html_to_text(html, alternative=True)


# --- text/plain → HTML -------------------------------------------------------------------

_LINKABLE = re.compile(
    r"(?P<url>https?://[^\s<>\"'\x00-\x1f]+)"
    r"|(?P<email>(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})",
)
_TRAILING = ".,;:!?'\"»)]}"


def _trim_url(url: str) -> tuple[str, str]:
    """Split trailing punctuation off a URL found in prose (keeps balanced parentheses)."""
    tail = ""
    while url and url[-1] in _TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        tail = url[-1] + tail
        url = url[:-1]
    return url, tail


def _link(href: str, label: str) -> str:
    return f'<a href="{escape(href)}" rel="{LINK_REL}" target="_blank">{escape(label)}</a>'


def _linkify(line: str) -> str:
    out: list[str] = []
    position = 0
    for match in _LINKABLE.finditer(line):
        out.append(escape(line[position : match.start()]))
        if match.group("url"):
            url, tail = _trim_url(match.group("url"))
            out.append(_link(url, url) if len(url) > len("https://") else escape(url))
            out.append(escape(tail))
        else:
            address = match.group("email")
            out.append(_link(f"mailto:{address}", address))
        position = match.end()
    out.append(escape(line[position:]))
    return "".join(out)


def text_to_html(text: str) -> str:
    """Escape ``text``, make http(s) URLs and e-mail addresses clickable and keep line breaks
    (``<br>``); quoted lines (``>``) are wrapped in ``<span class="quote">``. Spaces are kept
    as they are: show the result with ``white-space: pre-wrap`` to keep indentation."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out = []
    for line in lines:
        html = _linkify(line)
        if line.lstrip().startswith(">"):
            html = f'<span class="quote">{html}</span>'
        out.append(html)
    return "<br>".join(out)


# --- HTML → text ----------------------------------------------------------------------------

_SKIP = {"script", "style", "head", "title", "template", "noscript", "svg", "math", "xmp"}
_BLOCK = {
    "address", "article", "blockquote", "caption", "center", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "tfoot", "thead",
    "tr", "ul",
}  # fmt: skip
_SPACES = re.compile(r"[ \t\r\n\f\u200b]+")


class _TextExtractor(HTMLParser):
    """Collects ``(text, quote depth)`` pieces. With ``alternative``, also numbers ordered
    list items, writes link targets after their text and tracks ``blockquote`` depth."""

    def __init__(self, *, alternative: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.alternative = alternative
        self.parts: list[tuple[str, int]] = []
        self.skip = 0
        self.pre = 0
        self.depth = 0
        self.lists: list[list] = []  # [tag, next number]
        self.link: tuple[str, int] | None = None  # (href, index of the first part of its text)

    def _add(self, text: str) -> None:
        self.parts.append((text, self.depth))

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "br":
            self._add("\n")
        elif tag == "li":
            self._add(self._bullet())
        elif tag in ("td", "th"):
            self._add(" ")
        elif tag in _BLOCK:
            self._add("\n")
        if tag == "pre":
            self.pre += 1
        if not self.alternative:
            return
        if tag == "blockquote":
            self.depth += 1
        elif tag in ("ul", "ol"):
            start = dict(attrs).get("start") or "1"
            self.lists.append([tag, int(start) if start.isdigit() else 1])
        elif tag == "a":
            self.link = (dict(attrs).get("href") or "", len(self.parts))

    def _bullet(self) -> str:
        if self.alternative and self.lists and self.lists[-1][0] == "ol":
            number = self.lists[-1][1]
            self.lists[-1][1] += 1
            return f"\n{number}. "
        return "\n- "

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag in ("br", "hr"):
            self._add("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK and tag != "li":
            self._add("\n")
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if not self.alternative:
            return
        if tag == "blockquote":
            self.depth = max(0, self.depth - 1)
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        elif tag == "a" and self.link is not None:
            href, first = self.link
            self.link = None
            label = " ".join("".join(text for text, _d in self.parts[first:]).split())
            address = href[len("mailto:") :] if href.lower().startswith("mailto:") else None
            target = address if address and "?" not in address else href
            if href and label not in (href, target):
                self._add(f" <{target}>")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self._add(data if self.pre else _SPACES.sub(" ", data))


def _lines(parts: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Split the pieces into stripped lines, each with the quote depth of its first text."""
    lines: list[tuple[str, int]] = []
    text, depth = "", None
    for piece, piece_depth in parts:
        chunks = piece.split("\n")
        for index, chunk in enumerate(chunks):
            if index:
                lines.append((text.strip(), depth or 0))
                text, depth = "", None
            if chunk.strip() and depth is None:
                depth = piece_depth
            text += chunk
    lines.append((text.strip(), depth or 0))
    return lines


def html_to_text(html: str, *, alternative: bool = False) -> str:
    """A readable plain text version of ``html``: block elements become line breaks, list
    items ``- `` lines; scripts, styles and the document head are dropped. Never raises.

    ``alternative=True`` (the text/plain part of a message written as HTML) also numbers
    ordered lists (``1. ``), writes links as ``text <url>`` and prefixes quoted lines with
    ``> `` (``>> `` when nested)."""
    extractor = _TextExtractor(alternative=alternative)
    with contextlib.suppress(Exception):  # HTMLParser is lenient; keep what was read
        extractor.feed(html)
        extractor.close()
    out: list[tuple[str, int]] = []
    for line, depth in _lines(extractor.parts):
        if line or (out and out[-1][0]):
            out.append((line, depth))
    while out and not out[-1][0]:
        out.pop()
    rendered = []
    for index, (line, depth) in enumerate(out):
        if not line:  # a blank line inside a quote stays quoted
            after = out[index + 1][1] if index + 1 < len(out) else 0
            depth = min(out[index - 1][1] if index else 0, after)
        marks = ">" * depth
        rendered.append(f"{marks} {line}" if marks and line else marks or line)
    return "\n".join(rendered).strip()
