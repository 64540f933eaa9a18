"""``agent-kernel sqlite PATH``: inspect a journal file without an agent (read-only)."""

from __future__ import annotations

import argparse
import json
import pathlib
import sqlite3
import sys
from typing import Any

from agent_kernel import Agent
from agent_kernel.errors import AgentError, JournalCorrupt

from ._journal import JournalUnavailable, check_header

HELP = "inspect an agent-kernel SQLite journal file (read-only)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agent-kernel sqlite``."""
    parser.description = (
        "Print a journal file's schema version, runs and threads as JSON. "
        "The file is opened read-only and never migrated."
    )
    parser.add_argument("path", help="the journal file")
    parser.add_argument("--run", metavar="RUN_ID", help="print this run's entries instead, one JSON object a line")
    parser.add_argument(
        "--check",
        action="store_true",
        help="also run SQLite's integrity check and fold every run with the installed plugins, "
        "as a resume would (exit 1 if anything fails)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``agent-kernel sqlite``; exit 0, or 1 when the file is unusable or fails the check."""
    try:
        report = inspect(args.path, run_id=args.run, check=args.check)
    except AgentError as exc:
        print(f"agent-kernel sqlite: {exc}", file=sys.stderr)
        return 1
    if args.run is not None:
        for line in report["entries"]:
            print(json.dumps(line, sort_keys=True))
    else:
        print(json.dumps(report, indent=2, sort_keys=True))
    return 0 if report.get("integrity", "ok") == "ok" and not report.get("unresumable") else 1


def inspect(path: str, *, run_id: str | None = None, check: bool = False) -> dict[str, Any]:
    """A JSON-ready report on the journal file at `path` (opened read-only).

    Raises:
        JournalCorrupt: not a journal, corrupted, or from a newer schema.
        JournalUnavailable: the file does not exist or cannot be read.
    """
    file = pathlib.Path(path)
    if not file.is_file():
        raise JournalUnavailable(f"journal file {path} does not exist")
    try:
        conn = sqlite3.connect(file.absolute().as_uri() + "?mode=ro", uri=True, timeout=5.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise JournalUnavailable(f"journal file {path} cannot be opened: {exc}") from exc
    try:
        try:
            conn.execute("BEGIN")
            version = check_header(conn, path)
            report: dict[str, Any] = {"path": str(path), "schema_version": version}
            if version == 0:
                report.update(runs=[], threads=0)
            elif run_id is not None:
                rows = conn.execute(
                    "SELECT seq, attempt, kind, data FROM entries WHERE run_id = ? ORDER BY seq", (run_id,)
                ).fetchall()
                report["entries"] = [
                    {"seq": seq, "attempt": attempt, "kind": kind, "entry": _json(data)}
                    for seq, attempt, kind, data in rows
                ]
            else:
                report["runs"] = [
                    {
                        "id": row[0],
                        "created": row[1],
                        "updated": row[2],
                        "attempt": row[3],
                        "status": row[4],
                        "entries": row[5],
                        "model": _model(row[6]),
                    }
                    for row in conn.execute(
                        "SELECT id, created, updated, attempt, status, length, meta FROM runs ORDER BY seq"
                    ).fetchall()
                ]
                report["threads"] = conn.execute("SELECT COUNT(*) FROM threads").fetchone()[0]
            if check:
                problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
                report["integrity"] = "ok" if problems == ["ok"] else "; ".join(problems)
                if version:
                    report["unresumable"], report["not_checked"] = _fold_every_run(conn)
            conn.execute("ROLLBACK")
            return report
        except sqlite3.DatabaseError as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code in (11, 24, 26):  # SQLITE_CORRUPT, SQLITE_FORMAT, SQLITE_NOTADB
                raise JournalCorrupt(f"journal file {path} is corrupted or truncated ({exc})") from exc
            raise JournalUnavailable(f"journal file {path} cannot be read: {exc}") from exc
    finally:
        conn.close()


def _fold_every_run(conn: sqlite3.Connection) -> tuple[dict[str, str], dict[str, str]]:
    """Fold every run as a resume would, with an agent built from the installed plugins.

    Returns the runs that do not fold (a resume would reject them whatever is installed)
    and the runs not checked (an entry does not decode with the installed plugins: the
    plugins that wrote it are missing here), each with why.
    """
    agent = Agent()
    unresumable: dict[str, str] = {}
    not_checked: dict[str, str] = {}
    for (run_id,) in conn.execute("SELECT id FROM runs ORDER BY seq").fetchall():
        entries = []
        for seq, kind, data in conn.execute(
            "SELECT seq, kind, data FROM entries WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall():
            try:
                entries.append(agent.codec.decode(data))
            except Exception as exc:
                not_checked[run_id] = f"entry {seq} ({kind}) does not decode with the installed plugins: {exc}"
                break
        else:
            try:
                agent.fold(run_id, entries)
            except JournalCorrupt as exc:
                unresumable[run_id] = str(exc)
    return unresumable, not_checked


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {"unreadable": text}


def _model(meta: str) -> str:
    value = _json(meta)
    return str(value.get("model", "")) if isinstance(value, dict) else ""
