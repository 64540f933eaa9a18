"""The memory curve of many sequential runs on one `Agent` with the default journal (DESIGN §7).

Workload: the smallest model (answers "hi" in one step, keeps nothing), no other
plugin, the default in-memory journal (it keeps unfinished runs and the last 1000
finished ones). Prints the process's resident memory every `--every` runs.

    .venv/bin/python bench/memory.py [--runs 100000] [--every 10000]

Flat means: after the journal holds its 1000 finished runs, the resident size stops
growing (Python keeps some freed memory, so small steps up and down are noise).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import trio

from agent_kernel import Agent, Message, Request, Response, Usage, hookimpl


class Echo:
    """The smallest model: answers "hi", keeps nothing (unlike ScriptedModel.requests)."""

    name = "echo"

    @hookimpl
    def agent_register_models(self, models: Any) -> None:
        models.add("echo", self)

    async def infer(self, request: Request, deltas: Any) -> Response:
        return Response(Message("assistant", "hi"), Usage(1, 1), "stop", "echo")


def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


async def main(runs: int, every: int) -> None:
    agent = Agent(model="echo", plugins=[Echo()], autoload=False)
    start = resident_mib()
    print(f"{'runs':>8} {'resident MiB':>13} {'since start':>12} {'µs per run':>11}")
    print(f"{0:8d} {start:13.1f} {0.0:+12.1f}")
    began = time.perf_counter()
    for done in range(1, runs + 1):
        await agent.run("x")
        if done % every == 0:
            now = resident_mib()
            per_run = (time.perf_counter() - began) / every * 1e6
            print(f"{done:8d} {now:13.1f} {now - start:+12.1f} {per_run:11.1f}")
            began = time.perf_counter()
    print(f"finished runs kept by the journal: {len(await agent.journal.runs())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000)
    args = parser.parse_args()
    trio.run(main, args.runs, args.every)
