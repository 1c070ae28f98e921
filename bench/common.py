"""What the benchmarks share: a scratch PostgreSQL database per run, and a process's CPU time."""

from __future__ import annotations

import os
from pathlib import Path


def _admin(pg: str, sql: str) -> None:
    import psycopg  # only the benchmarks need it, and only with --pg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def create_database(pg: str, name: str) -> None:
    """Create database `name` on the server at `pg`, dropping what a crashed run left behind."""
    drop_database(pg, name)
    _admin(pg, f"CREATE DATABASE {name}")


def drop_database(pg: str, name: str) -> None:
    """Drop database `name`, disconnecting whatever still uses it."""
    _admin(pg, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc), NaN once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
