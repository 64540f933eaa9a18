"""The same agent-loop workload on agent-kernel and on peer frameworks, per step, in one process.

Workload: a scripted model (no network) asks for one `add(a, b)` tool call per step
for K steps, then answers "5"; the tool is one async function. Per step = the wall
time of a whole run divided by K (each agent is built once, outside the timing).
Each framework runs with its defaults: no tracing, no telemetry exporter, no
persistence beyond its in-memory default unless the row says so. Every run is checked:
the tool ran exactly K times and the answer is "5", so no figure measures a
short-circuited loop.

    .venv/bin/python bench/peers.py              # or: ./dev bench --peers
    .venv/bin/python bench/peers.py --only agent-kernel --quick
    .venv/bin/python bench/peers.py --instructions [--only agent-kernel,yaab-sdk] [--steps 20] [--runs 50]

`--instructions` counts instructions per step instead of timing, the way
bench/instructions.py does (and with its code): each row runs in a process of its own
under `valgrind --tool=callgrind`, once doing 1 run and once 1 + RUNS runs of K steps
(K=20 by default), every run checked as above, and the difference is divided by
RUNS * K, so start-up and imports cancel out. The counts do not move with the
machine's load, which wall-clock ratios do by ±20 %. It counts exactly the rows --only
names (default floor, agent-kernel, yaab-sdk) and, with both, prints
agent-kernel / yaab-sdk. Needs valgrind; callgrind runs ~50x slower than Python alone.

The peers never enter the project's venv: the first call creates bench/.venv-peers
with the pinned versions of PINS (plus agent-kernel and agent-plugin-tools, editable
from this repository) and re-executes itself there. `--only agent-kernel` needs no
peer and runs in the current interpreter.

Rows: floor (bench/run.py's bare loop with 8 pluggy hook calls per step), agent-kernel
(`ScriptedModel` + `Toolbox`, no other plugin: not the 8 no-op plugins of run.py),
agent-kernel under trio, pydantic-ai (`FunctionModel`), openai-agents (a `Model`
subclass), langgraph (`create_react_agent` with a fake chat model; and again with
`InMemorySaver`), google-adk (a `BaseLlm` subclass, `InMemoryRunner`), yaab-sdk
(`yaab.Agent` with `yaab.testing.FunctionModel`, `tools=[add]`; the peer DESIGN §7's
budget is set against: with it, the last line gives agent-kernel ÷ yaab-sdk). Everything but
the trio row runs under asyncio. Samples of all rows alternate (the order rotates every
round) and each row keeps its best sample.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import importlib.metadata
import importlib.util
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-peers"
EDITABLE = (ROOT, ROOT / "plugins" / "agent-plugin-tools")

# The peers and the libraries their loops run through, pinned (resolved together on 2026-12-03).
PINS = (
    "pydantic-ai-slim==2.68.0",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "openai-agents==0.24.0",
    "openai==3.57.0",
    "langgraph==1.2.24",
    "langgraph-prebuilt==1.1.3",
    "langgraph-checkpoint==4.3.2",
    "langchain-core==1.8.3",
    "google-adk==2.13.0",
    "google-genai==2.34.0",
    "yaab-sdk==0.4.0",  # without its `rust` extra (yaab-core): the default install; its agent loop never calls it
)

PROMPT = "What is 2+3?"
ANSWER = "5"


# ------------------------------------------------------------------ the workload, per framework


class Counter:
    """Counts the tool's invocations: the proof that a run did its K tool calls."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0


def make_add(counter: Counter) -> Callable[[int, int], Awaitable[int]]:
    """A fresh `add` tool per framework (decorators may wrap or annotate it)."""

    async def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: The first number.
            b: The second number.
        """
        counter.calls += 1
        return a + b

    # real types, not this module's postponed strings: some peers resolve the hints on every call
    add.__annotations__ = {"a": int, "b": int, "return": int}
    return add


def step_of(history_length: int) -> int:
    """Tool calls already made, from the length of the conversation the model sees.

    Every framework's model input is [user, (assistant tool call, tool result) * n]:
    O(1), like run.py's BenchModel, so no scripted model costs more as the run grows.
    """
    return (history_length - 1) // 2


@dataclass
class Case:
    """One row: `run()` does one whole run and returns its final text."""

    name: str
    run: Callable[[], Awaitable[str]]
    counter: Counter | None = None  # None: the row checks its own work (the floor)
    reset: Callable[[], None] = lambda: None  # drop what finished runs left behind, between samples
    loop: str = "asyncio"
    runs: int = 1  # runs per sample, calibrated
    samples: list[float] = field(default_factory=list)  # µs per step


def bench_module(stem: str) -> Any:
    """bench/<stem>.py, loaded as a module (bench/ is no package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{stem}", HERE / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def floor_case(k: int) -> Case:
    bench_run = bench_module("run")
    floor_run = bench_run.floor_run
    pm = bench_run.floor_manager()

    async def run() -> str:
        messages = await floor_run(pm, k + 1)  # run.py counts the answering step: k + 1 model calls, k tool calls
        if len(messages) != 2 * k + 2:
            raise AssertionError(f"floor: {len(messages)} messages, expected {2 * k + 2}")
        return str(messages[-1].content)

    return Case("floor", run)


def kernel_case(k: int, loop: str = "asyncio") -> Case:
    from agent_kernel import Agent
    from agent_kernel.testing import ScriptedModel, text, tool_call
    from agent_plugin_tools import Toolbox

    counter = Counter()
    model = ScriptedModel([tool_call("add", a=2, b=3)] * k + [text(ANSWER)])
    agent = Agent(model="scripted", plugins=[model, Toolbox([make_add(counter)])], autoload=False, max_steps=None)

    async def run() -> str:
        outcome = await agent.run(PROMPT)
        if outcome.reason != "completed":
            raise AssertionError(f"agent-kernel: {outcome.reason} {outcome.error}")
        return str(outcome.output)

    def reset() -> None:  # the default journal keeps only the last 1000 finished runs by itself
        model.requests.clear()

    return Case("agent-kernel" if loop == "asyncio" else "agent-kernel (trio)", run, counter, reset, loop)


def pydantic_ai_case(k: int) -> Case:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.usage import RequestUsage, UsageLimits

    counter = Counter()

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        # usage given, as a real model reports it: FunctionModel would otherwise estimate it from every message
        n = step_of(len(messages))
        if n < k:
            part: Any = ToolCallPart("add", {"a": 2, "b": 3}, tool_call_id=f"call_{n}")
            return ModelResponse(parts=[part], usage=RequestUsage(input_tokens=10, output_tokens=5))
        return ModelResponse(parts=[TextPart(ANSWER)], usage=RequestUsage(input_tokens=10, output_tokens=1))

    agent = Agent(FunctionModel(respond), tools=[make_add(counter)])
    limits = UsageLimits(request_limit=k + 10)  # the default allows 50 requests

    async def run() -> str:
        result = await agent.run(PROMPT, usage_limits=limits)
        return str(result.output)

    return Case("pydantic-ai", run, counter)


def openai_agents_case(k: int) -> Case:
    from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    set_tracing_disabled(True)
    counter = Counter()

    class Scripted(Model):
        async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
            n = step_of(1 if isinstance(input, str) else len(input))
            if n < k:
                item: Any = ResponseFunctionToolCall(
                    arguments='{"a": 2, "b": 3}', call_id=f"call_{n}", name="add", type="function_call", id=f"fc_{n}"
                )
                usage = Usage(requests=1, input_tokens=10, output_tokens=5, total_tokens=15)
            else:
                content = [ResponseOutputText(annotations=[], text=ANSWER, type="output_text")]
                item = ResponseOutputMessage(
                    id="msg_1", content=content, role="assistant", status="completed", type="message"
                )
                usage = Usage(requests=1, input_tokens=10, output_tokens=1, total_tokens=11)
            return ModelResponse(output=[item], usage=usage, response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    agent = Agent(name="bench", model=Scripted(), tools=[function_tool(make_add(counter))])
    config = RunConfig(tracing_disabled=True)

    async def run() -> str:
        result = await Runner.run(agent, PROMPT, max_turns=k + 10, run_config=config)  # the default allows 10 turns
        return str(result.final_output)

    return Case("openai-agents", run, counter)


def langgraph_case(k: int, checkpointer: bool = False) -> Case:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool
    from langchain_core.utils.function_calling import convert_to_openai_tool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_react_agent is deprecated for langchain's create_agent (not installed)
        from langgraph.prebuilt import create_react_agent

    counter = Counter()

    class ScriptedChat(BaseChatModel):
        steps: int

        @property
        def _llm_type(self) -> str:
            return "scripted"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            # as a real chat model does: convert the tools once, pass them with every call
            return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

        def _respond(self, messages: list[BaseMessage]) -> ChatResult:
            n = step_of(len(messages))
            if n < self.steps:
                call = {"name": "add", "args": {"a": 2, "b": 3}, "id": f"call_{n}", "type": "tool_call"}
                usage: Any = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
                message = AIMessage(content="", tool_calls=[call], usage_metadata=usage)
            else:
                usage = {"input_tokens": 10, "output_tokens": 1, "total_tokens": 11}
                message = AIMessage(content=ANSWER, usage_metadata=usage)
            return ChatResult(generations=[ChatGeneration(message=message)])

        def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
            return self._respond(messages)

        async def _agenerate(
            self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> Any:
            return self._respond(messages)

    saver: Any = None
    if checkpointer:
        from langgraph.checkpoint.memory import InMemorySaver

        saver = InMemorySaver()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = create_react_agent(ScriptedChat(steps=k), [tool(make_add(counter))], checkpointer=saver)
    limit = 2 * k + 10  # two supersteps per step; the default recursion_limit (25) stops at 12 steps
    thread = 0

    async def run() -> str:
        nonlocal thread
        thread += 1
        config: Any = {"recursion_limit": limit, "configurable": {"thread_id": str(thread)}}
        state = await graph.ainvoke({"messages": [("user", PROMPT)]}, config)
        return str(state["messages"][-1].content)

    def reset() -> None:
        if saver is not None:
            for key in ("storage", "writes", "blobs"):
                getattr(saver, key).clear()

    return Case("langgraph + InMemorySaver" if checkpointer else "langgraph", run, counter, reset)


def google_adk_case(k: int) -> Case:
    from google.adk.agents import LlmAgent
    from google.adk.agents.run_config import RunConfig
    from google.adk.models.base_llm import BaseLlm
    from google.adk.models.llm_response import LlmResponse
    from google.adk.runners import InMemoryRunner
    from google.genai import types

    counter = Counter()

    class ScriptedLlm(BaseLlm):
        steps: int = 1

        async def generate_content_async(self, llm_request: Any, stream: bool = False) -> Any:
            n = step_of(len(llm_request.contents))
            if n < self.steps:
                call = types.FunctionCall(id=f"call_{n}", name="add", args={"a": 2, "b": 3})
                part, out = types.Part(function_call=call), 5
            else:
                part, out = types.Part(text=ANSWER), 1
            usage = types.GenerateContentResponseUsageMetadata(
                prompt_token_count=10, candidates_token_count=out, total_token_count=10 + out
            )
            yield LlmResponse(content=types.Content(role="model", parts=[part]), usage_metadata=usage)

    agent = LlmAgent(name="bench", model=ScriptedLlm(model="scripted", steps=k), tools=[make_add(counter)])
    runner = InMemoryRunner(agent=agent, app_name="bench")
    sessions = runner.session_service
    config = RunConfig(max_llm_calls=k + 10)
    message = types.Content(role="user", parts=[types.Part(text=PROMPT)])

    async def run() -> str:
        session = await sessions.create_session(app_name="bench", user_id="u")
        answer = ""
        async for event in runner.run_async(user_id="u", session_id=session.id, new_message=message, run_config=config):
            if event.is_final_response() and event.content and event.content.parts:
                answer = event.content.parts[0].text or ""
        await sessions.delete_session(app_name="bench", user_id="u", session_id=session.id)
        return answer

    return Case("google-adk", run, counter)


def yaab_case(k: int) -> Case:
    import yaab
    from yaab.models import ModelResponse
    from yaab.observability import set_tracing_enabled
    from yaab.testing import FunctionModel
    from yaab.types import Message, ToolCall

    # yaab-sdk alone installs no OpenTelemetry, so its model calls open no span; this venv has
    # opentelemetry-api (google-adk's dependency), which would make them open no-op spans
    set_tracing_enabled(False)
    counter = Counter()

    def respond(messages: list[Message]) -> ModelResponse:
        # FunctionModel sets a fixed usage on whatever this returns: no estimate from the messages
        n = step_of(len(messages))
        if n < k:
            return ModelResponse(tool_calls=[ToolCall(id=f"call_{n}", name="add", arguments={"a": 2, "b": 3})])
        return ModelResponse(content=ANSWER)

    # max_steps counts model calls (default 8); the other defaults stay: instrumented model, parallel tools
    agent = yaab.Agent("bench", model=FunctionModel(respond), tools=[make_add(counter)], max_steps=k + 10)

    async def run() -> str:
        result = await agent.run(PROMPT)
        if result.status != "ok" or result.paused:
            raise AssertionError(f"yaab-sdk: status {result.status!r}, paused {result.paused}")
        return str(result.output)

    return Case("yaab-sdk", run, counter)


# name: (the row's builder, the distributions whose versions the table shows)
PEERS: dict[str, tuple[Callable[[int], Case], tuple[str, ...]]] = {
    "pydantic-ai": (pydantic_ai_case, ("pydantic-ai-slim",)),
    "openai-agents": (openai_agents_case, ("openai-agents",)),
    "langgraph": (langgraph_case, ("langgraph", "langgraph-prebuilt", "langchain-core")),
    "langgraph+saver": (lambda k: langgraph_case(k, checkpointer=True), ("langgraph", "langgraph-checkpoint")),
    "google-adk": (google_adk_case, ("google-adk",)),
    "yaab-sdk": (yaab_case, ("yaab-sdk", "pydantic")),
}
KERNEL_ROWS: dict[str, tuple[Callable[[int], Case], tuple[str, ...]]] = {
    "floor": (floor_case, ("pluggy",)),
    "agent-kernel": (kernel_case, ("agent-kernel", "agent-plugin-tools")),
    "agent-kernel-trio": (lambda k: kernel_case(k, "trio"), ("agent-kernel", "trio")),
}


# ------------------------------------------------------------------ measurement


def run_batch(case: Case, k: int, runs: int) -> float:
    """Seconds for `runs` whole runs, each checked: K tool calls, the scripted answer."""

    async def batch() -> None:
        counter = case.counter
        for _ in range(runs):
            before = counter.calls if counter else 0
            answer = await case.run()
            if counter is not None and counter.calls - before != k:
                raise AssertionError(f"{case.name}: the tool ran {counter.calls - before} times, expected {k}")
            if answer != ANSWER:
                raise AssertionError(f"{case.name}: answered {answer!r}, expected {ANSWER!r}")

    gc.collect()
    t0 = time.perf_counter()
    if case.loop == "trio":
        import trio

        trio.run(batch)
    else:
        asyncio.run(batch())
    elapsed = time.perf_counter() - t0
    case.reset()
    return elapsed


def measure(cases: list[Case], k: int, samples: int, sample_s: float) -> None:
    """Best µs per step of every case; samples alternate between cases, rotating the order."""
    for case in cases:  # warm up (imports, schema caches), check, calibrate: ~sample_s per sample
        run_batch(case, k, 1)
        per_run = min(run_batch(case, k, 1) for _ in range(2))
        case.runs = max(1, round(sample_s / per_run))
    for i in range(samples):
        for case in cases[i % len(cases) :] + cases[: i % len(cases)]:
            case.samples.append(run_batch(case, k, case.runs) / (case.runs * k) * 1e6)


def versions(dists: tuple[str, ...]) -> str:
    def one(dist: str) -> str:
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            return f"{dist} ?"

    return ", ".join(one(dist) for dist in dists)


def print_table(lines: list[list[str]]) -> None:
    """A markdown table; the first line is the head."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for j, line in enumerate(lines):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |")
        if j == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def report(names: list[str], rows: dict[str, tuple[Any, tuple[str, ...]]], results: dict[int, list[Case]]) -> None:
    """A markdown table: best (and median) µs per step, ratios of the bests to agent-kernel and to the floor."""
    ks = sorted(results)
    best = {k: {c.name: min(c.samples) for c in results[k]} for k in ks}
    median = {k: {c.name: statistics.median(c.samples) for c in results[k]} for k in ks}
    head = ["framework"]
    for k in ks:
        head += [f"K={k} µs/step (best / median)", f"K={k} ÷ agent-kernel", f"K={k} ÷ floor"]
    lines = [head]
    for case in results[ks[0]]:
        row = [case.name]
        for k in ks:
            b = best[k][case.name]
            row += [
                f"{b:,.1f} / {median[k][case.name]:,.1f}",
                f"{b / best[k]['agent-kernel']:.2f}",
                f"{b / best[k]['floor']:.1f}",
            ]
        lines.append(row)
    print("versions:")
    for name in names:
        print(f"  {name}: {versions(rows[name][1])}")
    print_table(lines)
    if "yaab-sdk" in best[ks[0]]:  # DESIGN §7's user-facing budget, the other way round from the table's column
        ratios = ", ".join(
            f"K={k} {best[k]['agent-kernel'] / best[k]['yaab-sdk']:.2f} "
            f"(medians {median[k]['agent-kernel'] / median[k]['yaab-sdk']:.2f})"
            for k in ks
        )
        print(f"agent-kernel ÷ yaab-sdk per step, bests: {ratios}; DESIGN §7 budget ≤ 0.6")


# ------------------------------------------------------------------ instructions (--instructions)


def count_row(name: str, k: int, runs: int) -> None:
    """The process callgrind counts: the row built, then `runs` whole runs in one batch, each checked."""
    case = {**KERNEL_ROWS, **PEERS}[name][0](k)
    run_batch(case, k, runs)


def count_instructions(names: list[str], ks: list[int], runs: int) -> dict[int, dict[str, float]]:
    """Instructions per step of every row and K: bench/instructions.py's `per_step` on a `--count-row` process."""
    counting = bench_module("instructions")
    counts: dict[int, dict[str, float]] = {}
    for k in ks:
        counts[k] = {}
        for name in names:
            print(f"peers: counting {name} at K={k} under callgrind (1 and {1 + runs} runs)...", file=sys.stderr)
            command = [sys.executable, str(Path(__file__).resolve()), "--count-row", name]
            counts[k][name] = counting.per_step(command, k, runs)
    return counts


def report_instructions(
    names: list[str], rows: dict[str, tuple[Any, tuple[str, ...]]], counts: dict[int, dict[str, float]]
) -> None:
    """A markdown table: instructions per step, ratios to agent-kernel and to the floor when they were counted."""
    ks = sorted(counts)
    against = [name for name in ("agent-kernel", "floor") if name in names]
    head = ["framework"]
    for k in ks:
        head += [f"K={k} instructions/step", *(f"K={k} ÷ {name}" for name in against)]
    lines = [head]
    for name in names:
        row = [name]
        for k in ks:
            row += [f"{counts[k][name]:,.0f}", *(f"{counts[k][name] / counts[k][base]:.2f}" for base in against)]
        lines.append(row)
    print("versions:")
    for name in names:
        print(f"  {name}: {versions(rows[name][1])}")
    print_table(lines)
    if "agent-kernel" in names and "yaab-sdk" in names:
        for k in ks:
            ratio = counts[k]["agent-kernel"] / counts[k]["yaab-sdk"]
            print(f"agent-kernel / yaab-sdk instructions per step (K={k}): {ratio:.2f}")


# ------------------------------------------------------------------ the peers' own venv


def _stamp() -> str:
    digest = hashlib.sha256("\n".join(PINS).encode())
    for path in EDITABLE:
        digest.update((path / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def reexec_in_peers_venv() -> None:
    """Create (or refresh) bench/.venv-peers and run this script again inside it."""
    python = VENV / "bin" / "python"
    stamp_file = VENV / ".stamp"
    stamp = _stamp()
    if not python.exists() or not stamp_file.exists() or stamp_file.read_text() != stamp:
        print(f"peers: setting up {VENV.relative_to(ROOT)} (pinned peers, agent-kernel editable)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        editables = [arg for path in EDITABLE for arg in ("-e", str(path))]
        subprocess.run([*pip, *PINS, *editables], check=True)
        stamp_file.write_text(stamp)
    sys.stdout.flush()
    os.execv(python, [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def in_peers_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    every = [*KERNEL_ROWS, *PEERS]
    parser.add_argument(
        "--only",
        help="comma-separated peers to measure (floor and agent-kernel always are; default all): "
        + ", ".join(PEERS)
        + "; 'agent-kernel' alone needs no peer and no venv. With --instructions: exactly the rows to count, "
        "any of " + ", ".join(every) + " (default floor,agent-kernel,yaab-sdk)",
    )
    parser.add_argument("--steps", help="comma-separated K (default 10,100; 20 with --instructions)")
    parser.add_argument("--samples", type=int, default=15, help="samples per row and K, best kept (default 15)")
    parser.add_argument("--sample-ms", type=float, default=150.0, help="target length of one sample (default 150)")
    parser.add_argument("--trio", action="store_true", help="also agent-kernel under trio (run.py's loop)")
    parser.add_argument(
        "--quick", action="store_true", help="K=10, 3 short samples (--instructions: 5 runs): a smoke run"
    )
    parser.add_argument("--here", action="store_true", help="use the current interpreter, not bench/.venv-peers")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions per step with callgrind instead of timing"
    )
    parser.add_argument(
        "--runs", type=int, default=50, help="--instructions: runs counted after the first (default 50)"
    )
    parser.add_argument("--count-row", choices=every, help=argparse.SUPPRESS)  # the process callgrind counts
    args = parser.parse_args()

    if args.count_row:
        count_row(args.count_row, int(args.steps), args.runs)
        return 0
    only = args.only or ("floor,agent-kernel,yaab-sdk" if args.instructions else ",".join(PEERS))
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in every]
    if unknown:
        parser.error(f"unknown framework(s) {', '.join(unknown)}; choose from {', '.join(every)}")
    if args.instructions:
        counting = bench_module("instructions")
        if not counting.have_valgrind():
            print(f"bench/peers.py --instructions {counting.NO_VALGRIND}", file=sys.stderr)
            return 2
    peers = [name for name in PEERS if name in wanted]
    if peers and not args.here and not in_peers_venv():
        reexec_in_peers_venv()

    rows = {**KERNEL_ROWS, **PEERS}
    if args.instructions:
        names = [name for name in every if name in wanted or (name == "agent-kernel-trio" and args.trio)]
        ks = [10] if args.quick else [int(k) for k in (args.steps or "20").split(",")]
        runs = 5 if args.quick else args.runs
        try:
            counts = count_instructions(names, ks, runs)
        except RuntimeError as error:
            print(f"bench/peers.py --instructions: {error}", file=sys.stderr)
            return 1
        print(
            f"Python {sys.version.split()[0]}, valgrind --tool=callgrind; instructions per step = (count of a "
            f"process doing 1 + {runs} runs - count of one doing 1 run) / ({runs} * K); every run checked "
            f"(K tool calls, answer {ANSWER!r})"
        )
        report_instructions(names, rows, counts)
        return 0

    names = ["floor", "agent-kernel", *(["agent-kernel-trio"] if args.trio else []), *peers]
    ks = [10] if args.quick else [int(k) for k in (args.steps or "10,100").split(",")]
    samples, sample_s = (3, 0.02) if args.quick else (args.samples, args.sample_ms / 1000)

    load_before = os.getloadavg()[0]
    results: dict[int, list[Case]] = {}
    for k in ks:
        cases = [rows[name][0](k) for name in names]
        measure(cases, k, samples, sample_s)
        results[k] = cases
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; per step = run wall time / K (K tool calls + 1 answer); "
        f"best and median of {samples} samples per row; every run checked (K tool calls, answer {ANSWER!r})"
    )
    report(names, rows, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
