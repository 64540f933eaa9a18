"""The journal's tables in PostgreSQL: an ordered list of migrations, versioned in ``schema_version``.

Rules:

* ``MIGRATIONS[i]`` takes a database schema from version ``i`` to ``i + 1``; the
  current version is ``len(MIGRATIONS)``. A released migration is never edited:
  changes are new migrations appended to the list.
* Every statement names its tables through ``{s}``, the quoted PostgreSQL schema
  the journal lives in (``agent_kernel`` by default), so the journal shares a
  database with other applications (procrastinate's tables, your own) safely.
* Migrations run on first use, in one transaction holding an advisory lock on the
  schema's name, together with the row that records the new version: two processes
  starting at once migrate exactly once, and a crash mid-migration leaves the old
  version intact.
"""

from __future__ import annotations

_V1 = (
    # One row per run. `seq` is the claim order; `attempt` the fencing token; `length`
    # the number of entries (an append is accepted only where this attempt saw the end).
    """
    CREATE TABLE {s}.runs (
        seq      BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id       TEXT             PRIMARY KEY,
        created  DOUBLE PRECISION NOT NULL,
        updated  DOUBLE PRECISION NOT NULL,
        attempt  INTEGER          NOT NULL,
        status   TEXT             NOT NULL DEFAULT 'new',
        length   INTEGER          NOT NULL DEFAULT 0,
        model    TEXT             NOT NULL DEFAULT '',
        meta     JSONB            NOT NULL DEFAULT '{{}}'
    )
    """,
    # The journal proper: entry `seq` (0, 1, 2, ...) of a run, appended by `attempt`;
    # `kind` is the entry class name, `data` the agent codec's JSON text.
    """
    CREATE TABLE {s}.entries (
        run_id   TEXT    NOT NULL REFERENCES {s}.runs (id),
        seq      INTEGER NOT NULL,
        attempt  INTEGER NOT NULL,
        kind     TEXT    NOT NULL,
        data     TEXT    NOT NULL,
        PRIMARY KEY (run_id, seq)
    )
    """,
    # Threads (conversations made of runs), used by memory plugins.
    """
    CREATE TABLE {s}.threads (
        seq          BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id           TEXT             PRIMARY KEY,
        name         TEXT             NOT NULL DEFAULT '',
        created      DOUBLE PRECISION NOT NULL,
        updated      DOUBLE PRECISION NOT NULL,
        archived     BOOLEAN          NOT NULL DEFAULT false,
        parent_id    TEXT             REFERENCES {s}.threads (id),
        fork_run_id  TEXT,
        meta         JSONB            NOT NULL DEFAULT '{{}}'
    )
    """,
    """
    CREATE TABLE {s}.thread_runs (
        thread_id  TEXT             NOT NULL REFERENCES {s}.threads (id),
        position   INTEGER          NOT NULL,
        run_id     TEXT             NOT NULL,
        added      DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (thread_id, position),
        UNIQUE (thread_id, run_id)
    )
    """,
    "CREATE INDEX thread_runs_by_run ON {s}.thread_runs (run_id)",
)

#: The migrations, in order: ``MIGRATIONS[i]`` upgrades schema version ``i`` to ``i + 1``.
MIGRATIONS: list[tuple[str, ...]] = [_V1]


def schema_version() -> int:
    """The schema version this agent-plugin-postgres writes (and the newest it reads)."""
    return len(MIGRATIONS)
