"""``agent-kernel demo``: a scripted travel agent that explains what the kernel does.

No network and no key: the model is a `ScriptedModel`, the journal a SQLite file in a
temporary directory. The run calls two tools in parallel and pauses for a human to
approve a booking. The demo approves it and resumes in a second process, which dies
(``os._exit``) inside a tool call. The first process resumes the run from the SQLite
file and the answer streams. Then it sums up what the kernel did: phases, patches
and journal entries, and how often each model turn and tool really ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from agent_kernel import Agent, Approve, ToolCall, hookimpl, patches
from agent_kernel import events as ev
from agent_kernel.console import Console, EventPrinter
from agent_kernel.journal import Committed, Entry, Intended, ToolDone, expand
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_kernel.testing.crash import CRASH_EXIT_CODE, CrashInTool

RUN_ID = "demo-trip"
PROMPT = "Weather in Lisbon, my 120 EUR in USD, book me 2 nights, and what's on this weekend?"
_out = Console(sys.stdout)


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


def local_events(city: str) -> str:
    """What is on in a city this weekend (read-only: safe to run twice).

    Args:
        city: the city name.
    """
    return {"Lisbon": "Fado night in Alfama (Sat), food market at Time Out (Sun)"}.get(city, "nothing listed")


TOOL_NAMES = ("get_weather", "convert", "book_hotel", "local_events")


def _script() -> list[Any]:
    return [
        [tool_call("get_weather", city="Lisbon"), tool_call("convert", amount=120, currency="EUR", to="USD")],
        tool_call("book_hotel", city="Lisbon", nights=2),
        tool_call("local_events", city="Lisbon"),
        text(
            "Lisbon is sunny at 24°C and your 120 EUR are about 129.60 USD. "
            "I booked Hotel Avenida for 2 nights (confirmation AV-14662). "
            "This weekend: a fado night in Alfama on Saturday and the Time Out food market on Sunday. Enjoy!"
        ),
    ]


class BookingNeedsApproval:
    """A policy plugin: any call of `book_hotel` waits for a human decision."""

    name = "demo-approval"

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        if call.name == "book_hotel":
            return [patches.Suspend(f"book_hotel spends money ({dict(call.arguments)})")]
        return None


class Ledger:
    """Appends a line to a file for every real model request and tool run (in any process)."""

    name = "demo-ledger"

    def __init__(self, path: Path) -> None:
        self.path = path

    @asynccontextmanager
    async def _note(self, line: str) -> AsyncIterator[None]:
        with self.path.open("a") as f:
            f.write(line + "\n")
        yield

    @hookimpl
    def agent_wrap_inference(self) -> Any:
        return self._note("model")

    @hookimpl
    def agent_wrap_tool_call(self, call: ToolCall) -> Any:
        return self._note(f"tool {call.name}")


class Narrator:
    """An observer plugin: shows each event as the run emits it."""

    name = "demo-narrator"

    def __init__(self) -> None:
        self.printer = EventPrinter(_out, _out, phases=True, indent="   ")

    @hookimpl
    def agent_on_event(self, event: ev.Event) -> None:
        self.printer.show(event)
        if isinstance(event, ev.TextDelta) and not os.environ.get("AGENT_KERNEL_DEMO_FAST"):
            time.sleep(0.03)  # a typing pace, to watch the answer stream
        if isinstance(event, ev.RunEnded):
            self.printer.end_text()


def make_agent(workdir: Path, *extra: object) -> tuple[Agent, ScriptedModel]:
    """The demo's agent: scripted model, parallel tools, approval policy, SQLite journal."""
    from agent_plugin_sqlite import SqliteJournal
    from agent_plugin_tools import Toolbox, tool

    model = ScriptedModel(_script())
    tools = Toolbox([get_weather, convert, book_hotel, tool(idempotent=True)(local_events)], parallel=True)
    plugins = [model, tools, BookingNeedsApproval(), Ledger(workdir / "ledger.txt"), Narrator(), *extra]
    journal = SqliteJournal(workdir / "runs.db")
    agent = Agent(model="scripted", plugins=[*plugins, journal], autoload=False, instructions="You are a travel agent.")
    return agent, model


def _say(text: str, style: str = "", pause: float = 0.0) -> None:
    _out.line(text, style)
    if pause and not os.environ.get("AGENT_KERNEL_DEMO_FAST"):
        time.sleep(pause)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in counter.items()) or "none"


async def _first_part(workdir: Path) -> str:
    agent, _ = make_agent(workdir)
    _say("① The run starts in this process. The model asks for two tools at once; they run in parallel.", "bold")
    outcome = await agent.run(PROMPT, run_id=RUN_ID)
    request = outcome.pending[0]
    _say(f"   outcome: {outcome.reason}, pending request {request.id} ({request.tool})", "yellow")
    _say("   The run is parked in the SQLite journal: no task is waiting, any process can continue it.", "dim", 1.0)
    return request.id


def _second_part(workdir: Path, request_id: str) -> int:
    _say("\n② A human approves the booking (the demo does it for you), and a second process resumes the run.", "bold")
    _say("   That process will die (os._exit) inside the local_events tool, after the tool ran", "dim")
    _say("   but before its result was journaled: a crash mid-call.", "dim", 0.5)
    _say(f"   ✔ approved {request_id}", "green")
    child = subprocess.run(
        [sys.executable, "-m", "agent_plugin_demo._demo", "--resume-and-crash", str(workdir), request_id], check=False
    )
    _say(f"   💥 the second process died (exit code {child.returncode}) in the middle of a tool call.", "bold red", 1.0)
    return child.returncode


async def _third_part(workdir: Path) -> tuple[int, list[Entry]]:
    agent, _ = make_agent(workdir)
    before = await agent.journal.load(RUN_ID)
    last = before[-1]
    _say(f"\n③ This process reopens {workdir.name}/runs.db: {len(before)} journal entries survived.", "bold")
    if isinstance(last, Intended):
        _say(f"   The last one is the intent of call {last.call_id} (local_events) with no result after it.", "dim")
    _say("   local_events is declared idempotent, so the kernel may run it again (a tool that is not", "dim")
    _say("   would give the model an 'outcome unknown' error instead). Recorded turns are not re-asked.", "dim", 0.8)
    outcome = await agent.resume(RUN_ID)
    _say(
        f"   outcome: {outcome.reason} after {outcome.stats.steps} steps",
        "green" if outcome.reason == "completed" else "red",
    )
    return (0 if outcome.reason == "completed" else 1), await agent.journal.load(RUN_ID)


def _summary(workdir: Path, entries: list[Entry]) -> None:
    kinds = Counter(type(e).__name__ for e in entries)
    committed = [e for e in entries if isinstance(e, Committed)]
    phases = Counter(e.phase for e in expand(RUN_ID, entries) if isinstance(e, Committed))
    patch_kinds = Counter(type(p).__name__ for e in committed for p in e.patches)
    ledger = Counter((workdir / "ledger.txt").read_text().splitlines())
    tool_results = sum(isinstance(e, ToolDone) for e in entries)
    _say("\nWhat the kernel did", "bold")
    _say(f"   invocations: {kinds['Started']} (run, resume after approval, resume after the crash) in 2 processes")
    _say(f"   phases passed:    {_counts(phases)}")
    _say(f"   ({len(committed)} journaled; the next entry implies a phase no plugin implements and no patch", "dim")
    _say("   came from. run_end ×2 for 3 invocations: the crashed process never reached RunEnd)", "dim")
    _say(f"   plugin patches:   {_counts(patch_kinds)} (the policy plugin's; the kernel's own changes are entries)")
    _say(f"   journal entries:  {len(entries)} ({_counts(kinds)})")
    _say(f"   model requests:   {ledger['model']} for {kinds['Inferred']} recorded turns: no turn was asked twice")
    runs = ", ".join(f"{name} ×{ledger['tool ' + name]}" for name in TOOL_NAMES)
    _say(f"   tool runs:        {runs} ({tool_results} results journaled; the crashed call's intent is kept too)")
    _say("   book_hotel ran once: approved once, applied once, never re-run by a resume.", "dim")


async def _demo(workdir: Path) -> int:
    _say("agent-kernel demo", "bold")
    _say("A travel agent with a scripted model (no network, no key) and a SQLite journal.", "dim")
    _say(f'user: "{PROMPT}"\n', pause=0.5)
    request_id = await _first_part(workdir)
    crashed = _second_part(workdir, request_id)
    if crashed != CRASH_EXIT_CODE:
        _say(f"the second process was expected to crash with {CRASH_EXIT_CODE}, not {crashed}", "red")
        return 1
    code, entries = await _third_part(workdir)
    _summary(workdir, entries)
    return code


def main(fast: bool = False) -> int:
    """Run the demo; 0 when the run completed as told."""
    for module, dist in (("agent_plugin_tools", "agent-plugin-tools"), ("agent_plugin_sqlite", "agent-plugin-sqlite")):
        try:
            __import__(module)
        except ImportError:
            print(f"the demo needs {dist}: install it (pip install {dist}) or run ./dev demo", file=sys.stderr)
            return 1
    if fast:
        os.environ["AGENT_KERNEL_DEMO_FAST"] = "1"
    with tempfile.TemporaryDirectory(prefix="agent-kernel-demo-") as tmp:
        return anyio.run(_demo, Path(tmp), backend="trio")


def _resume_and_crash(workdir: Path, request_id: str) -> None:
    """The second process: approve, resume, and die inside ``local_events``."""
    agent, _ = make_agent(workdir, CrashInTool("local_events", when="exit"))

    async def go() -> None:
        await agent.resume(RUN_ID, decisions={request_id: Approve()})

    anyio.run(go, backend="trio")
    raise SystemExit("the run should have crashed in local_events")


if __name__ == "__main__" and sys.argv[1:2] == ["--resume-and-crash"]:
    _resume_and_crash(Path(sys.argv[2]), sys.argv[3])
