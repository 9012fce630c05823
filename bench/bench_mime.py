"""MIME parsing throughput: ``apps.ingestion.parse.parse_message`` against the bare library.

    taskset -c 0 .venv/bin/python bench/bench_mime.py [--count 1000] [--rounds 3]

Builds ``--count`` distinct ~52 KB messages (text + HTML + a 30 KB PDF-like attachment, the
shape CEILINGS.md measured) and times, on the same bytes and in the same run:

1. ``baseline``: ``BytesParser(policy=policy.default)`` + walk + decode of every part (what
   CEILINGS.md calls "parse + walk + decode", ≈ 154 msg/s on the reference machine);
2. ``parse_message``: our full parse (headers, addresses, bodies, attachments with SHA-256);
3. ``parse_message + sanitize_html``: plus the HTML sanitiser pass.

Prints JSON: best-of-rounds messages per second for each, and the ratio to the baseline.
"""

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.ingestion.parse import parse_message  # noqa: E402
from apps.ingestion.sanitize import sanitize_html  # noqa: E402

WORDS = (
    "patient", "compte", "rendu", "examen", "scanner", "thorax", "injection", "contrôle",
    "consultation", "ordonnance", "traitement", "douleur", "dentaire", "radiographie",
    "panoramique", "cabinet", "confrère", "résultats",
)  # fmt: skip


def make_message(n: int, rng: random.Random) -> bytes:
    paragraphs = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randrange(40, 80))).capitalize() + "."
        for _ in range(8)
    ]
    text = "Chère consœur,\n\n" + "\n\n".join(paragraphs) + "\n\nBien confraternellement,\n"
    html = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><style>p{margin:0}</style></head>"
        "<body><p>Chère consœur,</p>"
        + "".join(f"<p style='color:#333'>{p}</p>" for p in paragraphs)
        + "<p><img src='https://cdn.example/logo.png' alt='logo'></p>"
        + "<table><tr><td><b>Signature</b></td><td><a href='https://example.org'>site</a></td>"
        "</tr></table></body></html>"
    )
    msg = EmailMessage()
    msg["From"] = "Dr Jacques Bideault <jacques.bideault@medecin.mssante.fr>"
    msg["To"] = "Dr Claire Morel <claire.morel@chirurgien-dentiste.mssante.fr>"
    msg["Cc"] = "Secrétariat <secretariat@centre-ambroise.mssante.fr>"
    msg["Subject"] = f"XDM/1.0/DDM+CR d’imagerie médicale PATIENT {n} 28/03/1979"
    msg["Date"] = format_datetime(datetime(2025, 3, 10, 9, 0, tzinfo=UTC))
    msg["Message-ID"] = f"<bench-{n}@medecin.mssante.fr>"
    msg["X-MSS-INS"] = "O"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    msg.add_attachment(
        rng.randbytes(30 * 1024), maintype="application", subtype="pdf", filename=f"CR-{n}.pdf"
    )
    return msg.as_bytes(policy=policy.SMTP)


def baseline(raw: bytes) -> None:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_maintype() == "text":
            part.get_content()
        else:
            part.get_payload(decode=True)


def ours(raw: bytes) -> None:
    parse_message(raw)


def ours_and_sanitize(raw: bytes) -> None:
    parsed = parse_message(raw)
    if parsed.html:
        sanitize_html(parsed.html)


def rate(function, messages: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in messages:
            function(raw)
        best = min(best, time.perf_counter() - start)
    return len(messages) / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(42)
    messages = [make_message(n, rng) for n in range(args.count)]
    sizes = sorted(len(m) for m in messages)
    results = {
        "messages": args.count,
        "median_size_bytes": sizes[len(sizes) // 2],
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
    }
    base = rate(baseline, messages, args.rounds)
    for name, function in (
        ("baseline_policy_default_parse_walk_decode", None),
        ("parse_message", ours),
        ("parse_message_and_sanitize_html", ours_and_sanitize),
    ):
        value = base if function is None else rate(function, messages, args.rounds)
        results[name] = {"msg_per_s": round(value, 1), "ratio_to_baseline": round(value / base, 2)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
