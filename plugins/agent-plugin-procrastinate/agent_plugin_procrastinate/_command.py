"""``agent-kernel worker | submit | decide | outcome``: the queue from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from agent_kernel import Approve, Deny

from ._queue import RunQueue, Settled, serve

HELP = {
    "worker": "work on queued agent runs (procrastinate on PostgreSQL) until SIGTERM",
    "submit": "queue a new agent run; print its run id",
    "decide": "approve or deny a suspended run's requests (queues its resume)",
    "outcome": "print a queued run's outcome as JSON (null while it runs)",
}


def _common(parser: argparse.ArgumentParser, *, agent: bool = True) -> None:
    parser.add_argument("--dsn", required=True, help="the PostgreSQL database of the queue and the journal")
    if agent:
        parser.add_argument(
            "--agent", required=True, metavar="MODULE:FACTORY", help="a function (PostgresJournal) -> Agent"
        )


def configure_worker(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--concurrency", type=int, default=4, help="runs driven at once by this worker (default 4)")
    parser.add_argument(
        "--stalled-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a worker silent this long is presumed dead and its runs are resumed elsewhere (default 30)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM, wait this long for running invocations before cancelling them (default 10)",
    )
    parser.add_argument("--name", help="the worker's name in procrastinate's logs")


def run_worker(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(
        serve(
            args.dsn,
            args.agent,
            concurrency=args.concurrency,
            stalled_after=args.stalled_after,
            drain_timeout=args.drain_timeout,
            name=args.name,
        )
    )
    return 0


def configure_submit(parser: argparse.ArgumentParser) -> None:
    _common(parser, agent=False)
    parser.add_argument("input", help="the user's message")
    parser.add_argument("--run-id", help="the run's id (generated when omitted)")


def run_submit(args: argparse.Namespace) -> int:
    async def main() -> str:
        async with RunQueue(args.dsn, agent="") as queue:
            return await queue.submit(args.input, run_id=args.run_id)

    print(asyncio.run(main()))
    return 0


def configure_decide(parser: argparse.ArgumentParser) -> None:
    _common(parser, agent=False)
    parser.add_argument("run_id")
    parser.add_argument("--approve", action="append", default=[], metavar="REQUEST_ID", help="approve this request")
    parser.add_argument("--deny", action="append", default=[], metavar="REQUEST_ID", help="deny this request")
    parser.add_argument("--reason", default="denied", help="the reason given to the model for --deny")


def run_decide(args: argparse.Namespace) -> int:
    decisions: dict[str, Approve | Deny] = {r: Approve() for r in args.approve}
    decisions.update({r: Deny(args.reason) for r in args.deny})
    if not decisions:
        print("agent-kernel decide: give --approve REQUEST_ID or --deny REQUEST_ID", file=sys.stderr)
        return 2

    async def main() -> None:
        async with RunQueue(args.dsn, agent="") as queue:
            await queue.decide(args.run_id, decisions)

    asyncio.run(main())
    return 0


def configure_outcome(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("run_id")
    parser.add_argument("--wait", action="store_true", help="wait until the run settles")
    parser.add_argument("--timeout", type=float, help="give up waiting after this many seconds")


def describe(found: Any) -> dict[str, Any] | None:
    """A JSON-ready view of what `RunQueue.outcome` returned."""
    if found is None:
        return None
    if isinstance(found, Settled):
        return {
            "run_id": found.run_id,
            "reason": found.reason,
            "pending": [{"id": r.id, "tool": getattr(r, "tool", None)} for r in found.pending],
            "error": found.error,
            "output": found.output,
        }
    return {
        "run_id": found.run_id,
        "reason": found.reason,
        "output": found.output,
        "pending": [],
        "error": found.error.message if found.error else None,
    }


def run_outcome(args: argparse.Namespace) -> int:
    async def main() -> Any:
        async with RunQueue(args.dsn, agent=args.agent) as queue:
            return describe(await queue.outcome(args.run_id, wait=args.wait, timeout=args.timeout))

    print(json.dumps(asyncio.run(main()), default=str))
    return 0


COMMANDS = {
    "worker": (configure_worker, run_worker),
    "submit": (configure_submit, run_submit),
    "decide": (configure_decide, run_decide),
    "outcome": (configure_outcome, run_outcome),
}
