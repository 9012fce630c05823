"""Audit trail figures on PostgreSQL: chain contention and verification at scale.

    .venv/bin/python bench/bench_audit.py writers [--events 2000]
    .venv/bin/python bench/bench_audit.py verify --rows 1000000

``writers``: ``record()`` inside a request-like transaction (an UPDATE of the writer's own row,
then ``record()``, then COMMIT), with 1 and 8 concurrent writer processes (one connection each,
as web workers),
against the same transaction without ``record()``, while a sealer thread runs ``seal()`` every
``--seal-interval`` seconds as the beat task does. Reports p50/p95/p99 of ``record()`` itself
(one INSERT of an unsealed row), of the whole transaction with and without it, events per second,
and the sealer's runs (events sealed, time per run, events sealed per second of sealing). Each
case runs three times: without ``record()``, with it in every transaction, and alternating (every
other transaction of each writer), whose two halves give the added time under the very same
conditions. Cases: 1 writer and 8 writers back to back (the 2 cores saturated), 8 writers paced
by ``--think-ms`` between transactions (the rest of a request). A fourth run per case alternates
transactions with and without a ``SELECT 1`` instead of ``record()``: what one round trip to the
server adds under the same load, the floor for any statement a request adds.

``verify``: loads ``--rows`` valid chained rows (hashes computed in Python with the project's
``compute_row_hash``, streamed to PostgreSQL with COPY; the secondary indexes are built after the
load), then runs ``manage.py audit_verify`` in a child process and reports its wall time and peak
RSS (GNU ``/usr/bin/time -f %M``).

Database: ``BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/mssweb_bench_audit``),
dropped and recreated. Prints one JSON object.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._pg import ROOT, django_on

URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mssweb_bench_audit")


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "p50_ms": round(pick(0.50) * 1000, 3),
        "p95_ms": round(pick(0.95) * 1000, 3),
        "p99_ms": round(pick(0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# --- Writers ----------------------------------------------------------------------------------


def _writer(n: int, per_writer: int, mode: str, think: float, barrier, results) -> None:
    """One writer process (a web worker): its own connection, request-like transactions, with
    ``record()`` in every one (mode "all"), none ("none") or every other one ("alternate"); mode
    "floor": every other one runs ``SELECT 1`` instead (one round trip and nothing else)."""
    from django.db import connection, transaction

    from apps.audit.events import Event
    from apps.audit.services import record

    record_times, tx_times, plain_times = [], [], []
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_request VALUES (%s, 0) ON CONFLICT DO NOTHING", [n])
    barrier.wait()
    for i in range(per_writer):
        with_record = mode == "all" or (mode in ("alternate", "floor") and (i + n) % 2 == 0)
        start = time.perf_counter()
        with transaction.atomic():
            with connection.cursor() as cursor:  # the request's own change
                cursor.execute("UPDATE bench_request SET n = n + 1 WHERE id = %s", [n])
            if with_record:
                before = time.perf_counter()
                if mode == "floor":
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT 1")
                        cursor.fetchone()
                else:
                    record(
                        event=Event.MESSAGE_READ,
                        actor_label=f"writer{n}@example.org",
                        target=("mailbox.message", n * 1_000_000 + i),
                        extra={"mailbox": n},
                    )
                record_times.append(time.perf_counter() - before)
        (tx_times if with_record else plain_times).append(time.perf_counter() - start)
        if think:
            time.sleep(think)  # the rest of the request: templates, other queries, the network
    connection.close()
    results.put((record_times, tx_times, plain_times))


def run_writers(
    writers: int, events: int, *, mode: str, seal_interval: float, think: float = 0.0
) -> dict:
    """``writers`` processes (forked, as web workers are separate processes: no shared GIL)
    and, in this process, a sealer thread running every ``seal_interval`` seconds."""
    import multiprocessing

    from django.db import connection

    from apps.audit.services import seal

    per_writer = events // writers
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(writers + 1)
    results = context.Queue()
    connection.close()  # not shared with the children
    processes = [
        context.Process(target=_writer, args=(n, per_writer, mode, think, barrier, results))
        for n in range(writers)
    ]
    for process in processes:
        process.start()

    seal_runs: list[tuple[int, float]] = []
    done = threading.Event()

    def sealer() -> None:
        while not done.wait(seal_interval):
            before = time.perf_counter()
            count = seal()
            seal_runs.append((count, time.perf_counter() - before))
        connection.close()

    sealing = threading.Thread(target=sealer)
    sealing.start()
    barrier.wait()
    start = time.perf_counter()
    record_times: list[float] = []
    tx_times: list[float] = []
    plain_times: list[float] = []
    for _ in processes:
        mine_record, mine_tx, mine_plain = results.get()
        record_times.extend(mine_record)
        tx_times.extend(mine_tx)
        plain_times.extend(mine_plain)
    elapsed = time.perf_counter() - start
    for process in processes:
        process.join()
    done.set()
    sealing.join()
    before = time.perf_counter()
    seal_runs.append((seal(), time.perf_counter() - before))  # what the last interval left
    connection.close()
    everything = tx_times + plain_times
    result = {
        "writers": writers,
        "transactions": len(everything),
        "transactions_per_s": round(len(everything) / elapsed, 1),
    }
    if plain_times:
        result["transaction_without_record"] = percentiles(plain_times)
    if tx_times:
        result["transaction_with_record"] = percentiles(tx_times)
        result["record"] = percentiles(record_times)
        sealed = sum(count for count, _ in seal_runs)
        busy = sum(seconds for _, seconds in seal_runs)
        result["sealer"] = {
            "interval_s": seal_interval,
            "runs": len(seal_runs),
            "events_sealed": sealed,
            "max_run_ms": round(max(seconds for _, seconds in seal_runs) * 1000, 1),
            "events_per_s_of_sealing": round(sealed / busy) if busy else None,
        }
    return result


def _added(with_record: dict, without: dict) -> dict:
    return {
        key: round(with_record[key] - without[key], 3) for key in ("p50_ms", "p95_ms", "mean_ms")
    }


def writers_main(args) -> dict:
    django_on(URL, fresh=True)
    migrate()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_request (id int PRIMARY KEY, n int NOT NULL)")
    results = []
    # Back to back (the machine saturated: 8 processes and their 8 backends on the cores), then
    # paced: each writer spends --think-ms between transactions, as a request does elsewhere.
    for writers, think in ((1, 0.0), (8, 0.0), (8, args.think_ms / 1000)):
        options = {"seal_interval": args.seal_interval, "think": think}
        baseline = run_writers(writers, args.events, mode="none", **options)
        audited = run_writers(writers, args.events, mode="all", **options)
        # The same writers alternating transactions with and without record(): both halves see
        # the same machine at the same moment (separate runs drift by more than 1 ms here).
        alternate = run_writers(writers, args.events, mode="alternate", **options)
        floor = run_writers(writers, args.events, mode="floor", **options)
        results.append(
            {
                "writers": writers,
                "think_ms": think * 1000,
                "without_record": baseline,
                "with_record": audited,
                "added_by_record": _added(
                    audited["transaction_with_record"], baseline["transaction_without_record"]
                ),
                "alternating": alternate,
                "added_by_record_alternating": _added(
                    alternate["transaction_with_record"], alternate["transaction_without_record"]
                ),
                "added_by_select_1_alternating": _added(
                    floor["transaction_with_record"], floor["transaction_without_record"]
                ),
            }
        )
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("audit_verify", stdout=out)
    return {"writers": results, "audit_verify": out.getvalue().strip()}


# --- Verification at scale --------------------------------------------------------------------

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
EVENTS = (100, 502, 503, 504, 500, 620, 621, 661)


def generate(rows: int, batch: int = 20_000) -> float:
    """COPY ``rows`` valid chained events into audit_auditevent and their links into
    audit_auditlink (the sealer's watermark set past them, as a running sealer keeps it);
    returns seconds."""
    import psycopg

    from apps.audit.chain import GENESIS_HASH, canonical_json, compute_row_hash

    start = time.perf_counter()
    origin = datetime(2025, 11, 28, tzinfo=UTC)
    prev_hash = GENESIS_HASH
    with (
        psycopg.connect(URL) as conn,
        conn.cursor() as cursor,
        psycopg.connect(URL) as link_conn,
        link_conn.cursor() as link_cursor,
    ):
        # The links' unique and foreign key constraints are checked once after the load, as
        # the secondary indexes are built after it.
        link_constraints = cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'audit_auditlink'::regclass AND contype IN ('u', 'f')"
        ).fetchall()
        for name, _definition in link_constraints:
            cursor.execute(f"ALTER TABLE audit_auditlink DROP CONSTRAINT {name}")
        secondary = [
            row[0]
            for row in cursor.execute(
                "SELECT indexdef FROM pg_indexes "
                "WHERE tablename IN ('audit_auditevent', 'audit_auditlink') "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            )
        ]
        for definition in secondary:
            name = definition.split(" INDEX ", 1)[1].split(" ON ", 1)[0]
            cursor.execute(f"DROP INDEX {name}")
        conn.commit()  # the two COPYs below run on two connections: no lock held across them
        columns = (
            "id, created_at, event, actor_id, actor_ref, actor_label, ip, user_agent, "
            "target_type, target_id, detail"
        )
        with (
            cursor.copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy,
            link_cursor.copy(
                "COPY audit_auditlink (seq, event_id, prev_hash, row_hash) FROM STDIN"
            ) as link_copy,
        ):
            lines, links = [], []
            for seq in range(1, rows + 1):
                user = seq % 5000
                fields = {
                    "seq": seq,
                    "created_at": origin + timedelta(microseconds=seq * 3_000_017),
                    "event": EVENTS[seq % len(EVENTS)],
                    "actor_ref": str(user),
                    "actor_label": f"user{user}@example.mssante.fr",
                    "ip": f"192.0.{seq % 250}.{seq % 199 + 1}",
                    "user_agent": USER_AGENT,
                    "target_type": "mailbox.message",
                    "target_id": str(seq * 7 % 9_999_991),
                    "detail": {"mailbox": user, "to_folder": seq % 13},
                }
                row_hash = compute_row_hash(prev_hash=prev_hash, **fields)
                lines.append(
                    "\t".join(
                        (
                            str(seq),
                            fields["created_at"].isoformat(),
                            str(fields["event"]),
                            "\\N",
                            fields["actor_ref"],
                            fields["actor_label"],
                            fields["ip"],
                            USER_AGENT,
                            fields["target_type"],
                            fields["target_id"],
                            canonical_json(fields["detail"]),
                        )
                    )
                )
                links.append(f"{seq}\t{seq}\t{prev_hash}\t{row_hash}")
                prev_hash = row_hash
                if len(lines) == batch:
                    copy.write("\n".join(lines) + "\n")
                    link_copy.write("\n".join(links) + "\n")
                    lines, links = [], []
            if lines:
                copy.write("\n".join(lines) + "\n")
                link_copy.write("\n".join(links) + "\n")
        cursor.execute(
            "INSERT INTO audit_auditsealstate (id, low) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET low = EXCLUDED.low",
            [rows],
        )
        conn.commit()  # runs the deferred foreign key checks queued by the COPY
        link_conn.commit()
        loaded = time.perf_counter() - start
        for definition in secondary:
            cursor.execute(definition)
        for name, definition in link_constraints:
            cursor.execute(f"ALTER TABLE audit_auditlink ADD CONSTRAINT {name} {definition}")
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('audit_auditevent', 'id'), %s)", [rows]
        )
        cursor.execute("ANALYZE audit_auditevent")
        cursor.execute("ANALYZE audit_auditlink")
    indexed = time.perf_counter() - start - loaded
    print(f"loaded {rows} rows in {loaded:.1f} s, indexes {indexed:.1f} s", file=sys.stderr)
    return time.perf_counter() - start


def verify_main(args) -> dict:
    django_on(URL, fresh=True)
    migrate()
    generated = generate(args.rows)
    env = {**os.environ, "DATABASE_URL": URL, "DJANGO_SETTINGS_MODULE": "mssweb.settings_test"}
    env["MSSWEB_VAR_DIR"] = str(ROOT / "var" / "bench")
    # GNU time reports the peak RSS of the command alone: the child's own getrusage figure
    # would include the pages of this (large) process it was forked from.
    command = ["/usr/bin/time", "-f", "peak_kib=%M", sys.executable, "manage.py", "audit_verify",
               "--batch-size", str(args.batch_size)]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    peak_kib = int(result.stderr.rsplit("peak_kib=", 1)[1].split()[0])
    return {
        "rows": args.rows,
        "generate_s": round(generated, 1),
        "audit_verify_s": round(elapsed, 1),
        "rows_per_s": round(args.rows / elapsed),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "output": (result.stdout + result.stderr.rsplit("peak_kib=", 1)[0]).strip()[-300:],
        "returncode": result.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    writers = sub.add_parser("writers")
    writers.add_argument("--events", type=int, default=2000)
    writers.add_argument(
        "--seal-interval", type=float, default=5.0, help="AUDIT_SEAL_INTERVAL's default"
    )
    writers.add_argument("--think-ms", type=float, default=20.0)
    verify = sub.add_parser("verify")
    verify.add_argument("--rows", type=int, default=1_000_000)
    verify.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    result = writers_main(args) if args.what == "writers" else verify_main(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
