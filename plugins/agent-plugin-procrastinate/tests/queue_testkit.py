"""The agent the queue tests' workers run (``--agent queue_testkit:make_agent``), and the ledger checks.

A run's input is ``run=<id> steps=<n> approve=<0|1>``. The scripted model asks, at
turn k < n, for ``lookup`` (idempotent) on even turns and ``charge`` (not idempotent)
on odd ones; with ``approve=1`` turn 1 asks for ``send`` instead, which suspends the
run for approval; at turn n it answers ``done``. Every model request and tool execution
is appended to the ledger file ``$AGENT_LEDGER`` (one fsynced line each):
``llm <run> <turn> <attempt> <host>`` and ``tool <name> <idempotency key> <attempt> <host>``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import Any

from agent_kernel import Agent, Request, ToolCall, ToolContext, hookimpl, patches
from agent_kernel.journal import Decided, Inferred
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_postgres import PostgresJournal
from agent_plugin_tools import Toolbox, tool

ATTEMPTS: dict[str, int] = {}  # run id -> this process's current attempt on it
DELAY = float(os.environ.get("AGENT_TOOL_DELAY", "0"))
HOST = os.environ.get("AGENT_HOST", "-")  # which (simulated) machine wrote a ledger line


def ledger(line: str) -> None:
    path = os.environ.get("AGENT_LEDGER")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line} {HOST}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def parse(request: Request) -> dict[str, str]:
    first = next(m.content for m in request.messages if m.role == "user")
    return dict(re.findall(r"(\w+)=(\S+)", first))


def turn(request: Request) -> Any:
    spec = parse(request)
    k = sum(1 for m in request.messages if m.role == "assistant")
    ledger(f"llm {spec['run']} {k} {ATTEMPTS.get(spec['run'], 0)}")
    if k >= int(spec["steps"]):
        return text("done")
    if k == 1 and spec.get("approve") == "1":
        return tool_call("send", to=f"ops-{spec['run']}")
    if k % 2:
        return tool_call("charge", amount=k)
    return tool_call("lookup", key=f"k{k}")


async def _pause() -> None:
    if DELAY:
        import anyio

        await anyio.sleep(DELAY)


@tool(idempotent=True)
async def lookup(key: str, ctx: ToolContext) -> str:
    """Read a value (idempotent).

    Args:
        key: which value.
    """
    ledger(f"tool lookup {ctx.idempotency_key} {ATTEMPTS.get(ctx.run_id, 0)}")
    await _pause()
    return f"value-of-{key}"


async def charge(amount: int, ctx: ToolContext) -> str:
    """Charge the customer (not idempotent).

    Args:
        amount: euros.
    """
    ledger(f"tool charge {ctx.idempotency_key} {ATTEMPTS.get(ctx.run_id, 0)}")
    await _pause()
    return f"charged {amount} EUR"


async def send(to: str, ctx: ToolContext) -> str:
    """Send an email (not idempotent, needs approval).

    Args:
        to: recipient.
    """
    ledger(f"tool send {ctx.idempotency_key} {ATTEMPTS.get(ctx.run_id, 0)}")
    return f"sent to {to}"


class Gate:
    """Notes each invocation's attempt; `send` needs a human."""

    name = "queue-test-gate"

    @hookimpl
    def agent_run_start(self, ctx: Any) -> None:
        ATTEMPTS[ctx.run_id] = ctx.attempt

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        return [patches.Suspend("emails need a human")] if call.name == "send" else None


def make_agent(journal: PostgresJournal) -> Agent:
    """The factory the workers import."""
    return Agent(
        model="scripted",
        plugins=[ScriptedModel([turn] * 64), Toolbox([lookup, charge, send]), Gate(), journal],
        autoload=False,
    )


def check_ledger(
    lines: list[str], entries_by_run: dict[str, list[Any]], first_attempt: dict[str, dict[int, int]]
) -> dict[str, int]:
    """Count broken promises from the ledger and the journal.

    Args:
        lines: the ledger's lines.
        entries_by_run: each run's journal entries.
        first_attempt: run -> turn -> the attempt that journaled that turn's response.
    """
    tools = Counter()
    repeated_turns = 0
    for line in lines:
        parts = line.split()
        if parts[0] == "tool":
            tools[(parts[1], parts[2])] += 1
        elif parts[0] == "llm":
            run, k, attempt = parts[1], int(parts[2]), int(parts[3])
            recorded_by = first_attempt.get(run, {}).get(k)
            if recorded_by is not None and attempt > recorded_by:
                repeated_turns += 1  # an attempt that loaded the recorded turn requested it again
    non_idempotent = sum(1 for (name, _), n in tools.items() if name != "lookup" and n > 1)
    decided_twice = 0
    for entries in entries_by_run.values():
        counts = Counter(e.request_id for e in entries if isinstance(e, Decided))
        decided_twice += sum(1 for n in counts.values() if n > 1)
    return {
        "non_idempotent_repeated": non_idempotent,
        "recorded_turns_requested_again": repeated_turns,
        "decisions_applied_twice": decided_twice,
    }


def turns_recorded(rows: list[tuple[int, int, str]], entries: list[Any]) -> dict[int, int]:
    """turn -> attempt that journaled it, from (seq, attempt, kind) rows and the decoded entries."""
    out: dict[int, int] = {}
    k = 0
    for (_, attempt, _kind), entry in zip(rows, entries, strict=True):
        if isinstance(entry, Inferred):
            out[k] = attempt
            k += 1
    return out
