"""What the PostgreSQL benchmarks share: a fresh database and Django pointed at it."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def recreate_database(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def django_on(url: str, *, fresh: bool) -> None:
    """Set Django up on the benchmark database ``url`` (dropped and recreated if ``fresh``)."""
    if fresh:
        recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mssweb.settings_test")
    os.environ["MSSWEB_VAR_DIR"] = str(ROOT / "var" / "bench")
    import django

    django.setup()
