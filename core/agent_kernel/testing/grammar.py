"""The phase grammar (DESIGN §3, §5.1-5.2), as a checker and as a property.

`check_phase_grammar` validates what a `RunRecorder` saw over a run and its
resumes. `exercise` runs one scripted run with plugins and faults, resuming it
until it finishes, and returns a `Transcript`; `check_transcript` asserts every
guarantee the kernel gives about it. `check_plugin_phase_grammar` puts the three
together under hypothesis for a plugin author::

    from agent_kernel.testing.grammar import check_plugin_phase_grammar

    def test_my_plugin_keeps_the_grammar():      # a plain `def` test
        check_plugin_phase_grammar(lambda: MyPlugin(limit=3))
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import anyio
from attrs import frozen

from .._agent import Agent
from .._outcome import Outcome
from .._registry import ToolContext
from .._state import ApprovalRequest, Approve, Decision, Request, ToolCall
from ..errors import ToolSuspended
from ..events import Event, RunEnded, RunStarted
from ..hookspecs import PHASES, Context, Retry, hookimpl
from ..journal import Ended, Entry, Started
from ..patches import Patch, Stop
from ._behaviours import BehaviourPlugin, Faults, ToolFault
from ._recorder import RunRecorder
from ._scripted import ScriptedModel
from ._tools import FakeTools, ToolInvocation

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "REASONS",
    "Transcript",
    "check_phase_grammar",
    "check_plugin_phase_grammar",
    "check_transcript",
    "exercise",
    "run_sync",
]

#: Every reason an invocation may end with.
REASONS = frozenset({"completed", "stopped", "cancelled", "suspended", "error"})

_NEXT: Mapping[str | None, frozenset[str]] = {
    None: frozenset({"step_start"}),
    "step_start": frozenset({"before_inference", "step_end"}),
    "before_inference": frozenset({"after_inference", "step_end"}),
    "after_inference": frozenset({"before_tool_execute", "step_end"}),
    "before_tool_execute": frozenset({"before_tool_execute", "after_tool_execute", "step_end"}),
    "after_tool_execute": frozenset({"after_tool_execute", "step_end"}),
    "step_end": frozenset({"step_start"}),
}

Recorded = str | tuple[str, int, str | None, bool]


def check_phase_grammar(phases: Sequence[Recorded]) -> None:
    """Assert that recorded phases follow the run grammar, over a run and its resumes.

    Each invocation is ``run_start ... run_end``. Inside, steps go
    ``step_start → before_inference → after_inference → before_tool_execute* →
    after_tool_execute* → step_end`` (all befores of a step precede its afters).
    A step may reach ``step_end`` early (a ``Stop``), and an invocation may end
    after any phase (error, cancel, suspend). A resumed invocation continues where
    the previous one stopped: with a phase that may follow the last one recorded,
    or with that same phase again when its hooks did not commit (one raised).

    Args:
        phases: `RunRecorder.phases` (names without ``agent_``) or
            `RunRecorder.calls` (``(phase, step, call_id, resumed)`` tuples, which
            also checks step numbers, call ids and the ``resumed`` flag).

    Raises:
        AssertionError: naming the offending position, with the phases around it.
    """
    items = list(phases)
    names = [item if isinstance(item, str) else item[0] for item in items]

    def fail(index: int, why: str) -> None:
        lo = max(0, index - 6)
        window = " ".join(f"[{n}]" if i == index else n for i, n in enumerate(names[lo : index + 3], lo))
        raise AssertionError(f"phase grammar violated at position {index}: {why}\n  ... {window} ...\n  all: {names}")

    if not names:
        raise AssertionError("no phases recorded: every invocation has at least run_start and run_end")
    for i, name in enumerate(names):
        if name not in PHASES:
            fail(i, f"{name!r} is not a phase (known: {', '.join(PHASES)})")

    detailed = not isinstance(items[0], str)
    position: str | None = None
    step = 0
    befores: set[str | None] = set()
    i = 0
    invocation = 0
    while i < len(names):
        if names[i] != "run_start":
            fail(i, f"an invocation must begin with run_start, not {names[i]}")
        invocation += 1
        if detailed:
            _check_resumed(items[i], invocation, i, fail)
        j = i + 1
        first = True
        while j < len(names) and names[j] not in ("run_start", "run_end"):
            name = names[j]
            repeat = invocation > 1 and first and name == position
            if not repeat and name not in _NEXT[position]:
                after = position or "the start of the run"
                fail(j, f"{name} cannot follow {after} (allowed: {', '.join(sorted(_NEXT[position]))}, or run_end)")
            if detailed:
                item = items[j]
                assert not isinstance(item, str), "mixed names and tuples"
                _, at_step, call_id, _resumed = item
                _check_resumed(items[j], invocation, j, fail)
                if name == "step_start" and not repeat:
                    if at_step != step + 1:
                        fail(j, f"step_start of step {at_step} after step {step}")
                    step = at_step
                    befores = set()
                elif at_step != step:
                    fail(j, f"{name} reports step {at_step} inside step {step}")
                if name == "before_tool_execute":
                    befores.add(call_id)
                elif name == "after_tool_execute" and call_id not in befores:
                    fail(j, f"after_tool_execute for call {call_id!r}, which had no before_tool_execute in step {step}")
            position = name
            first = False
            j += 1
        if j == len(names):
            fail(j - 1, f"invocation {invocation} has no run_end (RunEnd must fire exactly once per invocation)")
        if names[j] == "run_start":
            fail(j, f"run_start before invocation {invocation} reached run_end")
        i = j + 1


def _check_resumed(item: Any, invocation: int, index: int, fail: Callable[[int, str], None]) -> None:
    resumed = item[3]
    if resumed != (invocation > 1):
        fail(index, f"ctx.resumed is {resumed} in invocation {invocation}")


# ----------------------------------------------------------------------------- exercising a run


@frozen
class Transcript:
    """Everything observable about one run and its resumes (see `exercise`).

    Attributes:
        run_id: the run's id.
        calls: `RunRecorder.calls` over all invocations.
        outcomes: one per invocation; None when it was cancelled from outside
            (the caller's scope caught the cancellation, so there is no outcome).
        entries: the run's journal at the end.
        events: every event an `agent_on_event` observer saw.
        requests: every request the model received.
        tool_starts: every start of a tool function.
        tool_finishes: every normal return of a tool function.
        plugins: the plugin names of the agent, with the generated behaviours.
        behaviours: the `BehaviourPlugin`s that took part.
    """

    run_id: str
    calls: list[tuple[str, int, str | None, bool]]
    outcomes: list[Outcome | None]
    entries: list[Entry]
    events: list[Event]
    requests: list[Request]
    tool_starts: list[ToolInvocation]
    tool_finishes: list[ToolInvocation]
    plugins: frozenset[str]
    behaviours: tuple[BehaviourPlugin, ...] = ()

    @property
    def phases(self) -> list[str]:
        """The phase names, in order."""
        return [c[0] for c in self.calls]

    @property
    def final(self) -> Outcome | None:
        """The last invocation's outcome."""
        return self.outcomes[-1]


class _Harness:
    """Retries, outside cancellation and event capture for `exercise`."""

    name = "grammar-harness"

    max_steps = 25

    def __init__(self, faults: Faults, time_scale: float) -> None:
        self.faults = faults
        self.time_scale = time_scale
        self.events: list[Event] = []
        self.scope: anyio.CancelScope | None = None
        self.phase_calls = 0

    def _tick(self) -> None:
        n = self.phase_calls
        self.phase_calls += 1
        if self.scope is not None and n == self.faults.cancel_at:
            self.scope.cancel()

    @hookimpl
    def agent_run_start(self) -> None:
        self._tick()

    @hookimpl
    def agent_step_start(self, ctx: Context) -> list[Patch] | None:
        self._tick()
        if ctx.step > self.max_steps:  # a safety net: a looping run ends instead of hanging the test
            return [Stop("harness.max_steps", f"more than {self.max_steps} steps")]
        return None

    @hookimpl
    def agent_before_inference(self) -> None:
        self._tick()

    @hookimpl
    def agent_after_inference(self) -> None:
        self._tick()

    @hookimpl
    def agent_before_tool_execute(self) -> None:
        self._tick()

    @hookimpl
    def agent_after_tool_execute(self) -> None:
        self._tick()

    @hookimpl
    def agent_step_end(self) -> None:
        self._tick()

    @hookimpl
    def agent_run_end(self) -> None:
        self._tick()

    @hookimpl
    def agent_on_inference_error(self, attempt: int) -> Retry | None:
        if self.faults.retry_inference and attempt <= 2:
            return Retry(0.5 * self.time_scale)
        return None

    @hookimpl
    def agent_on_tool_error(self, ctx: Context, call: ToolCall, attempt: int) -> Retry | None:
        if self.faults.retry_tools and attempt <= 1:
            return Retry(0.0)
        return None

    @hookimpl
    def agent_on_event(self, event: Event) -> None:
        self.events.append(event)


def _harness_tools(faults: Faults, time_scale: float, concurrent: bool | None) -> FakeTools:
    counter = [0]

    async def body(kwargs: Mapping[str, Any], context: ToolContext) -> str:
        ordinal = counter[0]
        counter[0] += 1
        await anyio.sleep(faults.tool_delay(ordinal) * time_scale)
        if ordinal in faults.tool_errors:
            raise ToolFault(f"tool start {ordinal} fails")
        if ordinal in faults.tool_suspends and not context.decisions:
            inner = ToolCall(f"{context.call_id}.inner", "inner", {})
            key = context.idempotency_key
            raise ToolSuspended([ApprovalRequest(f"{key}/wait", inner, "inner", "waits", context.step, "harness")])
        if context.decisions:
            kwargs = {**kwargs, "decided": sorted(type(d).__name__ for d in context.decisions.values())}
        return json.dumps(dict(kwargs), sort_keys=True, default=str)

    async def echo(tool_context: ToolContext, **kwargs: Any) -> str:
        """Echo the arguments (idempotent)."""
        return await body(kwargs, tool_context)

    async def add(tool_context: ToolContext, **kwargs: Any) -> str:
        """Add numbers (not idempotent)."""
        return await body(kwargs, tool_context)

    strategy = None if concurrent is None else ("concurrent" if concurrent else "sequential")
    return FakeTools(echo, add, strategy=strategy, idempotent=("echo",), name="harness-tools")


async def exercise(
    script: Sequence[Any],
    plugins: Iterable[object] = (),
    faults: Faults = Faults(),  # noqa: B008 - a frozen value
    *,
    concurrent: bool | None = False,
    max_resumes: int = 3,
    decide: Callable[[ApprovalRequest], Decision] = lambda request: Approve(),
    time_scale: float = 1.0,
    model: ScriptedModel | None = None,
) -> Transcript:
    """Run `script` with `plugins` under `faults`, resuming until the run finishes.

    The agent has a `ScriptedModel` playing `script` (with the inference faults put
    in), tools ``echo`` (idempotent) and ``add`` (`FakeTools`, failing and sleeping
    as `faults` says), a harness plugin (retry decisions, cancellation from outside,
    an event observer, and a ``Stop`` after 25 steps so that no run loops forever)
    and a `RunRecorder`. The first invocation gets
    ``faults.timeout`` and the outside cancellation; then, while it ended
    ``error``, ``cancelled`` or ``suspended``, the run is resumed (at most
    `max_resumes` times), answering pending approvals with `decide`.

    Args:
        script: the model's turns.
        plugins: the plugins under test.
        faults: what goes wrong.
        concurrent: run tool calls concurrently; None registers no tool strategy
            (one of `plugins` must).
        max_resumes: the most resumes.
        decide: the decision for each pending approval request.
        time_scale: multiplies every sleep and timeout (use a small one without
            trio's MockClock, where time is real).
        model: use this `ScriptedModel` instead of one built from `script`.
    """
    harness = _Harness(faults, time_scale)
    tools = _harness_tools(faults, time_scale, concurrent)
    model = model if model is not None else ScriptedModel(faults.apply(script))
    recorder = RunRecorder()
    plugins = list(plugins)
    agent = Agent(model="scripted", plugins=[model, tools, harness, *plugins, recorder], autoload=False)
    run_id = "exercised-run"
    outcomes: list[Outcome | None] = []
    timeout = None if faults.timeout is None else faults.timeout * time_scale
    outcome: Outcome | None = None
    with anyio.CancelScope() as scope:
        harness.scope = scope
        outcome = await agent.run("Go.", run_id=run_id, timeout=timeout)
    harness.scope = None
    outcomes.append(outcome)
    for _ in range(max_resumes):
        if outcome is not None and outcome.reason not in ("error", "cancelled", "suspended"):
            break
        decisions = {request.id: decide(request) for request in outcome.pending} if outcome is not None else {}
        outcome = await agent.resume(run_id, decisions=decisions)
        outcomes.append(outcome)
    return Transcript(
        run_id,
        list(recorder.calls),
        outcomes,
        await agent.journal.load(run_id),
        list(harness.events),
        list(model.requests),
        list(tools.invocations),
        list(tools.finished),
        frozenset(agent.plugins),
        tuple(p for p in plugins if isinstance(p, BehaviourPlugin)),
    )


def check_transcript(t: Transcript) -> None:
    """Assert the kernel's guarantees about one exercised run.

    The phase grammar holds (with step numbers, call ids and ``ctx.resumed``); every
    invocation has exactly one RunStart and one RunEnd in the hooks, the events and
    the journal; outcomes are well formed and agree with the journal; event ``seq``
    strictly increases across all invocations; an error names the plugin and hook
    that caused it.

    Raises:
        AssertionError: saying which guarantee failed.
    """
    check_phase_grammar(t.calls)
    invocations = len(t.outcomes)
    counts = {
        "run_start hooks": t.phases.count("run_start"),
        "run_end hooks": t.phases.count("run_end"),
        "RunStarted events": sum(isinstance(e, RunStarted) for e in t.events),
        "RunEnded events": sum(isinstance(e, RunEnded) for e in t.events),
        "Started entries": sum(isinstance(e, Started) for e in t.entries),
        "Ended entries": sum(isinstance(e, Ended) for e in t.entries),
    }
    wrong = {k: v for k, v in counts.items() if v != invocations}
    assert not wrong, f"{invocations} invocations, but {wrong} (RunStart/RunEnd must be exactly once each)"

    # the journal: each invocation is one segment Started ... Ended
    segments: list[list[Entry]] = []
    for entry in t.entries:
        if isinstance(entry, Started):
            segments.append([])
        assert segments, f"journal does not begin with Started: {t.entries[:3]}"
        segments[-1].append(entry)
    for n, segment in enumerate(segments, 1):
        ends = [i for i, e in enumerate(segment) if isinstance(e, Ended)]
        assert ends == [len(segment) - 1], f"invocation {n}: Ended must be its last entry, once; got {segment}"
        assert isinstance(segment[0], Started) and segment[0].attempt == n, f"invocation {n} starts with {segment[0]}"
    ended = [e for e in t.entries if isinstance(e, Ended)]

    for n, (outcome, end) in enumerate(zip(t.outcomes, ended, strict=True), 1):
        if outcome is None:
            # cancelled from outside: journaled as such, unless a run_end hook then raised
            run_end_failed = end.reason == "error" and end.error is not None and end.error.hook == "agent_run_end"
            assert end.reason == "cancelled" or run_end_failed, (
                f"invocation {n} was cancelled from outside but journaled {end.reason!r} ({end.error})"
            )
            continue
        assert outcome.reason in REASONS, f"invocation {n}: unknown reason {outcome.reason!r}"
        assert outcome.reason == end.reason, (
            f"invocation {n}: outcome {outcome.reason!r} but journal says {end.reason!r}"
        )
        assert outcome.run_id == t.run_id
        if outcome.reason == "error":
            assert outcome.error is not None and outcome.error.message, f"invocation {n}: error outcome without error"
            _check_blame(outcome, t)
        if outcome.reason == "stopped":
            assert outcome.stop is not None, f"invocation {n}: stopped without stop info"
        if outcome.reason == "suspended":
            assert outcome.pending, f"invocation {n}: suspended with nothing pending"
            assert all(r.id for r in outcome.pending)
        else:
            assert not outcome.pending, f"invocation {n}: {outcome.reason} but pending={outcome.pending}"

    seqs = [e.seq for e in t.events]
    bad = [(a, b) for a, b in pairwise(seqs) if b <= a]
    assert not bad, f"event seq not strictly increasing across invocations: {bad[:3]}"
    assert all(e.run_id == t.run_id for e in t.events), "an event carries another run's id"


def _check_blame(outcome: Outcome, t: Transcript) -> None:
    error = outcome.error
    assert error is not None
    if error.type not in ("BehaviourError", "PluginError"):
        return
    assert error.plugin in t.plugins, (
        f"error names plugin {error.plugin!r}, which is not loaded ({sorted(t.plugins)}): {error}"
    )
    assert error.hook.startswith("agent_"), f"error names hook {error.hook!r}: {error}"
    phase = error.hook.removeprefix("agent_")
    for plugin in t.behaviours:
        if plugin.name == error.plugin:
            behaviour = plugin.behaviours.get(phase)
            expected = ("raise",) if error.type == "BehaviourError" else ("illegal", "bad_shape")
            assert behaviour is not None and behaviour.action in expected, (
                f"error blames {error.plugin}.{error.hook}, whose behaviour is {behaviour}: {error}"
            )


# ----------------------------------------------------------------------------- the property


def run_sync(async_fn: Callable[[], Awaitable[Any]], backend: str = "trio") -> Any:
    """Run `async_fn` to completion on `backend`; under trio with an autojumping `MockClock`."""
    if backend == "trio":
        import trio
        from trio.testing import MockClock

        return trio.run(async_fn, clock=MockClock(autojump_threshold=0))
    return anyio.run(async_fn, backend=backend)


def check_plugin_phase_grammar(
    plugin_factory: Callable[[], object | Sequence[object]],
    *,
    max_examples: int | None = None,
    backend: str = "trio",
    random_plugins: bool = True,
    tool_strategy: bool = True,
    script_strategy: SearchStrategy[list[Any]] | None = None,
    fault_strategy: SearchStrategy[Faults] | None = None,
    behaviour_strategy: SearchStrategy[list[BehaviourPlugin]] | None = None,
) -> None:
    """Property: with your plugin, every run keeps the phase grammar and RunEnd-once.

    Call it from a plain (``def``) test: it runs its own event loop per example.
    For each hypothesis example a fresh plugin (or list of plugins) comes from
    `plugin_factory`; it joins a random script, random other plugins (legal and
    illegal patches, raising hooks, sync and async) and random faults (inference
    errors, tool exceptions, timeouts, cancellation from outside), and the run is
    resumed until it finishes. `check_transcript` must hold for every example.

    Args:
        plugin_factory: returns the plugin(s) under test, fresh each call.
        max_examples: examples to run; None uses the loaded hypothesis profile.
        backend: "trio" (virtual time: sleeps and timeouts are instant) or "asyncio"
            (real time, scaled down).
        random_plugins: add random other plugins.
        tool_strategy: provide a tool strategy (set False if your plugin registers one).
        script_strategy: scripts to draw (default `strategies.scripts()`).
        fault_strategy: faults to draw (default `strategies.faults()`).
        behaviour_strategy: the random other plugins to draw (default
            ``strategies.plugin_behaviours(max_plugins=2)``; e.g. pass
            ``plugin_behaviours(max_plugins=2, suspend=False)`` to leave approvals out).

    Raises:
        AssertionError: with hypothesis' minimal failing example.
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from .strategies import faults, plugin_behaviours, scripts

    if not random_plugins:
        others: SearchStrategy[list[BehaviourPlugin]] = st.just([])
    else:
        others = behaviour_strategy if behaviour_strategy is not None else plugin_behaviours(max_plugins=2)
    time_scale = 1.0 if backend == "trio" else 0.01
    concurrency = st.booleans() if tool_strategy else st.none()
    chosen = settings() if max_examples is None else settings(max_examples=max_examples)

    @settings(
        chosen,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )
    @given(
        script=script_strategy if script_strategy is not None else scripts(),
        behaviours=others,
        drawn_faults=fault_strategy if fault_strategy is not None else faults(),
        concurrent=concurrency,
    )
    def check(
        script: list[Any], behaviours: list[BehaviourPlugin], drawn_faults: Faults, concurrent: bool | None
    ) -> None:
        made = plugin_factory()
        mine = list(made) if isinstance(made, (list, tuple)) else [made]
        run = partial(
            exercise, script, [*mine, *behaviours], drawn_faults, concurrent=concurrent, time_scale=time_scale
        )
        check_transcript(run_sync(run, backend))

    check()
