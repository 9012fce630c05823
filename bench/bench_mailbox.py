"""One big mailbox on PostgreSQL: folder page, message page, full-text search.

    .venv/bin/python bench/bench_mailbox.py [--messages 100000] [--others 50000]
                                            [--requests 300] [--measure-only]

1. A fresh database ``mssweb_bench_mail`` (on the server of BENCH_MAIL_DATABASE_URL, default
   postgres://postgres@127.0.0.1:5432/mssweb_bench_mail), migrated. One user whose mailbox holds
   --messages messages (French clinical-looking subjects and bodies of 300–3,000 characters, a
   third also in HTML, 1–3 recipients, 10 % with attachments sharing one stored blob, over five
   years; 70 % inbox, 18 % sent, 7 % archive, 3 % trash, 2 % drafts), and --others messages in
   40 other mailboxes so that every index also holds other people's mail. Rows go in with
   bulk_create; the search indexes are dropped during the load and rebuilt after it (as the
   migration makes them), then VACUUM ANALYZE.
2. ≥ --requests measurements each, after a warm-up, one connection, in-process (Django test
   client: the whole middleware and template stack, no socket): the inbox page (and an older
   page of it), opening a message, ``message_search`` with realistic queries of several kinds
   (SQL time apart), and the search page.
3. EXPLAIN (ANALYZE, BUFFERS) of the queries of typical searches.

Prints JSON, then the plans. --measure-only keeps the database of the previous run.
"""

import argparse
import importlib
import io
import json
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _pg import django_on  # noqa: E402 - bench/ is the script folder

BENCH_URL = os.environ.get(
    "BENCH_MAIL_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mssweb_bench_mail"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--measure-only", action="store_true")
    parser.add_argument(
        "--proposed-unread-counts", action="store_true",
        help="measure the pages with proposed_folders_with_unread() in place of the selector's",
    )  # fmt: skip
    args = parser.parse_args()

    django_on(BENCH_URL, fresh=not args.measure_only)
    from django.conf import settings
    from django.core.management import call_command

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    figures: dict = {"unread_counts": "selectors.folders_with_unread"}
    if args.proposed_unread_counts:
        from apps.mailbox import selectors

        selectors.folders_with_unread = proposed_folders_with_unread
        figures["unread_counts"] = "proposed_folders_with_unread (bench/bench_mailbox.py)"
    if not args.measure_only:
        load(args, figures)
    describe(figures)
    measure(args, figures)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    print_plans()


# --- Data ---------------------------------------------------------------------------------------

SYLLABLES = ["ber", "mar", "du", "le", "ro", "lan", "gui", "tan", "ker", "bou", "cha", "vil", "mon",
             "del", "four", "nier", "gau", "thier", "pel", "lo", "ri", "sa", "ve", "co", "mau",
             "bri", "chal", "dre", "fa", "gon"]  # fmt: skip
FIRST_NAMES = ["Marie", "Jean", "Pierre", "Michel", "Nathalie", "Isabelle", "Philippe", "Sylvie",
               "Catherine", "Françoise", "Hélène", "Jérôme", "Élodie", "Céline", "Thierry",
               "Anne", "Nicolas", "Sophie", "Laurent", "Chloé", "Gaëlle", "Loïc", "Amélie",
               "Benoît", "Léa", "Zoé", "Maëlle", "Hervé", "Agnès", "Rémi"]  # fmt: skip
EXAMS = ["échographie abdominale", "IRM cérébrale", "scanner thoracique", "radiographie du genou",
         "électrocardiogramme", "coloscopie", "mammographie", "scintigraphie osseuse",
         "doppler veineux", "fibroscopie gastrique", "échocardiographie", "IRM lombaire",
         "densitométrie osseuse", "spirométrie", "holter tensionnel", "biopsie hépatique",
         "TEP scanner", "angioscanner", "électromyogramme", "polysomnographie"]  # fmt: skip
TESTS = ["NFS", "ionogramme", "créatininémie", "TSH", "HbA1c", "bilan lipidique", "CRP",
         "ferritine", "INR", "troponine", "BNP", "bilan hépatique", "vitamine D",
         "PSA"]  # fmt: skip
REASONS = ["douleurs thoraciques atypiques", "dyspnée d'effort", "lombalgie chronique",
           "céphalées récidivantes", "suivi de diabète de type 2", "hypertension artérielle",
           "fibrillation auriculaire", "bilan de chute", "amaigrissement inexpliqué",
           "toux persistante", "anémie ferriprive", "insuffisance rénale modérée",
           "suspicion de phlébite", "vertiges positionnels", "troubles du sommeil",
           "gonalgie droite", "prise en charge post-opératoire", "bilan préopératoire"]  # fmt: skip
DRUGS = ["amoxicilline", "paracétamol", "metformine", "ramipril", "apixaban", "lévothyroxine",
         "bisoprolol", "atorvastatine", "furosémide", "oméprazole", "prednisolone",
         "tramadol", "insuline glargine", "amlodipine"]  # fmt: skip
FINDINGS = ["un souffle systolique discret", "une sensibilité de la fosse iliaque droite",
            "des œdèmes des membres inférieurs", "une auscultation pulmonaire normale",
            "une tension artérielle élevée à 160/95", "un examen neurologique sans anomalie",
            "une hépatomégalie modérée", "une raideur lombaire", "un érythème localisé",
            "une tachycardie régulière"]  # fmt: skip
SPECIALTIES = ["cardiologie", "pneumologie", "radiologie", "gastro-entérologie", "neurologie",
               "rhumatologie", "endocrinologie", "néphrologie", "gériatrie",
               "dermatologie"]  # fmt: skip
FILLER_TEXT = """le la les de des du un une et à en pour dans sur avec par au aux est sont a été
patient patiente bilan examen traitement suivi résultats consultation rendez-vous contrôle
évolution favorable semaine mois jours surveillance clinique prescription dossier courrier
hospitalisation service médecin docteur confrère avis demande retour domicile famille infirmier
kinésithérapie reprise arrêt travail douleur normal normale stable amélioration persistante
légère modérée"""
FILLER = FILLER_TEXT.split()  # most frequent first


class Vocabulary:
    def __init__(self, rnd: random.Random):
        self.rnd = rnd
        surnames: set[str] = set()
        while len(surnames) < 4000:
            surnames.add("".join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(2, 3))))
        self.surnames = sorted(s.capitalize() for s in surnames)
        self.colleagues = [
            (f"Dr {rnd.choice(FIRST_NAMES)} {rnd.choice(self.surnames)}",
             f"{rnd.choice(['hopital', 'clinique', 'cabinet', 'chu', 'ch'])}-"
             f"{rnd.choice(self.surnames).lower()}.test.mssante.fr")
            for _ in range(600)
        ]  # fmt: skip
        # A few correspondents write most of the mail.
        self.colleague_weights = [1 / (rank + 1) ** 0.8 for rank in range(len(self.colleagues))]
        self.filler_weights = [1 / (rank + 1) for rank in range(len(FILLER))]

    def colleague(self) -> tuple[str, str]:
        name, domain = self.rnd.choices(self.colleagues, self.colleague_weights)[0]
        first, last = name.split()[1:3]
        return name, f"{first.lower()}.{last.lower()}@{domain}".encode("ascii", "ignore").decode()

    def patient(self) -> tuple[str, str]:
        return self.rnd.choice(self.surnames).upper(), self.rnd.choice(FIRST_NAMES)

    def sentence(self, patient: tuple[str, str]) -> str:
        rnd = self.rnd
        last, first = patient
        return rnd.choice([
            f"Je vous remercie de m'avoir adressé {rnd.choice(['Mme', 'M.'])} {last} {first}, "
            f"{rnd.randint(18, 95)} ans, pour {rnd.choice(REASONS)}.",
            f"L'examen clinique retrouve {rnd.choice(FINDINGS)}.",
            f"Le bilan biologique montre une {rnd.choice(TESTS)} à {rnd.randint(1, 400)} "
            f"et une {rnd.choice(TESTS)} normale.",
            f"{rnd.choice(EXAMS).capitalize()} réalisée le {rnd.randint(1, 28)}/"
            f"{rnd.randint(1, 12):02d} : {rnd.choice(['sans anomalie', 'aspect rassurant', 'à recontrôler dans six mois', 'lésion suspecte à explorer'])}.",  # noqa: E501
            f"Je propose de poursuivre {rnd.choice(DRUGS)} {rnd.choice([5, 10, 20, 40, 500, 1000])}"
            f" mg et de réaliser une {rnd.choice(EXAMS)}.",
            f"Antécédents : {rnd.choice(REASONS)}, {rnd.choice(REASONS)}.",
            f"Avis de {rnd.choice(SPECIALTIES)} souhaité concernant {rnd.choice(REASONS)}.",
            "Merci de me tenir informé de l'évolution.",
            " ".join(rnd.choices(FILLER, self.filler_weights, k=rnd.randint(8, 20))).capitalize()
            + ".",
        ])  # fmt: skip

    def message(self) -> dict:
        rnd = self.rnd
        patient = self.patient()
        target = int(300 * 10 ** rnd.random())  # 300–3,000 characters, log-uniform
        sentences = ["Bonjour cher confrère,", ""]
        while sum(map(len, sentences)) < target:
            sentences.append(self.sentence(patient))
        sentences += ["", "Bien confraternellement,"]
        body = "\n".join(sentences)[: max(target, 300)]
        last, first = patient
        subject = rnd.choice([
            f"CR {rnd.choice(EXAMS)} {last} {first}",
            f"Re: Demande d'avis — {rnd.choice(REASONS)}",
            f"Résultats {rnd.choice(TESTS)} {last}",
            f"Courrier de sortie d'hospitalisation — {last} {first}",
            f"Ordonnance {last}",
            f"Dossier patient n° {rnd.randint(1000, 99999)}",
            f"RDV {rnd.choice(SPECIALTIES)} {last}",
            f"Avis {rnd.choice(SPECIALTIES)} : {rnd.choice(REASONS)}",
        ])  # fmt: skip
        files = []
        if rnd.random() < 0.10:
            files.append(rnd.choice([
                f"CR_{rnd.choice(EXAMS).split()[0]}_{last}_{first}.pdf",
                f"ordonnance_{last.lower()}.pdf", f"bilan_sanguin_{last}.pdf", "IHE_XDM.ZIP",
                f"courrier-sortie-{last.lower()}.pdf", "image001.png",
            ]))  # fmt: skip
            if rnd.random() < 0.2:
                files.append("IHE_XDM.ZIP")
        return {"subject": subject, "body": body, "files": files, "patient": patient}


def load(args, figures: dict) -> None:
    from django.db import connection

    from apps.accounts.management.commands.seed_demo import rpps
    from apps.mailbox.models import Mailbox, MailboxKind
    from tests.conftest import make_user

    user = make_user(email="bench@test.mssante.fr", idnat=rpps("9970099999"),
                     first_name="Claire", last_name="Bench")  # fmt: skip
    mailbox = Mailbox.objects.get(owner=user)
    domain = mailbox.domain
    others = [
        Mailbox.objects.create(address=f"service{n}@test.mssante.fr", domain=domain,
                               kind=MailboxKind.ORGANISATIONAL, display_name=f"Service {n}")
        for n in range(40)
    ]  # fmt: skip
    migration = importlib.import_module("apps.mailbox.migrations.0005_message_search")
    indexes = [s for s in migration.FORWARD if "CREATE INDEX" in s]
    with connection.cursor() as cursor:  # rebuilt after the load, as the migration makes them
        for statement in indexes:
            cursor.execute(f"DROP INDEX IF EXISTS {statement.split('EXISTS')[1].split()[0]}")
    started = time.perf_counter()
    rnd = random.Random(42)
    vocabulary = Vocabulary(rnd)
    fill(mailbox, args.messages, vocabulary, rnd)
    per_other = args.others // len(others)
    for other in others:
        fill(other, per_other, vocabulary, rnd)
    figures["load_rows_s"] = round(time.perf_counter() - started, 1)

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for statement in indexes:
            cursor.execute(statement)
    figures["search_indexes_build_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    figures["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)


def fill(mailbox, count: int, vocabulary: Vocabulary, rnd: random.Random) -> None:
    from django.db import transaction
    from django.utils import timezone

    from apps.attachments.services import blob_store
    from apps.mailbox.models import (
        Attachment,
        Conversation,
        FolderKind,
        Message,
        Recipient,
        RecipientKind,
    )
    from apps.mailbox.services import folders_ensure

    folders = folders_ensure(mailbox=mailbox)
    blob = blob_store(source=io.BytesIO(b"%PDF-1.4 bench attachment\n" * 40))
    kinds = [FolderKind.INBOX] * 70 + [FolderKind.SENT] * 18 + [FolderKind.ARCHIVE] * 7 + [
        FolderKind.TRASH] * 3 + [FolderKind.DRAFTS] * 2  # fmt: skip
    now = timezone.now()
    own_name = mailbox.display_name
    batch = 2000
    for start in range(0, count, batch):
        size = min(batch, count - start)
        drafts = [vocabulary.message() for _ in range(size)]
        with transaction.atomic():
            conversations = Conversation.objects.bulk_create(
                Conversation(mailbox=mailbox, subject=d["subject"], last_message_at=now)
                for d in drafts
            )
            messages, people = [], []
            for n, (draft, conversation) in enumerate(zip(drafts, conversations, strict=True)):
                kind = rnd.choice(kinds)
                # Oldest first, newest last: ids grow with dates, as in real life.
                age = timedelta(days=5 * 365 * (1 - (start + n) / count) + rnd.random())
                sender = vocabulary.colleague()
                outgoing = kind in (FolderKind.SENT, FolderKind.DRAFTS)
                others = [vocabulary.colleague() for _ in range(rnd.choice([0, 0, 0, 1, 2]))]
                html = ""
                if rnd.random() < 0.33:
                    html = "".join(f"<p>{line}</p>" for line in draft["body"].split("\n"))
                messages.append(Message(
                    mailbox=mailbox, folder=folders[kind], conversation=conversation,
                    message_id=f"{start + n}.{rnd.getrandbits(64):x}@bench",
                    subject=draft["subject"],
                    from_name=own_name if outgoing else sender[0],
                    from_address=mailbox.address if outgoing else sender[1],
                    date=now - age, received_at=now - age,
                    snippet=" ".join(draft["body"].split())[:200], text_body=draft["body"],
                    html_body=html, size=len(draft["body"]) + len(html) + 1500,
                    is_read=rnd.random() < 0.95 or kind != FolderKind.INBOX,
                    is_flagged=rnd.random() < 0.03, is_urgent=rnd.random() < 0.02,
                    has_attachments=bool(draft["files"]),
                ))  # fmt: skip
                to = [sender] if outgoing else [(own_name, mailbox.address)]
                people.append(
                    [(RecipientKind.TO, name, address) for name, address in to]
                    + [(RecipientKind.CC, name, address) for name, address in others]
                )
            messages = Message.objects.bulk_create(messages)
            Recipient.objects.bulk_create(
                Recipient(message=message, kind=kind, name=name, address=address)
                for message, rows in zip(messages, people, strict=True)
                for kind, name, address in rows
            )
            Attachment.objects.bulk_create(
                Attachment(message=message, blob=blob, filename=filename,
                           content_type="application/pdf", size=blob.size)
                for message, draft in zip(messages, drafts, strict=True)
                for filename in draft["files"]
            )  # fmt: skip


def describe(figures: dict) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.relkind, pg_relation_size(c.oid), pg_total_relation_size(c.oid) "
            "FROM pg_class c WHERE c.relname LIKE 'mailbox_message%%' "
            "OR c.relname LIKE 'mailbox_recipient%%' OR c.relname LIKE 'mailbox_attachment%%' "
            "OR c.relname LIKE 'message_%%' ORDER BY c.relname"
        )
        figures["sizes_mb"] = {
            name: round((total if kind == "r" else own) / 1e6, 1)
            for name, kind, own, total in cursor.fetchall()
            if kind in ("r", "i")
        }
        cursor.execute(
            "SELECT m.mailbox_id, count(*), avg(length(text_body))::int FROM mailbox_message m "
            "GROUP BY m.mailbox_id ORDER BY count(*) DESC LIMIT 1"
        )
        mailbox_id, count, avg_body = cursor.fetchone()
        figures["big_mailbox"] = {"id": mailbox_id, "messages": count, "avg_body_chars": avg_body}
        cursor.execute("SELECT count(*) FROM mailbox_message")
        figures["all_messages"] = cursor.fetchone()[0]


# --- Measurements -------------------------------------------------------------------------------


def proposed_folders_with_unread(*, mailbox):
    """selectors.folders_with_unread, counting unread messages from the partial index
    message_folder_unread (a few thousand entries) rather than joining every message of the
    mailbox to its folder (~150 ms for 100,000 messages)."""
    from django.db.models import Count

    from apps.mailbox.models import FolderKind, Message

    order = {kind: n for n, kind in enumerate(FolderKind.values)}
    folders = list(mailbox.folders.order_by("name"))
    unread = dict(
        Message.objects.filter(folder__in=folders, is_read=False)
        .order_by().values_list("folder_id").annotate(n=Count("id"))
    )  # fmt: skip
    by_id = {f.pk: f for f in folders}
    for folder in folders:
        folder.unread = unread.get(folder.pk, 0)

    def key(folder):
        top = by_id.get(folder.parent_id, folder)
        return (order[top.kind], top.name.lower(), folder.parent_id is not None,
                folder.name.lower())  # fmt: skip

    return sorted(folders, key=key)


def _percentiles(values: list[float]) -> dict:
    cuts = statistics.quantiles(values, n=100)
    return {
        "n": len(values),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


def make_queries(mailbox_id: int, count: int) -> list[tuple[str, str, dict]]:
    """(kind, query, filters), realistic: names of patients and colleagues, exams, words
    everybody writes, prefixes as typed, words with filters."""
    from django.utils import timezone

    from apps.mailbox.models import Message, Recipient

    rnd = random.Random(7)
    today = timezone.localdate()
    subjects = list(
        Message.objects.filter(mailbox_id=mailbox_id)
        .order_by("?")
        .values_list("subject", flat=True)[:400]
    )
    colleagues = list(
        Recipient.objects.filter(message__mailbox_id=mailbox_id, kind="cc")
        .values_list("name", flat=True).distinct()[:200]
    )  # fmt: skip
    patients = [w for s in subjects for w in s.split() if w.isupper() and len(w) > 3]
    medical = [w for phrase in EXAMS + REASONS + DRUGS + SPECIALTIES for w in phrase.split()
               if len(w) > 5]  # fmt: skip
    frequent = ["patient", "bilan", "examen", "traitement", "compte rendu", "consultation",
                "suivi", "confrère"]  # fmt: skip
    kinds = ["patient name", "colleague name", "medical word", "frequent word", "two words",
             "prefix as typed", "word + filters", "filters only"]  # fmt: skip
    queries = []
    for n in range(count):
        kind = kinds[n % len(kinds)]
        if kind == "patient name":
            queries.append((kind, rnd.choice(patients).lower(), {}))
        elif kind == "colleague name":
            queries.append((kind, rnd.choice(colleagues).split()[-1], {}))
        elif kind == "medical word":
            queries.append((kind, rnd.choice(medical), {}))
        elif kind == "frequent word":
            queries.append((kind, rnd.choice(frequent), {}))
        elif kind == "two words":
            exam = rnd.choice(EXAMS).split()
            queries.append((kind, " ".join(exam[:2]) if len(exam) > 1 else
                            f"{exam[0]} {rnd.choice(patients).lower()}", {}))  # fmt: skip
        elif kind == "prefix as typed":
            word = rnd.choice(medical + patients).lower()
            queries.append((kind, word[: rnd.randint(4, max(4, len(word) - 1))], {}))
        elif kind == "word + filters":
            filters = rnd.choice([
                {"unread": True}, {"has_attachment": True}, {"folder_kind": "inbox"},
                {"folder_kind": "sent"}, {"date_from": today - timedelta(days=365)},
                {"urgent": True},
            ])  # fmt: skip
            queries.append((kind, rnd.choice(medical + frequent), filters))
        else:
            filters = rnd.choice([
                {"from_": rnd.choice(colleagues).split()[-1]},
                {"to": rnd.choice(colleagues).split()[-1]},
                {"has_attachment": True, "unread": True},
                {"date_from": today - timedelta(days=400),
                 "date_to": today - timedelta(days=380)},
            ])  # fmt: skip
            queries.append((kind, "", filters))
    return queries


def measure(args, figures: dict) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from apps.accounts.models import User
    from apps.mailbox.models import FolderKind, Message
    from apps.mailbox.search import message_search
    from tests.conftest import login

    user = User.objects.get(email="bench@test.mssante.fr")
    mailbox_id = figures["big_mailbox"]["id"]
    search_path = reverse("mailbox:search", args=[mailbox_id])
    client = Client()
    login(client, user)
    n = args.requests

    def timed(get, items, *, warm: int = 30) -> tuple[list[float], list[float], list[int]]:
        for item in items[:warm]:
            get(item)
        wall, sql, counts = [], [], []
        for item in items:
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                get(item)
                wall.append(time.perf_counter() - started)
            sql.append(sum(float(q["time"]) for q in captured.captured_queries))
            counts.append(len(captured.captured_queries))
        return wall, sql, counts

    def page(path, params=None):
        response = client.get(path, params or {})
        assert response.status_code == 200, (path, response.status_code)
        return response

    inbox = f"/messagerie/{mailbox_id}/inbox/"
    wall, sql, counts = timed(lambda _: page(inbox), list(range(n)))
    figures["folder_page_inbox"] = {**_percentiles(wall), "sql": _percentiles(sql),
                                    "queries": max(counts)}  # fmt: skip
    older = list(
        Message.objects.filter(mailbox_id=mailbox_id, folder__kind=FolderKind.INBOX)
        .order_by("?").values_list("date", "id")[:n]
    )  # fmt: skip
    wall, sql, counts = timed(
        lambda row: page(inbox, {"avant": f"{row[0].isoformat()}_{row[1]}"}), older
    )
    figures["folder_page_older"] = {**_percentiles(wall), "sql": _percentiles(sql),
                                    "queries": max(counts)}  # fmt: skip
    ids = list(
        Message.objects.filter(mailbox_id=mailbox_id)
        .exclude(folder__kind__in=[FolderKind.TRASH, FolderKind.DRAFTS])  # drafts open compose
        .order_by("?").values_list("id", flat=True)[: n + 30]
    )  # fmt: skip
    wall, sql, counts = timed(lambda pk: page(f"/messagerie/message/{pk}/"), ids)
    figures["message_page"] = {**_percentiles(wall[30:]), "sql": _percentiles(sql[30:]),
                               "queries": max(counts)}  # fmt: skip

    queries = make_queries(mailbox_id, max(n, 400))

    def search(item):
        _kind, query, filters = item
        return message_search(user=user, mailbox_id=mailbox_id, query=query, **filters)

    wall, sql, counts = timed(search, queries)
    figures["search_selector"] = {**_percentiles(wall), "sql": _percentiles(sql),
                                  "queries": max(counts)}  # fmt: skip
    by_kind: dict[str, list[float]] = {}
    for (kind, _q, _f), elapsed in zip(queries, wall, strict=True):
        by_kind.setdefault(kind, []).append(elapsed)
    figures["search_by_kind"] = {
        kind: {"p50_ms": _percentiles(v)["p50_ms"], "p95_ms": _percentiles(v)["p95_ms"],
               "max_ms": _percentiles(v)["max_ms"]}
        for kind, v in by_kind.items()
    }  # fmt: skip
    empty = sum(1 for item in queries if not search(item).results)
    figures["search_empty_results"] = f"{empty} of {len(queries)}"

    def search_page(item):
        _kind, query, filters = item
        params = {"q": query}
        for key, value in filters.items():
            params[{"from_": "from", "folder_kind": "folder"}.get(key, key)] = (
                "on" if value is True else str(value)
            )
        return page(search_path, params)

    wall, sql, counts = timed(search_page, queries)
    figures["search_page"] = {**_percentiles(wall), "sql": _percentiles(sql),
                              "queries": max(counts)}  # fmt: skip


PLANS = [
    ("patient name (rare word)", "patient name", {}),
    ("frequent word 'patient'", "patient", {}),
    ("two words 'scanner thoracique'", "scanner thoracique", {}),
    ("prefix as typed 'echogr'", "echogr", {}),
    ("colleague name (recipients too)", "colleague name", {}),
    ("frequent word in the inbox 'bilan'", "bilan", {"folder_kind": "inbox"}),
]


def print_plans() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.accounts.models import User
    from apps.mailbox.models import Message, Recipient
    from apps.mailbox.search import message_search

    user = User.objects.get(email="bench@test.mssante.fr")
    mailbox_id = Message.objects.values_list("mailbox_id", flat=True).order_by("id").first()
    patient = next(
        w.lower() for s in Message.objects.filter(mailbox_id=mailbox_id)
        .values_list("subject", flat=True)[:50] for w in s.split() if w.isupper() and len(w) > 3
    )  # fmt: skip
    colleague = (
        Recipient.objects.filter(message__mailbox_id=mailbox_id, kind="cc")
        .values_list("name", flat=True).first().split()[-1]
    )  # fmt: skip
    for title, query, filters in PLANS:
        query = {"patient name": patient, "colleague name": colleague}.get(query, query)
        with CaptureQueriesContext(connection) as captured:
            message_search(user=user, mailbox_id=mailbox_id, query=query, **filters)
        print(f"\n### {title}: {query!r} {filters or ''}")
        for captured_query in captured.captured_queries:
            sql = captured_query["sql"]
            if "mssweb_" not in sql and "ts_headline" not in sql:
                continue  # access control, folders, the page's names: small lookups
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")
                plan = "\n".join(row[0] for row in cursor.fetchall())
            print(f"```\n-- {sql[:160]}…\n{plan}\n```")


if __name__ == "__main__":
    main()
