import re
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.http import Http404
from django.urls import reverse

from apps.mailbox import services
from apps.mailbox.models import FolderKind, Mailbox, MailboxKind, MailboxMembership, Message
from apps.mailbox.search import (
    ATTACHMENT_NAME,
    CONFIG,
    DOCUMENT,
    RECIPIENT,
    RECIPIENT_WHO,
    SENDER,
    message_search,
)
from tests.conftest import client_for, make_user

pytestmark = pytest.mark.django_db

POSTGRES = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only (stemming, indexes)"
)
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def box(alice) -> Mailbox:
    return Mailbox.objects.get(owner=alice)


def deliver(
    mailbox: Mailbox,
    *,
    subject: str = "Sans intérêt",
    body: str = "Bonjour,\nrien de particulier.\n",
    sender: str = "Dr Paul Roux <paul.roux@chu.test.mssante.fr>",
    to: str = "",
    files: tuple[str, ...] = (),
    folder: str = FolderKind.INBOX,
    when: datetime | None = None,
    urgent: bool = False,
) -> Message:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(filter(None, [mailbox.address, to]))
    mail["Subject"] = subject
    mail["Date"] = format_datetime(when or datetime(2026, 11, 2, 9, 30, tzinfo=PARIS))
    mail["Message-ID"] = f"<{subject.encode().hex()[:20]}.{Message.objects.count()}@test>"
    if urgent:
        mail["Importance"] = "high"
    mail.set_content(body)
    for name in files:
        mail.add_attachment(b"%PDF-1.4 test", maintype="application", subtype="pdf", filename=name)
    return services.message_deliver_raw(mailbox=mailbox, raw=bytes(mail), folder_kind=folder)


def found(user, mailbox: Mailbox, query: str = "", **filters) -> list[int]:
    results = message_search(user=user, mailbox_id=mailbox.pk, query=query, **filters)
    return [hit.message.pk for hit in results.results]


def search_url(mailbox: Mailbox) -> str:
    return reverse("mailbox:search", args=[mailbox.pk])


def test_words_are_found_in_subject_body_sender_recipients_and_attachment_names(alice, box):
    by_subject = deliver(box, subject="Compte rendu d'échographie")
    by_body = deliver(box, body="Suspicion de pneumothorax à droite.")
    by_sender = deliver(box, sender="Dr Hélène Lefèvre <h.lefevre@clinique.test.mssante.fr>")
    by_recipient = deliver(box, to="Dr Gaspard Quintard <g.quintard@test.mssante.fr>")
    by_attachment = deliver(box, files=("bilan_thyroidien.pdf",))
    deliver(box)  # matches none of the words

    assert found(alice, box, "échographie") == [by_subject.pk]
    assert found(alice, box, "pneumothorax") == [by_body.pk]
    assert found(alice, box, "lefevre") == [by_sender.pk]
    assert found(alice, box, "quintard") == [by_recipient.pk]
    assert found(alice, box, "thyroidien") == [by_attachment.pk]
    assert found(alice, box, "introuvable") == []


def test_each_word_may_be_found_in_a_different_place(alice, box):
    report = deliver(box, body="Le scanner est normal.", to="Dr Quintard <gq@test.mssante.fr>")
    deliver(box, body="Le scanner est normal.")
    deliver(box, body="Rien.", to="Dr Quintard <gq@test.mssante.fr>")
    assert found(alice, box, "scanner quintard") == [report.pk]
    assert found(alice, box, "quintard scanner") == [report.pk]


def test_the_mailbox_own_address_and_address_domains_are_not_searched(alice, box):
    """Every received message is addressed to the mailbox, and every address ends in
    mssante.fr: neither says anything about a message."""
    deliver(box, sender="Dr Paul Roux <paul.roux@chu-lyon.test.mssante.fr>")
    own = box.address.partition("@")[0]
    assert found(alice, box, own) == found(alice, box, "mssante") == []
    assert found(alice, box, "lyon") == []
    assert len(found(alice, box, "roux")) == 1
    assert len(found(alice, box, "", from_="chu-lyon")) == 1  # the From filter does see it


def test_accents_and_case_are_ignored(alice, box):
    report = deliver(box, subject="RADIOLOGIE", body="Taux élevé de créatinine.")
    assert found(alice, box, "radiologie") == [report.pk]
    assert found(alice, box, "Radiologie") == [report.pk]
    assert found(alice, box, "eleve") == [report.pk]
    assert found(alice, box, "ÉLEVÉ CREATININE") == [report.pk]


@POSTGRES
def test_french_stemming_finds_other_forms_of_a_word(alice, box):
    report = deliver(box, body="Un examen complémentaire est prévu ; hospitalisations récentes.")
    assert found(alice, box, "examens") == [report.pk]
    assert found(alice, box, "hospitalisation") == [report.pk]
    assert found(alice, box, "complementaires") == [report.pk]


def test_the_last_word_is_a_prefix_as_the_user_types(alice, box):
    report = deliver(box, subject="Radiologie thoracique", body="Hospitalisation prévue.")
    for typed in ("radiolo", "radiologie thora", "thoracique radiolo", "hospitalisati"):
        assert found(alice, box, typed) == [report.pk], typed


def test_filters(alice, box):
    old = deliver(box, subject="Bilan", when=datetime(2026, 1, 10, 10, 0, tzinfo=PARIS))
    late = deliver(box, subject="Bilan", when=datetime(2026, 3, 31, 23, 30, tzinfo=PARIS))
    with_file = deliver(box, subject="Bilan", files=("resultats.pdf",))
    urgent = deliver(box, subject="Bilan", urgent=True)
    from_lefevre = deliver(box, subject="Bilan", sender="Hélène Lefèvre <hl@test.mssante.fr>")
    to_quintard = deliver(box, subject="Bilan", to="Gaspard Quintard <gq@autre.mssante.fr>")
    Message.objects.exclude(pk=urgent.pk).update(is_read=True)

    assert found(alice, box, "bilan", has_attachment=True) == [with_file.pk]
    assert found(alice, box, "bilan", unread=True) == [urgent.pk]
    assert found(alice, box, "bilan", urgent=True) == [urgent.pk]
    assert found(alice, box, "bilan", from_="lefevre") == [from_lefevre.pk]
    assert found(alice, box, "", from_="HÉLÈNE") == [from_lefevre.pk]
    assert found(alice, box, "bilan", to="quintard") == [to_quintard.pk]
    assert found(alice, box, "", to="autre.mssante") == [to_quintard.pk]
    march = found(alice, box, "bilan", date_from=date(2026, 3, 1), date_to=date(2026, 3, 31))
    assert march == [late.pk]  # the end day is included, in Paris time
    assert found(alice, box, "", date_to=date(2026, 2, 1)) == [old.pk]


def test_one_folder_or_all_but_the_trash(alice, box):
    inbox = deliver(box, subject="Protocole")
    sent = deliver(box, subject="Protocole", folder=FolderKind.SENT)
    trashed = deliver(box, subject="Protocole", folder=FolderKind.TRASH)
    assert sorted(found(alice, box, "protocole")) == sorted([inbox.pk, sent.pk])
    assert found(alice, box, "protocole", folder_kind=FolderKind.SENT) == [sent.pk]
    assert found(alice, box, "protocole", folder_kind=FolderKind.TRASH) == [trashed.pk]
    assert found(alice, box, "protocole", folder_kind=FolderKind.ARCHIVE) == []


def test_results_are_newest_first_and_paginated(alice, box):
    made = [
        deliver(box, subject=f"Suivi {n}", when=datetime(2026, 5, n, 8, 0, tzinfo=PARIS))
        for n in range(1, 6)
    ]
    newest_first = [m.pk for m in reversed(made)]
    first = message_search(user=alice, mailbox_id=box.pk, query="suivi", limit=2)
    assert [h.message.pk for h in first.results] == newest_first[:2]
    assert first.has_more
    last = message_search(user=alice, mailbox_id=box.pk, query="suivi", limit=2, offset=4)
    assert [h.message.pk for h in last.results] == newest_first[4:]
    assert not last.has_more


def test_a_new_mailbox_without_folders_finds_nothing(alice, box):
    box.folders.all().delete()
    assert found(alice, box, "dossier radiologie") == []
    assert found(alice, box, "radiologie", folder_kind=FolderKind.INBOX) == []


def test_nothing_asked_finds_nothing(alice, box):
    deliver(box)
    assert found(alice, box, "  ") == []
    assert found(alice, box, "", folder_kind=FolderKind.INBOX) != []


def test_highlight_escapes_everything_and_marks_only_the_matches(alice, box):
    deliver(
        box,
        subject='<img src=x onerror="alert(1)"> Radiologie & co',
        body="<script>alert('x')</script> Le compte rendu de radiologie <b>urgent</b> suit.",
    )
    hit = message_search(user=alice, mailbox_id=box.pk, query="radiologie").results[0]
    subject, snippet = str(hit.subject_html), str(hit.snippet_html)
    assert subject == (
        "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; <mark>Radiologie</mark> &amp; co"
    )
    assert "<script" not in snippet
    assert "<b>" not in snippet
    assert "<mark>radiologie</mark>" in snippet
    assert re.sub(r"</?mark>", "", snippet).count("<") == 0  # nothing else is a tag
    if connection.vendor == "sqlite":  # (ts_headline drops what looks like a tag)
        assert snippet.startswith("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Le compte")


def test_highlight_of_a_stemmed_or_accented_match(alice, box):
    deliver(box, subject="Résultats élevés", body="Les résultats sont élevés.")
    hit = message_search(user=alice, mailbox_id=box.pk, query="eleve").results[0]
    assert str(hit.subject_html) == "Résultats <mark>élevés</mark>"
    assert "<mark>élevés</mark>" in str(hit.snippet_html)


def test_a_match_in_an_attachment_name_or_recipient_is_shown(alice, box):
    deliver(box, files=("CR_scanner_Dupont.pdf",), to="Dr Dupont <jd@test.mssante.fr>")
    hit = message_search(user=alice, mailbox_id=box.pk, query="dupont").results[0]
    assert [str(a) for a in hit.attachments_html] == ["CR_scanner_<mark>Dupont</mark>.pdf"]
    assert [str(r) for r in hit.recipients_html] == [
        "Dr <mark>Dupont</mark> &lt;jd@test.mssante.fr&gt;"
    ]


def test_another_users_mailbox_is_a_404(alice, box):
    deliver(box, subject="Confidentiel")
    eve = make_user(first_name="Eve", last_name="Curieuse")
    with pytest.raises(Http404):
        message_search(user=eve, mailbox_id=box.pk, query="confidentiel")
    assert client_for(eve).get(search_url(box), {"q": "confidentiel"}).status_code == 404


def test_a_member_of_a_shared_mailbox_can_search_it(alice):
    practice = Mailbox.objects.create(
        address=f"cabinet@{alice.domain.name}", kind=MailboxKind.ORGANISATIONAL,
        domain=alice.domain, display_name="Cabinet",
    )  # fmt: skip
    message = deliver(practice, subject="Planning des gardes")
    MailboxMembership.objects.create(mailbox=practice, user=alice)
    assert found(alice, practice, "gardes") == [message.pk]
    bob = make_user(first_name="Bob", last_name="Durand")
    with pytest.raises(Http404):
        found(bob, practice, "gardes")


def test_search_page_shows_highlighted_results_linking_to_the_message(alice, box):
    report = deliver(box, subject="Échographie <abdominale>", body="Foie normal.")
    page = client_for(alice).get(search_url(box), {"q": "echographie"})
    html = page.content.decode()
    assert page.status_code == 200
    assert "Rechercher dans les messages" in html
    assert f'href="{reverse("mailbox:message", args=[report.pk])}"' in html
    assert "<mark>Échographie</mark> &lt;abdominale&gt;" in html
    assert "<abdominale>" not in html


def test_search_page_paginates_with_an_offset(alice, box, monkeypatch):
    monkeypatch.setattr("apps.mailbox.search_views.PAGE_SIZE", 2)
    for n in range(3):
        deliver(box, subject=f"Garde {n}", when=datetime(2026, 6, n + 1, tzinfo=PARIS))
    client = client_for(alice)
    first = client.get(search_url(box), {"q": "garde"})
    assert len(first.context["results"].results) == 2
    assert "offset=2" in first.content.decode()
    second = client.get(search_url(box), {"q": "garde", "offset": "2"})
    assert [h.message.subject for h in second.context["results"].results] == ["Garde 0"]
    assert 'rel="prev"' in second.content.decode()


def test_search_page_refuses_reversed_dates(alice, box):
    page = client_for(alice).get(
        search_url(box), {"q": "x", "date_from": "2026-03-02", "date_to": "2026-03-01"}
    )
    assert "La date de fin précède la date de début." in page.content.decode()
    assert page.context["results"] is None


def test_search_page_has_a_bounded_number_of_queries(alice, box, django_assert_max_num_queries):
    def add(count: int) -> None:
        for n in range(count):
            deliver(box, subject=f"Dossier {n}", files=(f"dossier-{n}.pdf",),
                    to=f"Dr Dossier{n} <d{n}@test.mssante.fr>")  # fmt: skip

    client = client_for(alice)
    add(2)
    # 15: session, user, device, mailboxes, search (3), snippets, folders, counts, the unread
    # count of the page title; the same for 2 results or 12.
    with django_assert_max_num_queries(15):
        page = client.get(search_url(box), {"q": "dossier"})
    assert len(page.context["results"].results) == 2
    add(10)
    with django_assert_max_num_queries(15):
        page = client.get(search_url(box), {"q": "dossier", "to": "test"})
    assert len(page.context["results"].results) == 12


@POSTGRES
def test_postgresql_searches_through_the_indexes(alice, box):
    """The expressions in search.py must be exactly those of the indexes (migration 0005)."""
    deliver(box, subject="Radiologie", files=("bilan.pdf",), to="Dr Quintard <gq@x.mssante.fr>")
    checks = [  # (index, table, condition)
        ("mailbox_message_fts", "mailbox_message",
         f"{DOCUMENT} @@ to_tsquery('{CONFIG}', 'radiolo:*')"),
        ("mailbox_message_from_trgm", "mailbox_message", f"{SENDER} LIKE '%roux%'"),
        ("mailbox_recipient_address_trgm", "mailbox_recipient",
         f"{RECIPIENT} LIKE '%quintard%'"),
        ("mailbox_recipient_who_trgm", "mailbox_recipient r", f"{RECIPIENT_WHO} LIKE '%quint%'"),
        ("mailbox_attachment_name_trgm", "mailbox_attachment a", f"{ATTACHMENT_NAME} LIKE '%bil%'"),
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for index, table, condition in checks:
            cursor.execute(f"EXPLAIN SELECT * FROM {table} WHERE {condition}")  # noqa: S608
            plan = " ".join(row[0] for row in cursor.fetchall())
            assert index in plan, plan
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'mailbox_message_mailbox_date'"
        )
        assert cursor.fetchone()[0].endswith("(mailbox_id, date DESC, id DESC)")
