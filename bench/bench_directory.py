"""National directory at full size, on PostgreSQL: import time and memory, search latency, plans.

    .venv/bin/python bench/bench_directory.py [--people 1540000] [--queries 1200] [--searches-only]

1. Generates (once; kept in --out) a synthetic pair in the real format: ~2,000,000 activity rows
   and ~540,000 mailbox rows for the default --people.
2. Physical limit: a bare COPY of the activity file's bytes into an unindexed text table.
3. The real import (``directory_import``) into a fresh database, with its peak memory (RSS).
4. ≥ 1,000 realistic searches (prefixes, "last first", "first last", typos, filters) through the
   search selector, and the autocomplete endpoint through Django's full request stack.
5. EXPLAIN (ANALYZE) of the main searches.

Uses the database ``mssweb_bench`` on the server of BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/mssweb_bench), dropped and recreated each run.
Prints JSON, then the plans.
"""

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _pg import django_on  # noqa: E402 - bench/ is the script folder

BENCH_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mssweb_bench")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_540_000)
    parser.add_argument("--queries", type=int, default=1200)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench-directory")
    parser.add_argument(
        "--searches-only", action="store_true",
        help="keep the database of the previous run and only measure the searches",
    )  # fmt: skip
    args = parser.parse_args()

    django_on(BENCH_URL, fresh=not args.searches_only)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    figures: dict = {"people_requested": args.people}
    if not args.searches_only:
        files = generate(args, figures)
        bare_copy(files.activities_path, figures)
        run_import(files, figures)
    searches(args, figures)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    print_plans()


def generate(args, figures: dict):
    from apps.directory.sample import SampleFiles, write_sample

    marker = args.out / f"people-{args.people}.json"
    if marker.exists():
        data = json.loads(marker.read_text())
        files = SampleFiles(Path(data["a"]), Path(data["m"]), data["ar"], data["mr"])
    else:
        started = time.perf_counter()
        files = write_sample(people=args.people, out_dir=args.out)
        figures["generate_s"] = round(time.perf_counter() - started, 1)
        marker.write_text(
            json.dumps(
                {
                    "a": str(files.activities_path),
                    "m": str(files.mssante_path),
                    "ar": files.activity_rows,
                    "mr": files.mailbox_rows,
                }
            )
        )
    figures["activity_rows_in_file"] = files.activity_rows
    figures["mailbox_rows_in_file"] = files.mailbox_rows
    figures["activity_file_mb"] = round(files.activities_path.stat().st_size / 1e6, 1)
    return files


def bare_copy(path: Path, figures: dict) -> None:
    """The same bytes into an unindexed table of text columns: the physical floor."""
    from django.db import connection

    with path.open("rb") as handle:
        columns = handle.readline().decode().rstrip("\n").split("|")
    names = ", ".join(f"c{i} text" for i in range(len(columns)))
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE UNLOGGED TABLE bare_copy ({names})")
        started = time.perf_counter()
        with (
            path.open("rb") as handle,
            cursor.cursor.copy(
                "COPY bare_copy FROM STDIN WITH (FORMAT csv, DELIMITER '|', QUOTE E'\\x01', "
                "HEADER true)"
            ) as copy,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        figures["bare_copy_activities_s"] = round(time.perf_counter() - started, 1)
        cursor.execute("DROP TABLE bare_copy")


def run_import(files, figures: dict) -> None:
    from apps.directory.importer import directory_import

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    run = directory_import(activities=files.activities_path, mssante=files.mssante_path)
    figures["import_s"] = round(time.perf_counter() - started, 1)
    figures["import_ratio_to_bare_copy"] = round(
        figures["import_s"] / max(figures["bare_copy_activities_s"], 0.1), 1
    )
    figures["import_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0
    )
    figures["rss_before_import_mb"] = round(before / 1024, 0)
    figures["imported"] = {
        "activities": run.activity_rows,
        "mailboxes": run.mailbox_rows,
        "rejected": run.rejected_rows,
        "people": run.report.get("people"),
    }


def _typo(word: str, rnd: random.Random) -> str:
    if len(word) < 5:
        return word
    i = rnd.randrange(1, len(word) - 1)
    kind = rnd.choice(("swap", "drop", "replace"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + rnd.choice("aeioulnrst") + word[i + 1 :]


def make_queries(count: int) -> list[tuple[str, dict]]:
    from apps.directory.models import SLOT_MODELS
    from apps.directory.selectors import active_slot

    rnd = random.Random(7)
    model = SLOT_MODELS[active_slot()]["activity"]
    total = model.objects.count()
    sample = []
    for _ in range(count):
        row = (
            model.objects.filter(id__gte=rnd.randrange(total))
            .values("key_lf", "department_code", "profession_code")
            .order_by("id")
            .first()
        )
        sample.append(row)
    queries = []
    for n, row in enumerate(sample):
        words = row["key_lf"].split()
        last, first = words[0], (words[-1] if len(words) > 1 else "")
        kind = n % 6
        if kind == 0:
            queries.append((last[: rnd.randint(3, 6)], {}))
        elif kind == 1:
            queries.append((f"{last} {first[:2]}", {}))
        elif kind == 2:
            queries.append((f"{first} {last}", {}))
        elif kind == 3:
            queries.append((_typo(last, rnd), {}))
        elif kind == 4:
            queries.append((last[:4], {"department": row["department_code"]}))
        else:
            queries.append(("", {"profession": row["profession_code"],
                                 "department": row["department_code"]}))  # fmt: skip
    return queries


def _percentiles(values: list[float]) -> dict:
    cuts = statistics.quantiles(values, n=100)
    return {
        "p50_ms": round(cuts[49] * 1000, 2),
        "p95_ms": round(cuts[94] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


def searches(args, figures: dict) -> None:
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.directory.selectors import SearchFilters, directory_search
    from tests.conftest import login, make_user

    queries = make_queries(args.queries)
    for query, filters in queries[:50]:  # warm the caches like a running server would
        directory_search(filters=SearchFilters(query=query, **filters))
    timings, db_timings, empty = [], [], 0
    by_kind: dict[int, list[float]] = {}
    empty_by_kind: dict[int, int] = {}
    for n, (query, filters) in enumerate(queries):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            page = directory_search(filters=SearchFilters(query=query, **filters))
            elapsed = time.perf_counter() - started
        timings.append(elapsed)
        by_kind.setdefault(n % 6, []).append(elapsed)
        db_timings.append(sum(float(q["time"]) for q in captured.captured_queries))
        empty += not page.people
        if not page.people:
            empty_by_kind[n % 6] = empty_by_kind.get(n % 6, 0) + 1
    reset_queries()
    kinds = ["prefix", "last+first", "first last", "typo", "prefix+dept", "profession+dept"]
    figures["search_queries"] = len(queries)
    figures["search_empty_results"] = empty
    figures["search_empty_by_kind"] = {kinds[k]: v for k, v in sorted(empty_by_kind.items())}
    figures["search_selector"] = _percentiles(timings)
    figures["search_sql_only"] = _percentiles(db_timings)
    figures["search_by_kind_p95_ms"] = {
        kinds[k]: _percentiles(v)["p95_ms"] for k, v in sorted(by_kind.items())
    }

    from django.conf import settings

    settings.DIRECTORY_AUTOCOMPLETE_RATE = 10**9
    settings.ALLOWED_HOSTS = ["*"]
    from apps.accounts.management.commands.seed_demo import rpps

    stamp = time.time_ns() % 10**10
    user = make_user(email=f"bench-{stamp}@test.mssante.fr", idnat=rpps(f"{stamp:010d}"))
    client = Client()
    login(client, user)
    http = []
    for query, _filters in queries:
        started = time.perf_counter()
        response = client.get("/annuaire/autocompletion/", {"q": query or "mar"})
        http.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    figures["autocomplete_http"] = _percentiles(http)


PLANS = {
    "prefix 'dup'": ("dup", {}),
    "two words 'martin marie' (words adjacent: the first try)": ("martin marie", {"mode": "A"}),
    "two words 'martin marie' (any word start: the fallback)": ("martin marie", {}),
    "prefix + department 'ber' in 69": ("ber", {"department": "69"}),
    "profession 40 in department 33": ("", {"profession": "40", "department": "33"}),
}


def print_plans() -> None:
    from django.db import connection

    from apps.directory.extracts import normalize_search
    from apps.directory.models import SLOT_MODELS
    from apps.directory.selectors import (
        SearchFilters,
        _filtered,
        active_slot,
        adjacent_condition,
        name_condition,
    )

    model = SLOT_MODELS[active_slot()]["activity"]
    for title, (query, filters) in PLANS.items():
        mode = filters.pop("mode", "B")
        qs = _filtered(model.objects.all(), SearchFilters(query=query, **filters))
        words = normalize_search(query).split()
        if words:
            qs = qs.filter(adjacent_condition(words) if mode == "A" else name_condition(words))
        sql, params = qs.order_by("key_lf", "idnat", "id")[:61].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        print(f"\n### {title}\n```\n{plan}\n```")


if __name__ == "__main__":
    main()
