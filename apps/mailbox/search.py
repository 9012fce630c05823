"""Full-text search over one mailbox's messages.

What is searched: the subject, the sender (name and the local part of the address), the text
body, the recipients (names and address local parts) and the attachment file names. Every word
of the query must be found, each in any of those places ("scanner dupont" finds a scan report
sent to Dr Dupont); the last word is a prefix, so results come as the user types. Address
domains are left out of the free text (every MSSanté address ends in "mssante.fr", and "medecin"
or "sante" in a domain would match everything); the From and To filters match whole addresses.
The trash is left out unless it is the folder asked for. Results come newest first: that is
what a mail reader expects, and a relevance rank would have to read the document of every
matching message (tens of thousands for a common word) before keeping fifty.

PostgreSQL (production), with migration 0005:
- the message's own text is a stored tsvector column (``search_document``) under one GIN index
  on (mailbox_id, search_document), with French stemming and accent folding (``mssweb_fr``):
  "examens" finds "examen", "eleve" finds "Élevés";
- recipients and attachment names are matched as substrings through trigram indexes, then
  combined per word in Python (two small queries). A word found in the recipients or attachment
  names of more than ``EXTRA_CAP`` messages is matched in the message text only (it says
  nothing there, and gathering those messages would cost more than the search);
- the highlighted extract of the body comes from ``ts_headline`` (which knows the stems), with
  private-use characters as markers: its output is escaped and only those markers become
  ``<mark>``; the subject is highlighted in Python from the query's lexemes.

SQLite (development only): each query word must appear as a substring of the folded text (the
same fields) — no stemming ("examen" finds "examens" but not the reverse), a word inside a word
matches ("art" finds "cardiologie"), and every message of the mailbox is read and folded in
Python (a function registered on the connection): fine for a demo, not for 100,000 messages.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from apps.directory.extracts import normalize_search
from apps.mailbox.models import Attachment, Folder, FolderKind, Mailbox, Message, Recipient
from apps.mailbox.selectors import PATIENT_FIELDS, mailbox_get_for_user

MAX_WORDS = 8
MAX_LIMIT = 200
MAX_OFFSET = 2000  # an offset sorts every result before it
EXTRA_CAP = 100  # see the module docstring
EXTRA_MIN_LENGTH = 3  # trigram indexes need three characters
HEADLINE_CHARS = 20_000  # ts_headline reads the start of long bodies only

# Migration 0005 defines these (the column is not a model field); each folded expression must
# be written exactly as its index's.
CONFIG = "public.mssweb_fr"
DOCUMENT = '"mailbox_message"."search_document"'
SENDER = 'mssweb_fold("mailbox_message"."from_name" || \' \' || "mailbox_message"."from_address")'
RECIPIENT = "mssweb_fold(name || ' ' || address)"  # unqualified: Django aliases subquery tables
RECIPIENT_WHO = "mssweb_fold(r.name || ' ' || split_part(r.address, '@', 1))"
ATTACHMENT_NAME = "mssweb_fold(a.filename)"
START, STOP = "\ue000", "\ue001"  # ts_headline markers, removed from the text beforehand
HEADLINE_OPTIONS = (
    f"StartSel={START}, StopSel={STOP}, MaxWords=24, MinWords=12, ShortWord=2, "
    'MaxFragments=2, FragmentDelimiter=" … "'
)

LIST_FIELDS = (
    "id", "mailbox_id", "folder_id", "subject", "from_name", "from_address", "date", "snippet",
    "is_read", "is_flagged", "is_urgent", "has_attachments",
)  # fmt: skip


@dataclass(frozen=True)
class Hit:
    message: Message  # list fields only, with its folder attached
    subject_html: SafeString
    snippet_html: SafeString
    recipients_html: tuple[SafeString, ...] = ()  # recipients that matched a word
    attachments_html: tuple[SafeString, ...] = ()  # attachment names that matched a word


@dataclass(frozen=True)
class SearchResults:
    results: list[Hit]
    has_more: bool


def message_search(
    *,
    user,
    mailbox_id: int,
    query: str,
    folder_kind: str | None = None,
    from_: str = "",
    to: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
    has_attachment: bool = False,
    unread: bool = False,
    urgent: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> SearchResults:
    """Messages of a mailbox ``user`` may open (404 otherwise) matching ``query`` and the
    filters, newest first. Nothing at all asked (no word, no filter): no results."""
    mailbox = mailbox_get_for_user(user=user, mailbox_id=mailbox_id)
    words = normalize_search(query).split()[:MAX_WORDS]
    from_words = normalize_search(from_).split()[:MAX_WORDS]
    to_words = normalize_search(to).split()[:MAX_WORDS]
    filtered = any((from_words, to_words, date_from, date_to, has_attachment, unread, urgent))
    if not words and not filtered and not folder_kind:
        return SearchResults(results=[], has_more=False)
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, min(offset, MAX_OFFSET))

    folders = {f.pk: f for f in Folder.objects.filter(mailbox=mailbox)}
    if folder_kind:
        scope = _Scope([pk for pk, f in folders.items() if f.kind == folder_kind], inside=True)
        if not scope.folder_ids:
            return SearchResults(results=[], has_more=False)
    else:
        trash = [pk for pk, f in folders.items() if f.kind == FolderKind.TRASH]
        scope = _Scope(trash, inside=False)
    if connection.vendor == "postgresql":
        search = _PostgresSearch(mailbox=mailbox, words=words, scope=scope)
    else:
        search = _FallbackSearch(mailbox=mailbox, words=words)
    base = _filtered(
        Message.objects.filter(scope.q(), mailbox=mailbox), from_words=from_words,
        to_words=to_words, date_from=date_from, date_to=date_to, has_attachment=has_attachment,
        unread=unread, urgent=urgent,
    )  # fmt: skip
    rows = search.rows(base, offset=offset, limit=limit)
    page = rows[:limit]
    for message in page:
        message.folder = folders[message.folder_id]
    snippets = search.snippets(page)
    recipients, attachments = _matched_names(page, mailbox=mailbox, words=words)
    hits = [
        Hit(
            message=m,
            subject_html=search.highlight(m.subject),
            snippet_html=snippets.get(m.pk, escape(m.snippet)),
            recipients_html=recipients.get(m.pk, ()),
            attachments_html=attachments.get(m.pk, ()),
        )
        for m in page
    ]
    return SearchResults(results=hits, has_more=len(rows) > limit)


@dataclass(frozen=True)
class _Scope:
    """The folders searched: these (``inside``) or all but these."""

    folder_ids: list[int]
    inside: bool

    def q(self) -> Q:
        q = Q(folder_id__in=self.folder_ids)
        return q if self.inside else ~q

    def sql(self, column: str) -> tuple[str, list]:
        sql = f"{column} = ANY(%s)"
        return (sql if self.inside else f"NOT ({sql})"), [self.folder_ids]


def _condition(sql: str, params: list) -> RawSQL:
    """A WHERE condition. Only this module's constants are ever formatted into ``sql``; every
    value is a parameter."""
    return RawSQL(sql, params, output_field=BooleanField())  # noqa: S611


def _fold_like(folded: str, words: Iterable[str]) -> list[RawSQL]:
    """``folded LIKE '%word%'`` for each word (ASCII letters and digits only: nothing to escape
    in a LIKE pattern)."""
    return [_condition(f"{folded} LIKE %s", [f"%{w}%"]) for w in words]


def _filtered(
    qs: QuerySet[Message],
    *,
    from_words: list[str],
    to_words: list[str],
    date_from: date | None,
    date_to: date | None,
    has_attachment: bool,
    unread: bool,
    urgent: bool,
) -> QuerySet[Message]:
    if from_words:
        qs = qs.filter(*_fold_like(SENDER, from_words))
    if to_words:
        recipients = Recipient.objects.filter(
            *_fold_like(RECIPIENT, to_words), message_id=OuterRef("pk")
        )
        qs = qs.filter(Exists(recipients))
    if date_from:
        qs = qs.filter(date__gte=_start_of_day(date_from))
    if date_to:
        qs = qs.filter(date__lt=_start_of_day(date_to + timedelta(days=1)))
    if has_attachment:
        qs = qs.filter(has_attachments=True)
    if unread:
        qs = qs.filter(is_read=False)
    if urgent:
        qs = qs.filter(is_urgent=True)
    return qs


def _start_of_day(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _newest_first(qs: QuerySet[Message], *fields: str) -> QuerySet[Message]:
    # With the patient a message was written to, joined (the patient badge).
    return (
        qs.order_by("-date", "-id")
        .only(*LIST_FIELDS, *PATIENT_FIELDS, *fields)
        .select_related("patient")
    )


class _PostgresSearch:
    def __init__(self, *, mailbox: Mailbox, words: list[str], scope: _Scope):
        self.mailbox = mailbox
        self.words = words
        self.scope = scope
        self.lexemes: list[str] = []

    @staticmethod
    def _tsquery(words: list[str], *, join: str = " & ") -> str:
        """to_tsquery syntax from folded words (letters and digits only, so nothing in them is
        an operator); the last one is a prefix."""
        return join.join([*words[:-1], f"{words[-1]}:*"])

    @staticmethod
    def _matches(tsquery: str) -> RawSQL:  # the index mailbox_message_fts
        return _condition(f"{DOCUMENT} @@ to_tsquery('{CONFIG}', %s)", [tsquery])

    def rows(self, base: QuerySet[Message], *, offset: int, limit: int) -> list[Message]:
        if not self.words:
            return list(_newest_first(base)[offset : offset + limit + 1])
        end = offset + limit + 1
        words = self.words
        rows = list(_newest_first(base.filter(self._matches(self._tsquery(words))))[:end])
        extra = self._extra_ids()
        if extra:
            rows = self._merge(rows, self._extra_rows(base, extra, end=end))
        last = words[-1]
        if not rows and offset == 0 and len(last) >= 8:
            # A word typed into a suffix that the stemmer removes from the whole word
            # ("hospitalisati" → "hospitalisat" while "hospitalisation" → "hospitalis"): try a
            # shorter prefix once.
            self.words = [*words[:-1], last[: len(last) - 4]]
            rows = list(_newest_first(base.filter(self._matches(self._tsquery(self.words))))[:end])
        return rows[offset:]

    def _extra_ids(self) -> dict[int, set[int]]:
        """For each word (by position) the messages of the mailbox, in scope, whose recipients or
        attachment names contain it; words too short or too common are left out."""
        # Only constants are formatted into the SQL below; every value is a parameter.
        arms, params = [], []
        scope_sql, scope_params = self.scope.sql("m.folder_id")
        own = self.mailbox.address.lower()
        for k, word in enumerate(self.words):
            if len(word) < EXTRA_MIN_LENGTH:
                continue
            pattern = f"%{word}%"
            arms.append(
                "(SELECT %s, 'r', r.message_id FROM mailbox_recipient r "  # noqa: S608
                "JOIN mailbox_message m ON m.id = r.message_id "
                f"WHERE {RECIPIENT_WHO} LIKE %s "
                f"AND lower(r.address) <> %s AND m.mailbox_id = %s AND {scope_sql} LIMIT %s)"
            )
            params += [k, pattern, own, self.mailbox.pk, *scope_params, EXTRA_CAP + 1]
            arms.append(
                "(SELECT %s, 'a', a.message_id FROM mailbox_attachment a "  # noqa: S608
                "JOIN mailbox_message m ON m.id = a.message_id "
                f"WHERE {ATTACHMENT_NAME} LIKE %s AND m.mailbox_id = %s AND {scope_sql} "
                "LIMIT %s)"
            )
            params += [k, pattern, self.mailbox.pk, *scope_params, EXTRA_CAP + 1]
        if not arms:
            return {}
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(arms), params)  # constants and parameters only
            found = cursor.fetchall()
        counts: dict[tuple[int, str], int] = {}
        extra: dict[int, set[int]] = {}
        for k, source, message_id in found:
            counts[k, source] = counts.get((k, source), 0) + 1
            extra.setdefault(k, set()).add(message_id)
        for (k, _source), count in counts.items():
            if count > EXTRA_CAP:
                extra.pop(k, None)
        return extra

    def _extra_rows(
        self, base: QuerySet[Message], extra: dict[int, set[int]], *, end: int
    ) -> list[Message]:
        """Messages found through their recipients or attachments for some words: each other
        word must then be in the message's own text (checked on these few rows)."""
        candidates = set().union(*extra.values())
        conditions = []
        for k, word in enumerate(self.words):
            tsquery = self._tsquery([word]) if k == len(self.words) - 1 else word
            text = (
                f"(numnode(to_tsquery('{CONFIG}', %s)) = 0 "
                f"OR {DOCUMENT} @@ to_tsquery('{CONFIG}', %s))"
            )
            if k in extra:
                sql, params = f'("mailbox_message"."id" = ANY(%s) OR {text})', [
                    sorted(extra[k]), tsquery, tsquery,
                ]  # fmt: skip
            else:
                sql, params = text, [tsquery, tsquery]
            conditions.append(_condition(sql, params))
        return list(_newest_first(base.filter(*conditions, pk__in=sorted(candidates)))[:end])

    @staticmethod
    def _merge(first: list[Message], second: list[Message]) -> list[Message]:
        rows = {m.pk: m for m in [*first, *second]}
        return sorted(rows.values(), key=lambda m: (m.date, m.pk), reverse=True)

    def snippets(self, page: list[Message]) -> dict[int, SafeString]:
        if not self.words or not page:
            return {}
        either = self._tsquery(self.words, join=" | ")
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, ts_headline('{CONFIG}', translate(left(text_body, %s), %s, ''), "  # noqa: S608
                f"to_tsquery('{CONFIG}', %s), %s), querytree(to_tsquery('{CONFIG}', %s)) "
                "FROM mailbox_message WHERE id = ANY(%s)",
                [HEADLINE_CHARS, START + STOP, either, HEADLINE_OPTIONS, either,
                 [m.pk for m in page]],
            )  # fmt: skip
            found = cursor.fetchall()
        if found:
            self.lexemes = re.findall(r"'([^']*)'", found[0][2])
        return {pk: _marked_to_html(headline) for pk, headline, _tree in found}

    def highlight(self, text: str) -> SafeString:
        """Words starting with one of the query's lexemes (stems, accents folded, stop words
        left out): "Examens" for "examen", "Élevés" for "eleve"."""
        prefixes = tuple(self.lexemes or self.words)
        return _highlight_words(text, lambda word: word.startswith(prefixes))


class _FallbackSearch:
    """SQLite: substring matching of folded words, in Python, over every candidate row."""

    HAYSTACK = (
        '"mailbox_message"."subject" || \' \' || "mailbox_message"."from_name" || \' \' || '
        'substr("mailbox_message"."from_address", 1, '
        "instr(\"mailbox_message\".\"from_address\" || '@', '@') - 1) || ' ' || "
        '"mailbox_message"."text_body" || \' \' || '
        "coalesce((SELECT group_concat(r.name || ' ' || "
        "substr(r.address, 1, instr(r.address || '@', '@') - 1), ' ') "
        'FROM mailbox_recipient r WHERE r.message_id = "mailbox_message"."id" '
        "AND lower(r.address) <> %s), '') || ' ' || "
        "coalesce((SELECT group_concat(a.filename, ' ') FROM mailbox_attachment a "
        'WHERE a.message_id = "mailbox_message"."id"), \'\')'
    )

    def __init__(self, *, mailbox: Mailbox, words: list[str]):
        self.mailbox = mailbox
        self.words = words
        connection.ensure_connection()  # the functions live on the connection: register them
        sqlite = connection.connection
        sqlite.create_function("mssweb_fold", 1, _fold, deterministic=True)
        sqlite.create_function("mssweb_match", 2, _match_all, deterministic=True)

    def rows(self, base: QuerySet[Message], *, offset: int, limit: int) -> list[Message]:
        if self.words:
            base = base.filter(
                _condition(
                    f"mssweb_match({self.HAYSTACK}, %s)",
                    [self.mailbox.address.lower(), " ".join(self.words)],
                )
            )
        return list(_newest_first(base, "text_body")[offset : offset + limit + 1])

    def _is_match(self, word: str) -> bool:
        return any(w in word for w in self.words)

    def snippets(self, page: list[Message]) -> dict[int, SafeString]:
        if not self.words:
            return {}
        return {m.pk: _extract(m.text_body, self._is_match) for m in page if m.text_body}

    def highlight(self, text: str) -> SafeString:
        return _highlight_words(text, self._is_match)


def _fold(text: str | None) -> str:
    return normalize_search(text or "")


def _match_all(haystack: str | None, words: str) -> bool:
    folded = normalize_search(haystack or "")
    return all(word in folded for word in words.split())


def _matched_names(
    page: list[Message], *, mailbox: Mailbox, words: list[str]
) -> tuple[dict[int, tuple[SafeString, ...]], dict[int, tuple[SafeString, ...]]]:
    """Recipients and attachment names of the page's messages that contain a query word, so
    that a message found through them shows why."""
    useful = [w for w in words if len(w) >= EXTRA_MIN_LENGTH]
    if not useful or not page:
        return {}, {}
    ids = [m.pk for m in page]
    names = (
        Recipient.objects.filter(message_id__in=ids)
        .exclude(address__iexact=mailbox.address)
        .annotate(source=Value("r"))
        .values_list("message_id", "source", "name", "address")
        .union(
            Attachment.objects.filter(message_id__in=ids, inline=False)
            .annotate(source=Value("a"), nothing=Value(""))
            .values_list("message_id", "source", "filename", "nothing"),
            all=True,
        )
    )

    def is_match(word: str) -> bool:
        return any(w in word for w in useful)

    recipients: dict[int, list[SafeString]] = {}
    attachments: dict[int, list[SafeString]] = {}
    for message_id, source, name, address in names:
        if source == "r":
            local = address.partition("@")[0]
            if not any(w in normalize_search(f"{name} {local}") for w in useful):
                continue
            label = f"{name} <{address}>" if name else address
            recipients.setdefault(message_id, []).append(_highlight_words(label, is_match))
        elif any(w in normalize_search(name) for w in useful):
            attachments.setdefault(message_id, []).append(_highlight_words(name, is_match))
    return (
        {k: tuple(v[:3]) for k, v in recipients.items()},
        {k: tuple(v[:3]) for k, v in attachments.items()},
    )


# --- Highlighting: everything is escaped, only what we mark becomes <mark> ---------------------

_WORD = re.compile(r"[^\W_]+")


def _highlight_words(text: str, is_match: Callable[[str], bool]) -> SafeString:
    """``text`` escaped, with each word whose folded form ``is_match`` wrapped in <mark>."""
    out, last = [], 0
    for found in _WORD.finditer(text):
        if is_match(normalize_search(found.group())):
            out += [escape(text[last : found.start()]), "<mark>", escape(found.group()), "</mark>"]
            last = found.end()
    out.append(escape(text[last:]))
    return mark_safe("".join(out))  # noqa: S308 - every piece of text above is escaped


def _extract(text: str, is_match: Callable[[str], bool], *, before: int = 8, words: int = 30):
    """About ``words`` words of ``text`` around its first match (or its start), highlighted."""
    tokens = list(_WORD.finditer(text))
    if not tokens:
        return escape(" ".join(text.split())[:200])
    first = next((i for i, t in enumerate(tokens) if is_match(normalize_search(t.group()))), 0)
    start = max(0, first - before) if first else 0
    end = min(len(tokens), start + words)
    begin = tokens[start].start() if start else 0
    finish = tokens[end - 1].end() if end < len(tokens) else len(text)
    piece = _highlight_words(" ".join(text[begin:finish].split()), is_match)
    prefix = "… " if start else ""
    suffix = " …" if end < len(tokens) else ""
    return mark_safe(f"{prefix}{piece}{suffix}")  # noqa: S308 - piece is safe, the rest constant


def _marked_to_html(headline: str) -> SafeString:
    """ts_headline's output (plain text, with START/STOP around matches) as safe HTML."""
    out, open_ = [], False
    for piece in re.split(f"([{START}{STOP}])", " ".join(headline.split())):
        if piece == START:
            if not open_:
                out.append("<mark>")
                open_ = True
        elif piece == STOP:
            if open_:
                out.append("</mark>")
                open_ = False
        else:
            out.append(escape(piece))
    if open_:
        out.append("</mark>")
    return mark_safe("".join(out))  # noqa: S308 - text escaped, only our own tags added
