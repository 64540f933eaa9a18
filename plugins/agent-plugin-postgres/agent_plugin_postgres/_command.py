"""``agent-kernel postgres DSN``: inspect a PostgreSQL journal without an agent (read-only)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import psycopg
from psycopg import sql

from ._journal import _redact
from ._schema import schema_version

HELP = "inspect an agent-kernel PostgreSQL journal (read-only)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agent-kernel postgres``."""
    parser.description = (
        "Print a PostgreSQL journal's schema version and runs as JSON, or one run's entries. "
        "The database is read in a read-only transaction and never migrated."
    )
    parser.add_argument("dsn", help="libpq connection string or postgresql:// URL")
    parser.add_argument("--schema", default="agent_kernel", help="the PostgreSQL schema of the journal")
    parser.add_argument("--run", metavar="RUN_ID", help="print this run's entries instead, one JSON object a line")
    parser.add_argument(
        "--check", action="store_true", help="also check every run's entries are whole and in order (exit 1 if not)"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``agent-kernel postgres``; exit 0, or 1 when the journal is unreachable or fails the check."""
    try:
        report = inspect(args.dsn, schema=args.schema, run_id=args.run, check=args.check)
    except (psycopg.Error, ValueError) as exc:
        print(f"agent-kernel postgres: {_redact(args.dsn)}: {exc}", file=sys.stderr)
        return 1
    if args.run is not None:
        for line in report["entries"]:
            print(json.dumps(line, sort_keys=True))
    else:
        print(json.dumps(report, indent=2, sort_keys=True))
    return 0 if not report.get("problems") else 1


def inspect(
    dsn: str, *, schema: str = "agent_kernel", run_id: str | None = None, check: bool = False
) -> dict[str, Any]:
    """A JSON-ready report on the journal in `schema` of the database at `dsn`."""
    s = sql.Identifier(schema)
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        conn.read_only = True
        exists = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'schema_version'",
            (schema,),
        ).fetchone()
        report: dict[str, Any] = {"dsn": _redact(dsn), "schema": schema}
        if exists is None:
            report.update(schema_version=0, runs=[])
            return report
        row = conn.execute(sql.SQL("SELECT COALESCE(MAX(version), 0) FROM {}.schema_version").format(s)).fetchone()
        version = int(row[0]) if row else 0
        report["schema_version"] = version
        if version > schema_version():
            raise ValueError(f"journal schema version {version} is newer than this plugin's ({schema_version()})")
        if run_id is not None:
            rows = conn.execute(
                sql.SQL("SELECT seq, attempt, kind, data FROM {}.entries WHERE run_id = %s ORDER BY seq").format(s),
                (run_id,),
            ).fetchall()
            report["entries"] = [
                {"seq": seq, "attempt": attempt, "kind": kind, "entry": json.loads(data)}
                for seq, attempt, kind, data in rows
            ]
            return report
        runs = conn.execute(
            sql.SQL("SELECT id, created, updated, attempt, status, length, model FROM {}.runs ORDER BY seq").format(s)
        ).fetchall()
        report["runs"] = [
            dict(zip(("id", "created", "updated", "attempt", "status", "entries", "model"), r, strict=True))
            for r in runs
        ]
        if check:
            bad = conn.execute(
                sql.SQL(
                    "SELECT r.id, r.length, count(e.seq), COALESCE(max(e.seq), -1) FROM {0}.runs r"
                    " LEFT JOIN {0}.entries e ON e.run_id = r.id GROUP BY r.id, r.length"
                    " HAVING count(e.seq) <> r.length OR COALESCE(max(e.seq), -1) <> r.length - 1"
                ).format(s)
            ).fetchall()
            report["problems"] = [
                f"run {rid!r}: {length} entries recorded, {count} stored, last seq {last}"
                for rid, length, count, last in bad
            ]
        return report
