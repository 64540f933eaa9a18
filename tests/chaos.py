"""Chaos with contention: many runs on one SQLite file, worker processes that resume any
unfinished run at once (so several resume one run concurrently), killed (SIGKILL) and
paused (SIGSTOP, later SIGCONT: zombies that wake on a stale view) at random instants.

    python tests/chaos.py chaos --runs 200 --workers 4 --seconds 180   # a long run, prints figures
    python tests/chaos.py worker DB LEDGER RUNS SEED                   # one worker (used by the above)

Every side effect goes to an fsynced ledger: model requests (``llm RUN TURN TIME``),
responses once journaled (``recorded RUN TURN TIME``) and tool executions (``tool NAME
KEY``). `check` turns the ledger and the journal into the counts that must all be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from agent_kernel import Agent, Approve, Request, ToolCall, ToolContext, hookimpl, patches
from agent_kernel.errors import RunExists, StaleAttempt, UnknownRun
from agent_kernel.journal import Decided, Entry, Inferred, Journal
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_kernel.testing.crash import UseJournal
from agent_plugin_sqlite import SqliteJournal
from agent_plugin_tools import Toolbox, tool

NON_IDEMPOTENT = ("charge", "wire")


class Ledger:
    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, line: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{line}\n")
            f.flush()
            os.fsync(f.fileno())


def make_agent(db: str, ledger: Ledger, rng: random.Random) -> Agent:
    async def pause() -> None:
        await trio.sleep(rng.random() * 0.01)

    @tool(idempotent=True)
    async def lookup(key: str, ctx: ToolContext) -> str:
        """Read a value (idempotent).

        Args:
            key: which value.
        """
        await pause()
        ledger.write(f"tool lookup {ctx.idempotency_key}")
        return f"value-of-{key}"

    async def charge(amount: int, ctx: ToolContext) -> str:
        """Charge the customer (not idempotent).

        Args:
            amount: euros.
        """
        await pause()
        ledger.write(f"tool charge {ctx.idempotency_key}")
        return f"charged {amount}"

    async def wire(amount: int, ctx: ToolContext) -> str:
        """Wire money (not idempotent, needs approval).

        Args:
            amount: euros.
        """
        await pause()
        ledger.write(f"tool wire {ctx.idempotency_key}")
        return f"wired {amount}"

    class WireNeedsApproval:
        name = "wire-approval"

        @hookimpl
        def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
            return [patches.Suspend("wires need a human")] if call.name == "wire" else None

    class LedgerModel(ScriptedModel):
        async def infer(self, request: Request, deltas: Any) -> Any:
            run_id = next(m.content for m in request.messages if m.role == "user").removeprefix("work ")
            turn = sum(1 for m in request.messages if m.role == "assistant")
            ledger.write(f"llm {run_id} {turn} {time.time()}")
            await pause()
            return await super().infer(request, deltas)

    turns = [
        [tool_call("lookup", key="a"), tool_call("charge", amount=5)],
        [tool_call("wire", amount=100), tool_call("lookup", key="b")],
        [tool_call("charge", amount=7)],
        text("done"),
    ]
    journal = RecordingJournal(SqliteJournal(db, timeout=60), ledger)
    plugins = [
        LedgerModel(turns),
        Toolbox([lookup, charge, wire], parallel=True),
        WireNeedsApproval(),
        UseJournal(journal),
    ]
    return Agent(model="scripted", plugins=plugins, autoload=False)


class RecordingJournal:
    """Writes ``recorded RUN TURN TIME`` to the ledger once an `Inferred` is durable."""

    def __init__(self, inner: Journal, ledger: Ledger) -> None:
        self.inner, self.ledger = inner, ledger
        self.turns: dict[str, int] = {}

    def bind(self, codec: Any) -> None:
        self.inner.bind(codec)

    async def claim(self, run_id: str) -> int:
        return await self.inner.claim(run_id)

    async def load(self, run_id: str) -> list[Entry]:
        entries = await self.inner.load(run_id)
        self.turns[run_id] = sum(isinstance(e, Inferred) for e in entries)
        return entries

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        await self.inner.append(run_id, attempt, entries, at=at)
        for entry in entries:
            if isinstance(entry, Inferred):
                self.ledger.write(f"recorded {run_id} {self.turns.get(run_id, 0)} {time.time()}")
                self.turns[run_id] = self.turns.get(run_id, 0) + 1

    async def runs(self) -> list[str]:
        return await self.inner.runs()


async def drive(db: str, ledger_path: str, run_ids: list[str], seed: int) -> None:
    """A worker: forever, pick an unfinished run and start, resume or approve it."""
    rng = random.Random(seed)
    ledger = Ledger(ledger_path)
    agent = make_agent(db, ledger, rng)
    journal: SqliteJournal = agent.journal.inner  # type: ignore[attr-defined]
    while True:
        statuses = {r.id: r.status for r in await _infos(journal)}
        open_runs = [r for r in run_ids if statuses.get(r) not in ("completed",)]
        if not open_runs:
            return
        run_id = rng.choice(open_runs)
        try:
            if statuses.get(run_id, "new") == "new":
                outcome = await agent.run(f"work {run_id}", run_id=run_id)
            else:
                outcome = await agent.resume(run_id)
            if outcome.reason == "suspended":
                await agent.resume(run_id, decisions={r.id: Approve() for r in outcome.pending})
        except (StaleAttempt, UnknownRun, RunExists):  # another worker holds, has just claimed or started it
            pass


async def _infos(journal: SqliteJournal) -> list[Any]:
    return [info for run_id in await journal.runs() if (info := await journal.run_info(run_id)) is not None]


def check(db: Path, ledger: Path, run_ids: list[str]) -> dict[str, int]:
    """The counts that must all be 0 (and how many runs finished)."""
    lines = [line.split() for line in ledger.read_text().splitlines()] if ledger.exists() else []
    executions = Counter((line[1], line[2]) for line in lines if line[0] == "tool" and line[1] in NON_IDEMPOTENT)
    recorded = {(line[1], int(line[2])): float(line[3]) for line in lines if line[0] == "recorded"}
    requested_again = sum(
        1
        for line in lines
        if line[0] == "llm" and (line[1], int(line[2])) in recorded and float(line[3]) > recorded[line[1], int(line[2])]
    )

    async def facts() -> tuple[int, int, int]:
        journal = SqliteJournal(db)
        Agent(model="scripted", plugins=[UseJournal(journal)], autoload=False)
        lost = twice = duplicate_ids = 0
        for run_id in run_ids:
            info = await journal.run_info(run_id)
            if info is None or info.status != "completed":
                lost += 1
                continue
            entries = await journal.load(run_id)
            decided = Counter(e.request_id for e in entries if isinstance(e, Decided))
            twice += sum(n - 1 for n in decided.values())
            agent = Agent(model="scripted", plugins=[UseJournal(journal)], autoload=False)
            messages = agent.fold(run_id, entries).messages
            ids = [c.id for m in messages for c in m.tool_calls]
            duplicate_ids += len(ids) - len(set(ids))
        journal.close()
        return lost, twice, duplicate_ids

    lost, twice, duplicate_ids = trio.run(facts)
    return {
        "runs_lost": lost,
        "duplicate_non_idempotent_executions": sum(n - 1 for n in executions.values()),
        "recorded_turns_requested_again": requested_again,
        "decisions_applied_twice": twice,
        "duplicate_tool_call_ids": duplicate_ids,
    }


def chaos(tmp: Path, runs: int, workers: int, seconds: float, seed: int = 0) -> dict[str, Any]:
    """Run the workers with kills and pauses for `seconds`, then let calm workers finish."""
    rng = random.Random(seed)
    db, ledger = tmp / "runs.db", tmp / "ledger"
    run_ids = [f"run-{i}" for i in range(runs)]
    (tmp / "runs.json").write_text(json.dumps(run_ids))
    counts = Counter[str]()

    def spawn(i: int) -> subprocess.Popen[bytes]:
        args = [sys.executable, __file__, "worker", str(db), str(ledger), str(tmp / "runs.json"), str(rng.random())]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(tmp / f"worker-{i}.err", "ab"))

    procs = [spawn(i) for i in range(workers)]
    paused: list[subprocess.Popen[bytes]] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(rng.uniform(0.05, 0.4))
            i = rng.randrange(workers)
            proc = procs[i]
            if proc.poll() is not None:
                continue
            if rng.random() < 0.4:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                counts["kills"] += 1
                procs[i] = spawn(i)
            elif proc not in paused:
                proc.send_signal(signal.SIGSTOP)
                paused.append(proc)
                counts["pauses"] += 1
            if paused and rng.random() < 0.3:  # a zombie wakes on its stale view
                paused.pop(0).send_signal(signal.SIGCONT)
        for proc in paused:
            proc.send_signal(signal.SIGCONT)
        calm = [spawn(workers + i) for i in range(2)]  # no more chaos: the runs must all finish
        for proc in calm + procs:
            proc.wait(timeout=max(120.0, seconds))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for i in range(workers + 2):
        err = tmp / f"worker-{i}.err"
        if err.exists() and "Traceback" in err.read_text():
            counts["worker_tracebacks"] += 1
    return {"runs": runs, **counts, **check(db, ledger, run_ids)}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker")
    w.add_argument("db")
    w.add_argument("ledger")
    w.add_argument("runs")
    w.add_argument("seed", type=float)
    c = sub.add_parser("chaos")
    c.add_argument("--runs", type=int, default=200)
    c.add_argument("--workers", type=int, default=4)
    c.add_argument("--seconds", type=float, default=180)
    c.add_argument("--dir", default="")
    args = parser.parse_args()
    if args.command == "worker":
        run_ids = json.loads(Path(args.runs).read_text())
        trio.run(drive, args.db, args.ledger, run_ids, int(args.seed * 2**32))
    else:
        import tempfile

        tmp = Path(args.dir or tempfile.mkdtemp(prefix="chaos-"))
        print(json.dumps(chaos(tmp, args.runs, args.workers, args.seconds), indent=2))


if __name__ == "__main__":
    main()
