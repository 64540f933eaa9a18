"""A multi-step run with parallel tools and an approval, for the crash-point matrix.

Run as a subprocess by tests/test_crash_matrix.py:

    python crash_scenario.py run|approve|recover DB LEDGER [--append N --when before|after] [--tool NAME --at enter|exit]

`run` starts the run (it suspends for approval of `send_email`), `approve` resumes
it approving every pending request, `recover` resumes until it completes
(approving whatever is pending). Every side effect is written to LEDGER as a line
``<process tag> <what>``: model requests ``llm <turn>``, tool executions
``tool <name> <idempotency key>``. A crash option kills the process with
``os._exit`` at that point. The outcome is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import trio

from agent_kernel import Agent, Approve, Request, ToolCall, ToolContext, hookimpl, patches
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_kernel.testing.crash import CrashingJournal, CrashInTool, UseJournal
from agent_plugin_sqlite import SqliteJournal
from agent_plugin_tools import Toolbox, tool

RUN_ID = "crash-run"
LEDGER = os.environ.get("CRASH_LEDGER", "")
TAG = os.environ.get("CRASH_TAG", "p")


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
    ledger(f"tool lookup {ctx.idempotency_key}")
    return f"value-of-{key}"


def charge(amount: int, ctx: ToolContext) -> str:
    """Charge the customer (not idempotent).

    Args:
        amount: euros.
    """
    ledger(f"tool charge {ctx.idempotency_key}")
    return f"charged {amount} EUR"


def send_email(to: str, ctx: ToolContext) -> str:
    """Send an email (not idempotent, needs approval).

    Args:
        to: recipient.
    """
    ledger(f"tool send_email {ctx.idempotency_key}")
    return f"sent to {to}"


class LedgerModel(ScriptedModel):
    """The scripted model, writing each request to the ledger."""

    async def infer(self, request: Request, deltas: Any) -> Any:
        ledger(f"llm {sum(1 for m in request.messages if m.role == 'assistant')}")
        return await super().infer(request, deltas)


SCRIPT = [
    [tool_call("lookup", key="a"), tool_call("lookup", key="b"), tool_call("charge", amount=5)],
    [tool_call("send_email", to="ops@example.com"), tool_call("lookup", key="c")],
    text("All done: looked up a, b and c, charged 5 EUR and emailed ops."),
]


class EmailNeedsApproval:
    name = "email-approval"

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        return [patches.Suspend("emails need a human")] if call.name == "send_email" else None


def build(args: argparse.Namespace) -> tuple[Agent, CrashingJournal]:
    journal = CrashingJournal(SqliteJournal(args.db), at=args.append, when=args.when)
    plugins: list[object] = [
        LedgerModel(SCRIPT),
        Toolbox([lookup, charge, send_email], parallel=True),
        EmailNeedsApproval(),
        UseJournal(journal),
    ]
    if args.tool:
        plugins.append(CrashInTool(args.tool, when=args.at))
    return Agent(model="scripted", plugins=plugins, autoload=False), journal


async def main(args: argparse.Namespace) -> dict[str, Any]:
    agent, journal = build(args)
    if args.mode == "run":
        outcome = await agent.run("Look up a, b and c, charge 5 EUR, and email ops.", run_id=RUN_ID)
    else:
        outcome = await agent.resume(RUN_ID)
        while outcome.reason == "suspended" and args.mode in ("approve", "recover"):
            outcome = await agent.resume(RUN_ID, decisions={r.id: Approve() for r in outcome.pending})
            if args.mode == "approve":
                break
    return {
        "reason": outcome.reason,
        "error": outcome.error.message if outcome.error else None,
        "pending": [r.id for r in outcome.pending],
        "appends": journal.appends,
        "messages": [
            [m.role, m.content, m.tool_call_id, m.is_error, [[c.id, c.name, dict(c.arguments)] for c in m.tool_calls]]
            for m in outcome.state.messages
        ],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "approve", "recover"])
    parser.add_argument("db")
    parser.add_argument("--append", type=int)
    parser.add_argument("--when", choices=["before", "after"], default="before")
    parser.add_argument("--tool")
    parser.add_argument("--at", choices=["enter", "exit"], default="exit")
    arguments = parser.parse_args()
    print(json.dumps(trio.run(main, arguments)))
    sys.exit(0)
