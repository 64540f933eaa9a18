"""The kernel's crash-point scenario (``tests/crash_scenario.py``) on a PostgresJournal.

Run as a subprocess by test_crash_matrix.py exactly like the kernel's scenario, with
the same arguments; the "DB" argument names the run's journal: `journal_for(path)`
maps it to a PostgreSQL schema on the server in ``$AGENT_PG_DSN``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import pathlib
import sys
from typing import Any

import trio

from agent_plugin_postgres import PostgresJournal

ROOT = pathlib.Path(__file__).resolve().parents[3]
KERNEL_SCENARIO = ROOT / "tests" / "crash_scenario.py"


def load_kernel_module(path: pathlib.Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def journal_for(path: str | os.PathLike[str]) -> PostgresJournal:
    """The PostgresJournal standing for the SQLite file `path` of the kernel's matrix."""
    schema = "cm_" + hashlib.sha1(str(path).encode()).hexdigest()[:16]
    return PostgresJournal(os.environ["AGENT_PG_DSN"], schema=schema, pool_size=2)


if __name__ == "__main__":
    scenario = load_kernel_module(KERNEL_SCENARIO, "crash_scenario")
    scenario.SqliteJournal = journal_for  # build() makes its journal through this name
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "approve", "recover"])
    parser.add_argument("db")
    parser.add_argument("--append", type=int)
    parser.add_argument("--when", choices=["before", "after"], default="before")
    parser.add_argument("--tool")
    parser.add_argument("--at", choices=["enter", "exit"], default="exit")
    arguments = parser.parse_args()
    print(json.dumps(trio.run(scenario.main, arguments)))
    sys.exit(0)
