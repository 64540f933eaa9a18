"""``agent-kernel demo``: a scripted travel agent that explains what the kernel does.

No network and no key: the model is a `ScriptedModel`. The run calls two tools in
parallel, pauses for a human to approve a booking, resumes, and streams its answer.
Then it shows what the kernel did: phases, patches and journal entries.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from typing import Any

import anyio

from . import events as ev
from . import patches
from ._agent import Agent
from ._state import Approve, ToolCall
from .hookspecs import hookimpl
from .journal import Committed, MemoryJournal
from .testing import RunRecorder, ScriptedModel, text, tool_call

_TTY = sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _c(code: str, s: str) -> str:
    return f"\033[{code}m{s}\033[0m" if _TTY else s


def dim(s: str) -> str:
    return _c("2", s)


def bold(s: str) -> str:
    return _c("1", s)


def get_weather(city: str) -> str:
    """Today's weather in a city.

    Args:
        city: the city name.
    """
    return {"Lisbon": "sunny, 24°C", "Oslo": "snow, -3°C"}.get(city, "unknown")


async def convert(amount: float, currency: str, to: str) -> str:
    """Convert an amount of money between currencies.

    Args:
        amount: how much.
        currency: ISO code of the amount's currency.
        to: ISO code to convert to.
    """
    rates = {("EUR", "USD"): 1.08, ("USD", "EUR"): 0.93}
    return f"{amount * rates.get((currency, to), 1.0):.2f} {to}"


def book_hotel(city: str, nights: int) -> str:
    """Book a hotel room (costs money: needs approval).

    Args:
        city: where.
        nights: how many nights.
    """
    return f"Booked Hotel Avenida, {city}, {nights} nights, confirmation AV-{nights * 7331}"


class BookingNeedsApproval:
    """A policy plugin: any call of `book_hotel` waits for a human decision."""

    name = "demo-approval"

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        if call.name == "book_hotel":
            return [patches.Suspend(f"book_hotel spends money ({dict(call.arguments)})")]
        return None


class Narrator:
    """An observer plugin: prints each event as the run emits it."""

    name = "demo-narrator"

    def __init__(self) -> None:
        self.streaming = False

    def _line(self, s: str) -> None:
        if self.streaming:
            print()
            self.streaming = False
        print(s)

    @hookimpl
    def agent_on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.TextDelta):
            if not self.streaming:
                print("  " + bold("assistant: "), end="")
                self.streaming = True
            print(event.text, end="", flush=True)
        elif isinstance(event, ev.RunStarted):
            self._line(dim(f"  ── RunStart (attempt {event.attempt}{', resumed' if event.resumed else ''})"))
        elif isinstance(event, ev.StepStarted):
            self._line(dim(f"  ── step {event.step}"))
        elif isinstance(event, ev.InferenceFinished) and event.message.tool_calls:
            names = ", ".join(c.name for c in event.message.tool_calls)
            self._line(f"  model asks for {len(event.message.tool_calls)} tool call(s): {names}")
        elif isinstance(event, ev.ToolCallStarted):
            self._line(f"    → {event.call.name}({', '.join(f'{k}={v!r}' for k, v in event.call.arguments.items())})")
        elif isinstance(event, ev.ToolCallFinished):
            self._line(f"    ← {event.name}: {event.result.content}")
        elif isinstance(event, ev.ApprovalRequested):
            self._line(_c("33", f"    ⏸ suspended: {event.request.reason}"))
        elif isinstance(event, ev.RunEnded):
            self._line(dim(f"  ── RunEnd: {event.reason}"))


def _script() -> list[Any]:
    return [
        [tool_call("get_weather", city="Lisbon"), tool_call("convert", amount=120, currency="EUR", to="USD")],
        tool_call("book_hotel", city="Lisbon", nights=2),
        text(
            "Lisbon is sunny at 24°C. Your 120 EUR budget is about 129.60 USD. "
            "I booked Hotel Avenida for 2 nights (confirmation AV-14662). Enjoy the trip!"
        ),
    ]


async def _demo() -> int:
    try:
        from agent_plugin_tools import Toolbox
    except ImportError:
        print("the demo needs agent-plugin-tools: run it with ./dev demo", file=sys.stderr)
        return 1
    recorder = RunRecorder()
    model = ScriptedModel(_script())
    agent = Agent(
        model="scripted",
        plugins=[
            model,
            Toolbox([get_weather, convert, book_hotel], parallel=True),
            BookingNeedsApproval(),
            Narrator(),
            recorder,
        ],
        autoload=False,
        instructions="You are a travel agent.",
    )
    print(bold("agent-kernel demo") + dim("  (scripted model: no network, no key)"))
    print('user: "Weather in Lisbon, my 120 EUR in USD, and book me 2 nights."\n')
    outcome = await agent.run("Weather in Lisbon, my 120 EUR in USD, and book me 2 nights.", run_id="demo-run")
    print(f"\noutcome: {bold(outcome.reason)}, pending: {[r.id for r in outcome.pending]}")
    print(dim("the run is durably suspended: no task is waiting. A human approves..."))
    decisions: dict[str, Any] = {request.id: Approve() for request in outcome.pending}
    print()
    outcome = await agent.resume(outcome.run_id, decisions=decisions)
    print(f"\noutcome: {bold(outcome.reason)}")

    journal = agent.journal
    assert isinstance(journal, MemoryJournal)
    entries = await journal.load(outcome.run_id)
    kinds = Counter(type(e).__name__ for e in entries)
    patch_kinds = Counter(type(p).__name__ for e in entries if isinstance(e, Committed) for p in e.patches)
    phases = Counter(recorder.phases)
    print("\n" + bold("what the kernel did"))
    print(f"  phases:   {', '.join(f'{k} ×{v}' for k, v in phases.items())}")
    print(f"  patches:  {', '.join(f'{k} ×{v}' for k, v in patch_kinds.items()) or 'none'}")
    print(f"  journal:  {len(entries)} entries ({', '.join(f'{k} ×{v}' for k, v in kinds.items())})")
    s = outcome.stats
    print(
        f"  stats:    {s.steps} steps, {s.llm_calls} model calls, {s.tool_calls} tool calls "
        f"(2 in parallel), {outcome.usage.total_tokens} tokens"
    )
    print(f"  model requests made: {len(model.requests)} — the resume did not re-ask recorded turns")
    return 0 if outcome.reason == "completed" else 1


def main() -> int:
    return anyio.run(_demo)
