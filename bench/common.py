"""Shared by the benchmarks: a fresh database and plain progress lines."""

from __future__ import annotations


def recreate_database(db_url: str) -> None:
    """Drop and create the benchmark's own database (never the application's)."""
    import psycopg

    name = db_url.rsplit("/", 1)[1]
    if not name.startswith("portal_bench"):
        raise SystemExit(f"refusing to recreate {name!r}: benchmark databases are portal_bench*")
    admin_url = db_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def say(text: str) -> None:
    print(text, flush=True)
