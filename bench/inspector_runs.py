"""How long the inspector's run list takes on a journal of 10,000 runs (budget: 200 ms).

Builds a SQLite journal: a few real runs through an `Agent` (completed, suspended on
an approval, a failing tool, several steps), then copies their entries in bulk under
new run ids until the file holds RUNS runs (a mix of statuses, about 20 entries each).
Then it serves `agent-plugin-inspector`'s ASGI app in-process (httpx's ASGI transport,
no socket) and times full HTTP GETs of pages, each rendered to HTML:

* ``/runs``: the first page (50 runs, newest first, with steps, tool calls, tokens);
* ``/runs`` again: the same page with the per-run counts cached;
* ``/runs?status=suspended``: a filtered page;
* ``/runs?before=K``: a page deep in the keyset order;
* ``/inbox``: the pending approval requests across runs (the first 100);
* ``/runs/long``: a run of 1,001 steps (its last page of 50 steps), its first page,
  and the fragment a live page polls.

    .venv/bin/python bench/inspector_runs.py [--runs 10000] [--repeat 20] [--dir DIR]

The figure is the median over `--repeat` requests (and the first, cold request).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from typing import Any

import anyio
import httpx

from agent_kernel import Agent, Request, ToolCall, hookimpl, patches
from agent_kernel.testing import FakeTools, ScriptedModel, text, tool_call
from agent_plugin_inspector import SqliteSource, create_app
from agent_plugin_sqlite import SqliteJournal


class Gate:
    name = "bench-gate"

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        return [patches.Suspend("deploys need a person")] if call.name == "deploy" else None


def policy(request: Request) -> Any:
    first = next(m.content for m in request.messages if m.role == "user")
    done = sum(1 for m in request.messages if m.role == "assistant")
    verb, _, rest = first.partition(" ")
    if verb == "deploy":
        return tool_call("deploy", target=rest) if done == 0 else text("deployed")
    if verb == "fail":
        return tool_call("broken") if done == 0 else text("it failed")
    if verb == "count":
        return tool_call("add", a=done, b=1) if done < int(rest) else text("counted")
    return text(first)


def deploy(target: str) -> str:
    return f"deployed {target}"


def broken() -> str:
    raise RuntimeError("broken on purpose")


def add(a: int, b: int) -> int:
    return a + b


async def templates(path: str, steps: int) -> list[str]:
    """Run the template runs (and the long run of `steps` tool steps); return the templates' ids."""
    agent = Agent(
        model="scripted",
        plugins=[
            SqliteJournal(path, durability="batched"),
            ScriptedModel([policy] * 50),
            FakeTools(deploy, broken, add),
            Gate(),
        ],
        autoload=False,
    )
    prompts = {"t-hello": "hello there", "t-deploy": "deploy prod", "t-fail": "fail", "t-count": "count 3"}
    for run_id, prompt in prompts.items():
        await agent.run(prompt, run_id=run_id)
    long = Agent(
        model="scripted",
        plugins=[
            SqliteJournal(path, durability="batched"),
            ScriptedModel([policy] * (steps + 1)),
            FakeTools(deploy, broken, add),
        ],
        autoload=False,
        max_steps=None,
    )
    outcome = await long.run(f"count {steps}", run_id="long")
    assert outcome.stats.steps == steps + 1, outcome
    return list(prompts)


def fill(path: str, template_ids: list[str], runs: int) -> None:
    """Copy the template runs' rows under new ids until the file holds `runs` runs."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        rows = {
            rid: (
                conn.execute("SELECT status, length, meta, attempt FROM runs WHERE id = ?", (rid,)).fetchone(),
                conn.execute("SELECT seq, attempt, kind, data FROM entries WHERE run_id = ?", (rid,)).fetchall(),
            )
            for rid in template_ids
        }
        conn.execute("BEGIN")
        now = time.time() - runs
        have = len(template_ids)
        for i in range(runs - have):
            template = template_ids[i % len(template_ids)]
            (status, length, meta, attempt), entries = rows[template]
            run_id = f"run-{i:05d}"
            created = now + i
            conn.execute(
                "INSERT INTO runs (id, created, updated, attempt, status, length, meta) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, created, created + 0.5, attempt, status, length, meta),
            )
            old = f'"{template}/'
            conn.executemany(
                "INSERT INTO entries (run_id, seq, attempt, kind, data) VALUES (?, ?, ?, ?, ?)",
                [(run_id, seq, a, kind, data.replace(old, f'"{run_id}/')) for seq, a, kind, data in entries],
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


async def timed(client: httpx.AsyncClient, url: str, repeat: int) -> tuple[float, float, int]:
    """(first request ms, median ms, response size)."""
    times = []
    size = 0
    for _ in range(repeat + 1):
        start = time.perf_counter()
        response = await client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: HTTP {response.status_code}: {response.text[:300]}")
        size = len(response.content)
    return times[0], statistics.median(times[1:]), size


async def bench(path: str, repeat: int, long_steps: int) -> None:
    app = create_app(SqliteSource(path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8321") as client:
            conn = sqlite3.connect(path)
            deep = conn.execute("SELECT seq FROM runs ORDER BY seq LIMIT 1 OFFSET 100").fetchone()[0]
            total = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            entries = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            long_entries = conn.execute("SELECT length FROM runs WHERE id = 'long'").fetchone()[0]
            conn.close()
            print(f"journal: {total} runs, {entries} entries, {os.path.getsize(path) / 1e6:.1f} MB")
            print(f"{'page':38} {'first ms':>9} {'median ms':>10} {'bytes':>8}")
            for label, url in (
                ("/runs (50 newest)", "/runs"),
                ("/runs?status=suspended", "/runs?status=suspended"),
                ("/runs?status=completed&before=deep", f"/runs?status=completed&before={deep}"),
                (f"/runs?before={deep} (near the oldest)", f"/runs?before={deep}"),
                ("/inbox (pending requests, first 100)", "/inbox"),
                (f"/runs/long ({long_steps + 1} steps, the latest 50)", "/runs/long"),
                ("/runs/long?steps=1-50", "/runs/long?steps=1-50"),
                ("/fragment/run/long (a live poll)", f"/fragment/run/long?after={long_entries - 10}"),
            ):
                first, median, size = await timed(client, url, repeat)
                print(f"{label:38} {first:9.1f} {median:10.1f} {size:8d}")
            first, median, _ = await timed(client, "/runs", repeat)
            verdict = "within" if max(first, median) < 200 else "OVER"
            print(
                f"run list of {total} runs: {median:.1f} ms median, {first:.1f} ms cold -> {verdict} the 200 ms budget"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--long", type=int, default=1000, help="tool steps of the one long run (default 1000)")
    parser.add_argument("--dir", help="where to put the journal file (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "runs.db")
        start = time.perf_counter()
        ids = anyio.run(templates, path, args.long, backend="trio")
        fill(path, ids, args.runs - 1)  # the long run is one of them
        print(f"built the journal in {time.perf_counter() - start:.1f} s")
        anyio.run(bench, path, args.repeat, args.long, backend="trio")


if __name__ == "__main__":
    main()
