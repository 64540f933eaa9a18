"""Chaos across hosts, long form: ``python bench/postgres_chaos.py [--runs 300] [--hosts 4] [--seed 1]``.

The same harness as plugins/agent-plugin-procrastinate/tests/test_chaos.py (worker hosts
in network namespaces, random SIGKILLs, a cut link, a PostgreSQL restart, approvals in
flight), with more runs and hosts. Needs root for the namespaces (otherwise the
workers are loopback processes, and it says so) and PostgreSQL's server binaries.
Prints the report as JSON; exits 1 when a promise was broken.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import trio

TESTS = pathlib.Path(__file__).resolve().parents[1] / "plugins" / "agent-plugin-procrastinate" / "tests"
sys.path.insert(0, str(TESTS))

from chaos_harness import Chaos, worker_logs  # noqa: E402

PROMISES = (
    "runs lost",
    "non-idempotent executions repeated",
    "recorded model turns requested again",
    "decisions applied twice",
    "commits accepted from a fenced worker",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=float, default=900.0, help="seconds before giving up")
    parser.add_argument("--keep", action="store_true", help="keep the worker logs directory")
    args = parser.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="agent-chaos-"))
    chaos = Chaos(tmp, runs=args.runs, hosts=args.hosts, seed=args.seed, log=lambda m: print(m, flush=True))
    report = trio.run(chaos.run, time.monotonic() + args.budget)
    print(json.dumps(report, indent=2))
    broken = [key for key in PROMISES if report[key]]
    if broken:
        print(worker_logs(tmp), file=sys.stderr)
    if args.keep:
        print(f"logs in {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
