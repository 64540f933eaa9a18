"""Fixtures for the queue tests: a throwaway PostgreSQL server, a fresh database per test, worker processes."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from agent_plugin_postgres.testing import PostgresServer, missing, postgres_server

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so tests (and worker processes) can import queue_testkit
AGENT = "queue_testkit:make_agent"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this session (a failure under CI, a skip elsewhere, when none can start)."""
    reason = missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with postgres_server() as server:
        yield server


def new_database(server: PostgresServer) -> str:
    name = f"q_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.dsn_for(server.host, name)


@pytest.fixture
def dsn(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return new_database(pg_server)


class Workers:
    """Worker processes (``agent-kernel worker``) started by a test; all stopped by PID at the end."""

    def __init__(self, dsn: str, ledger: pathlib.Path, tmp: pathlib.Path) -> None:
        self.dsn = dsn
        self.ledger = ledger
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *, concurrency: int = 4, stalled_after: float = 3.0, prefix: list[str] | None = None,
              dsn: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
        log = open(self.tmp / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        command = [
            sys.executable, "-m", "agent_kernel", "worker", "--dsn", dsn or self.dsn, "--agent", AGENT,
            "--concurrency", str(concurrency), "--stalled-after", str(stalled_after), "--drain-timeout", "2",
        ]  # fmt: skip
        proc = subprocess.Popen(
            [*(prefix or []), *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "AGENT_LEDGER": str(self.ledger),
                "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                **(env or {}),
            },
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs:
            proc.wait(timeout=60)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.tmp.glob("worker-*.log"))
        )


@pytest.fixture
def workers(dsn: str, tmp_path: pathlib.Path) -> Iterator[Workers]:
    crew = Workers(dsn, tmp_path / "ledger", tmp_path)
    try:
        yield crew
    finally:
        crew.stop_all()
