"""A parent run delegating to a sub-agent, for the crash-point tests (run as a subprocess).

    python handoff_scenario.py run|resume DB LEDGER [--append N --when before|after]

`run` starts run "root"; `resume` first prints how many model turns each journaled
run has recorded, then resumes "root" (or starts it, if the crashed process left
nothing). Every model request is written to LEDGER as ``<tag> llm parent|child <turn>``
and every tool execution as ``<tag> tool <idempotency key>``. ``--append N`` kills
the process at the journal's N-th append (parent and child appends count alike).
The outcome is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Literal

import trio

from agent_kernel import Agent, Request, ToolContext
from agent_kernel.journal import Inferred, Started
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_kernel.testing.crash import CrashingJournal, UseJournal
from agent_plugin_handoff import Handoff, SubAgent
from agent_plugin_sqlite import SqliteJournal
from agent_plugin_tools import Toolbox, tool

TAG = os.environ.get("SCENARIO_TAG", "p")
LEDGER = ""


def ledger(line: str) -> None:
    with open(LEDGER, "a") as f:
        f.write(f"{TAG} {line}\n")
        f.flush()
        os.fsync(f.fileno())


@tool(idempotent=True)
def lookup(key: str, ctx: ToolContext) -> str:
    """Read a value (idempotent).

    Args:
        key: which value.
    """
    ledger(f"tool {ctx.idempotency_key}")
    return f"value-of-{key}"


class LedgerModel(ScriptedModel):
    """The scripted model, writing each request (run id from the request, turn) to the ledger."""

    async def infer(self, request: Request, deltas: Any) -> Any:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        ledger(f"llm {self.tag} {turn}")
        return await super().infer(request, deltas)

    def __init__(self, tag: str, turns: list[Any]) -> None:
        super().__init__(turns)
        self.tag = tag


def build(db: str, append: int | None, when: Literal["before", "after"]) -> tuple[Agent, CrashingJournal]:
    journal = CrashingJournal(SqliteJournal(db), at=append, when=when)
    child = SubAgent(
        "researcher",
        "Looks things up.",
        model="scripted",
        plugins=[
            LedgerModel("child", [tool_call("lookup", key="a"), tool_call("lookup", key="b"), text("a and b found")]),
            Toolbox([lookup]),
        ],
        autoload=False,
    )
    parent = [tool_call("researcher", input="child-task"), text("The researcher found a and b.")]
    agent = Agent(
        "scripted",
        [LedgerModel("parent", parent), Toolbox([lookup]), Handoff([child]), UseJournal(journal)],
        autoload=False,
    )
    return agent, journal


async def main(args: argparse.Namespace) -> dict[str, Any]:
    agent, journal = build(args.db, args.append, args.when)
    report: dict[str, Any] = {}
    if args.mode == "resume":
        report["recorded"] = {
            run_id: sum(isinstance(e, Inferred) for e in await journal.load(run_id)) for run_id in await journal.runs()
        }
    if args.mode == "run" or not await journal.load("root"):
        outcome = await agent.run("parent-task", run_id="root")
    else:
        outcome = await agent.resume("root")
    runs = await journal.runs()
    first_starts = {r: sum(isinstance(e, Started) and e.input is not None for e in await journal.load(r)) for r in runs}
    report.update(reason=outcome.reason, output=outcome.output, appends=journal.appends, first_starts=first_starts)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "resume"])
    parser.add_argument("db")
    parser.add_argument("ledger")
    parser.add_argument("--append", type=int)
    parser.add_argument("--when", choices=["before", "after"], default="before")
    arguments = parser.parse_args()
    LEDGER = arguments.ledger
    print(json.dumps(trio.run(main, arguments)))
    sys.stdout.flush()
