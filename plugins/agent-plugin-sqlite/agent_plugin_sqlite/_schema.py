"""The journal file's schema: an ordered list of migrations, versioned by ``PRAGMA user_version``.

Rules:

* ``MIGRATIONS[i]`` takes a file from schema version ``i`` to ``i + 1``; the current
  version is ``len(MIGRATIONS)``. A released migration is never edited: changes are
  new migrations appended to the list.
* Migrations run on open, all in one ``BEGIN IMMEDIATE`` transaction together with
  the new ``user_version``, so two processes opening an old file at once migrate it
  exactly once, and a crash mid-migration leaves the old version intact.
* ``PRAGMA application_id`` marks the file as an agent-kernel journal, so the plugin
  never migrates (and so never modifies) somebody else's SQLite database.
"""

from __future__ import annotations

#: ``PRAGMA application_id`` of agent-kernel journal files: "AGKJ".
APPLICATION_ID = 0x41474B4A

_V1 = (
    # One row per run. `seq` is the claim order (an INTEGER PRIMARY KEY keeps it stable
    # across VACUUM); `attempt` is the fencing token; `length` the number of entries.
    """
    CREATE TABLE runs (
        seq      INTEGER PRIMARY KEY,
        id       TEXT    NOT NULL UNIQUE,
        created  REAL    NOT NULL,
        updated  REAL    NOT NULL,
        attempt  INTEGER NOT NULL,
        status   TEXT    NOT NULL DEFAULT 'new',
        length   INTEGER NOT NULL DEFAULT 0,
        meta     TEXT    NOT NULL DEFAULT '{}'
    )
    """,
    # The journal proper: entry `seq` (0, 1, 2, ...) of a run, appended by `attempt`,
    # `kind` is the entry class name, `data` the codec's JSON text.
    """
    CREATE TABLE entries (
        run_id   TEXT    NOT NULL REFERENCES runs(id),
        seq      INTEGER NOT NULL,
        attempt  INTEGER NOT NULL,
        kind     TEXT    NOT NULL,
        data     TEXT    NOT NULL,
        PRIMARY KEY (run_id, seq)
    )
    """,
    # Threads (conversations made of runs), used by memory plugins.
    """
    CREATE TABLE threads (
        seq          INTEGER PRIMARY KEY,
        id           TEXT    NOT NULL UNIQUE,
        name         TEXT    NOT NULL DEFAULT '',
        created      REAL    NOT NULL,
        updated      REAL    NOT NULL,
        archived     INTEGER NOT NULL DEFAULT 0,
        parent_id    TEXT    REFERENCES threads(id),
        fork_run_id  TEXT,
        meta         TEXT    NOT NULL DEFAULT '{}'
    )
    """,
    """
    CREATE TABLE thread_runs (
        thread_id  TEXT    NOT NULL REFERENCES threads(id),
        position   INTEGER NOT NULL,
        run_id     TEXT    NOT NULL,
        added      REAL    NOT NULL,
        PRIMARY KEY (thread_id, position),
        UNIQUE (thread_id, run_id)
    )
    """,
    "CREATE INDEX thread_runs_by_run ON thread_runs (run_id)",
    f"PRAGMA application_id = {APPLICATION_ID}",
)

#: The migrations, in order: ``MIGRATIONS[i]`` upgrades schema version ``i`` to ``i + 1``.
MIGRATIONS: list[tuple[str, ...]] = [_V1]


def schema_version() -> int:
    """The schema version this plugin writes (and the newest it reads)."""
    return len(MIGRATIONS)
