from pathlib import Path

import pytest

from apps.ingestion.parse import parse_message
from apps.ingestion.sanitize import html_to_text, sanitize_html, text_to_html

FIXTURES = Path(__file__).parent / "fixtures"


def clean(html: str, **options) -> str:
    return sanitize_html(html, **options).html


@pytest.mark.parametrize(
    ("hostile", "forbidden"),
    [
        ("<script>alert(1)</script>", ["script", "alert"]),
        ("<img src=x onerror=alert(1)>", ["onerror", "alert"]),
        ('<a href="javascript:alert(1)">x</a>', ["javascript"]),
        ('<a href="JaVaScRiPt:alert(1)">x</a>', ["javascript", "JaVaScRiPt"]),
        ('<a href=" java&#x09;script:alert(1)">x</a>', ["script:"]),
        ('<a href="vbscript:msgbox(1)">x</a>', ["vbscript"]),
        ("<svg onload=alert(1)><circle r=1 /></svg>", ["svg", "onload", "alert"]),
        ("<math><mi xlink:href='javascript:alert(1)'>x</mi></math>", ["math", "javascript"]),
        ('<iframe src="https://evil.example/"></iframe>', ["iframe", "evil"]),
        ('<object data="https://evil.example/x.swf"></object>', ["object", "evil"]),
        ('<embed src="https://evil.example/x.swf">', ["embed", "evil"]),
        ("<style>@import url(http://evil.example/x.css);</style>", ["style", "evil", "@import"]),
        ('<p style="background:url(http://evil.example/x)">p</p>', ["style", "evil"]),
        ('<meta http-equiv="refresh" content="0;url=http://evil.example/">', ["meta", "evil"]),
        ('<base href="http://evil.example/">', ["base", "evil"]),
        ('<link rel="stylesheet" href="http://evil.example/x.css">', ["link", "evil"]),
        ('<form action="http://evil.example/"><input name="pw"></form>', ["form", "input"]),
        ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', ["data:"]),
        ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', ["data:", "svg"]),
        ('<table background="http://evil.example/bg.gif"><tr><td>x</td></tr></table>', ["evil"]),
        ('<img srcset="http://evil.example/x.gif 1x">', ["evil", "srcset"]),
        ('<div id="csrftoken" class="btn">x</div>', ["id=", "class="]),
        ('<img src="/compte/deconnexion/">', ["deconnexion"]),
        ("<!--[if IE]><script>alert(1)</script><![endif]-->", ["script", "alert"]),
    ],
)
def test_hostile_html_is_neutralised(hostile, forbidden):
    result = clean(hostile)
    for needle in forbidden:
        assert needle not in result


def test_formatting_tables_and_links_survive():
    html = (
        '<h2 title="t">Titre</h2><p dir="ltr"><b>gras</b> <em>it</em></p>'
        '<table border="1"><tr><td colspan="2">c</td></tr></table>'
        "<ul><li>un</li></ul><blockquote>cité</blockquote><pre><code>x = 1</code></pre>"
    )
    assert clean(html) == (
        '<h2 title="t">Titre</h2><p dir="ltr"><b>gras</b> <em>it</em></p>'
        '<table border="1"><tbody><tr><td colspan="2">c</td></tr></tbody></table>'
        "<ul><li>un</li></ul><blockquote>cité</blockquote><pre><code>x = 1</code></pre>"
    )


def test_links_open_in_a_new_context_without_referrer():
    result = clean('<a href="https://www.has-sante.fr/" target="_self">HAS</a>')
    assert result == (
        '<a href="https://www.has-sante.fr/" target="_blank" '
        'rel="noopener noreferrer nofollow">HAS</a>'
    )
    assert 'href="mailto:a@b.fr"' in clean('<a href="mailto:a@b.fr">m</a>')


@pytest.mark.parametrize(
    "source",
    [
        "http://tracker.example/x.gif",
        "https://tracker.example/x.gif?u=1",
        " HTTPS://tracker.example/x.gif",
        "//tracker.example/x.gif",
        "\\\\tracker.example/x.gif",
    ],
)
def test_remote_images_are_blocked_and_counted(source):
    result = sanitize_html(f'<p><img src="{source}" alt="Logo"></p>')
    assert result.blocked_remote == 1
    assert result.html == '<p><img alt="Logo"></p>'
    assert "tracker" not in result.html


def test_remote_images_are_kept_when_the_reader_allows_them():
    result = sanitize_html('<img src="https://cdn.example/logo.png" alt="Logo">', allow_remote=True)
    assert result.blocked_remote == 0
    assert 'src="https://cdn.example/logo.png"' in result.html


def test_blocked_image_can_get_a_placeholder_source():
    result = sanitize_html(
        '<img src="https://t.example/p.gif" alt="pixel">', blocked_src="/static/img/bloquee.svg"
    )
    assert result.html == '<img src="/static/img/bloquee.svg" alt="pixel">'
    assert result.blocked_remote == 1


def test_newsletter_fixture_blocks_both_remote_images():
    parsed = parse_message((FIXTURES / "html-newsletter-remote-images.eml").read_bytes())
    result = sanitize_html(parsed.html)
    assert result.blocked_remote == 2
    assert "<script" not in result.html
    assert "<style" not in result.html
    assert "Nouveautés" in result.html


def test_cid_images_are_rewritten_to_the_given_urls_in_the_same_pass():
    result = sanitize_html(
        '<img src="cid:Radio@Example.org" alt="r"><img src="cid:absent@example.org">',
        cid_urls={"<radio@example.org>": "/messages/12/pieces/3/"},
    )
    assert result.html == (
        '<img src="/messages/12/pieces/3/" alt="r"><img src="cid:absent@example.org">'
    )
    assert result.blocked_remote == 0


def test_relative_urls_are_allowed_only_when_they_are_our_cid_rewrites():
    result = clean('<img src="/messages/12/pieces/3/"><img src="cid:a@b">', cid_urls={"a@b": "/x/"})
    assert result == '<img><img src="/x/">'


def test_small_base64_images_are_kept():
    source = "data:image/png;base64,iVBORw0KGgo="
    assert clean(f'<img src="{source}">') == f'<img src="{source}">'


def test_text_to_html_escapes_and_links():
    html = text_to_html(
        "Bonjour <b>Jean</b> & co\r\nVoir https://ex.fr/a?b=1&c=2).\nÉcrire à jean@ex.fr.\n> cité"
    )
    assert html == (
        "Bonjour &lt;b&gt;Jean&lt;/b&gt; &amp; co<br>"
        'Voir <a href="https://ex.fr/a?b=1&amp;c=2" rel="noopener noreferrer nofollow" '
        'target="_blank">https://ex.fr/a?b=1&amp;c=2</a>).<br>'
        'Écrire à <a href="mailto:jean@ex.fr" rel="noopener noreferrer nofollow" '
        'target="_blank">jean@ex.fr</a>.<br>'
        '<span class="quote">&gt; cité</span>'
    )


def test_text_to_html_cannot_be_broken_out_of():
    html = text_to_html('https://ex.fr/"onmouseover="alert(1) <script>x</script>')
    assert "<script>" not in html
    assert '"onmouseover' not in html
    assert html.startswith('<a href="https://ex.fr/" ')
    assert "&quot;onmouseover=&quot;alert(1) &lt;script&gt;" in html


def test_html_to_text():
    text = html_to_text(
        "<html><head><title>T</title><style>p{}</style></head><body>"
        "<p>Un&nbsp;<b>deux</b></p><ul><li>a</li><li>b</li></ul>ligne<br>suite"
        "<script>alert(1)</script></body></html>"
    )
    assert text == "Un\xa0deux\n\n- a\n- b\nligne\nsuite"
