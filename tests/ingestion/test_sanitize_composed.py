"""The allow-list of HTML written in the compose editor, and its text alternative."""

import pytest

from apps.ingestion.sanitize import composed_text, html_to_text, sanitize_composed_html


@pytest.mark.parametrize(
    ("hostile", "forbidden"),
    [
        ("<p>a</p><script>alert(1)</script>", ["script", "alert"]),
        ('<p onclick="alert(1)" onmouseover="x()">a</p>', ["onclick", "onmouseover", "alert"]),
        ("<b onfocus=alert(1) tabindex=1 autofocus>a</b>", ["onfocus", "tabindex", "autofocus"]),
        ('<a href="javascript:alert(1)">x</a>', ["javascript", "alert"]),
        ('<a href=" JaVa&#x09;ScRiPt:alert(1)">x</a>', ["script:", "alert"]),
        ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', ["data:"]),
        ('<a href="vbscript:msgbox(1)">x</a>', ["vbscript"]),
        ('<a href="/compte/deconnexion/">x</a>', ["deconnexion"]),
        ('<p style="background:url(https://evil.example/x)">a</p>', ["style", "evil"]),
        ("<style>p{color:red}</style><p>a</p>", ["style", "color"]),
        (
            '<p class="btn" id="csrftoken" title="t" dir="rtl">a</p>',
            ["class", "id=", "title", "dir"],
        ),
        ('<iframe src="https://evil.example/"></iframe>', ["iframe", "evil"]),
        ("<svg onload=alert(1)><circle r=1 /></svg>", ["svg", "onload", "alert", "circle"]),
        ('<img src="https://evil.example/t.gif" onerror="alert(1)">', ["img", "evil", "onerror"]),
        ('<form action="https://evil.example/"><input name="pw"></form>', ["form", "input"]),
        ('<span style="font-weight:bold">a</span><font color=red>b</font>', ["span", "font"]),
        (
            "<table><tr><td>a</td></tr></table><h1>t</h1><div>d</div>",
            ["<table", "<td", "<h1", "<div"],
        ),
        ("<!-- secret --><p>a</p>", ["secret", "<!--"]),
        (
            '<a href="https://ok.example/" target="_top" rel="opener">x</a>',
            ["target", 'rel="opener"'],
        ),
    ],
)
def test_hostile_markup_is_stripped(hostile, forbidden):
    cleaned = sanitize_composed_html(hostile)
    for needle in forbidden:
        assert needle.lower() not in cleaned.lower(), cleaned


def test_allowed_markup_is_kept():
    html = (
        "<p>Bonjour <strong>cher</strong> <b>confrère</b>, <em>voici</em> <i>le</i> "
        "<u>compte rendu</u>.<br>Ligne suivante.</p>"
        "<ul><li>un</li></ul><ol><li>deux</li></ol><blockquote><p>cité</p></blockquote>"
    )
    assert sanitize_composed_html(html) == html


def test_links_keep_http_https_mailto_and_get_rel():
    cleaned = sanitize_composed_html(
        '<a href="https://ameli.fr/a?b=1&amp;c=2">A</a> <a href="http://x.fr">B</a> '
        '<a href="mailto:dr@x.mssante.fr">C</a>'
    )
    assert cleaned == (
        '<a href="https://ameli.fr/a?b=1&amp;c=2" rel="noopener noreferrer">A</a> '
        '<a href="http://x.fr" rel="noopener noreferrer">B</a> '
        '<a href="mailto:dr@x.mssante.fr" rel="noopener noreferrer">C</a>'
    )


def test_text_alternative_of_composed_html():
    html = sanitize_composed_html(
        "<p>Bonjour <strong>cher</strong> confrère,</p>"
        "<ul><li>radio</li><li>bilan</li></ul>"
        "<ol><li>premier</li><li>second</li></ol>"
        '<p>Voir <a href="https://has-sante.fr/reco">la recommandation</a>, '
        '<a href="https://ex.fr/">https://ex.fr/</a> ou '
        '<a href="mailto:sec@x.mssante.fr">le secrétariat</a>.</p>'
        "<p>Le 3 mars, Dr X a écrit :</p>"
        "<blockquote><p>Première ligne<br>deuxième</p><p>suite</p>"
        "<blockquote>plus ancien</blockquote></blockquote>"
        "<p>Cordialement</p>"
    )
    assert composed_text(html) == (
        "Bonjour cher confrère,\n"
        "\n"
        "- radio\n"
        "- bilan\n"
        "\n"
        "1. premier\n"
        "2. second\n"
        "\n"
        "Voir la recommandation <https://has-sante.fr/reco>, https://ex.fr/ ou "
        "le secrétariat <sec@x.mssante.fr>.\n"
        "\n"
        "Le 3 mars, Dr X a écrit :\n"
        "\n"
        "> Première ligne\n"
        "> deuxième\n"
        ">\n"
        "> suite\n"
        ">\n"
        ">> plus ancien\n"
        "\n"
        "Cordialement"
    )


def test_html_to_text_default_is_unchanged_by_the_alternative_mode():
    html = '<ol><li>a</li></ol><blockquote>q</blockquote><a href="https://x.fr">l</a>'
    assert html_to_text(html) == "- a\n\nq\nl"
    assert composed_text(html) == "1. a\n\n> q\nl <https://x.fr>"


def test_scheme_relative_link_becomes_https():
    assert sanitize_composed_html('<a href="//ex.fr/">x</a>') == (
        '<a href="https://ex.fr/" rel="noopener noreferrer">x</a>'
    )


def test_empty_or_only_hostile_gives_nothing():
    assert sanitize_composed_html("") == ""
    assert sanitize_composed_html("<script>x</script><style>y</style>") == ""
