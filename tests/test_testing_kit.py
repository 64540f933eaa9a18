"""The testing kit itself: conformance checks (and that they catch broken components),
the grammar checker, the pytest plugin's fixtures, the fakes and the strategies."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio.testing import MockClock

from agent_kernel import Agent, Message, Request, Response, ToolCall, ToolResult, Usage, hookimpl, patches
from agent_kernel.hookspecs import PHASES
from agent_kernel.journal import Entry, MemoryJournal, check_append
from agent_kernel.testing import (
    CodecJournal,
    ConcurrentStrategy,
    FakeTools,
    RunRecorder,
    ScriptedModel,
    SequentialStrategy,
    check_journal,
    check_llm_executor,
    check_phase_grammar,
    check_tool_strategy,
    install_distribution,
    run_scripted,
    text,
    tool_call,
)
from agent_kernel.testing import strategies as aks
from agent_kernel.testing.conformance import journal_entries
from agent_kernel.testing.pytest_plugin import TempPlugins

MakeAgent = Callable[..., Agent]

# ------------------------------------------------------------------------------------------ executors


def _scripted_turn(request: Request) -> Any:
    if request.tool_choice not in ("auto", "none"):
        return tool_call(request.tool_choice, city="Paris")
    return text("Hello there, friend.")


def scripted_factory() -> ScriptedModel:
    return ScriptedModel([_scripted_turn, _scripted_turn])


async def test_check_llm_executor_passes_for_scripted_model() -> None:
    await check_llm_executor(scripted_factory, model="scripted", expect_text="Hello there, friend.")
    await check_llm_executor(scripted_factory, expect_text=lambda t: t.endswith("friend."))


class _Broken:
    """An executor with one configurable defect."""

    def __init__(self, defect: str) -> None:
        self.defect = defect

    async def infer(self, request: Request, deltas: Any) -> Any:
        if self.defect == "not-a-response":
            return Message("assistant", "hi")
        if request.tool_choice not in ("auto", "none") and self.defect != "ignores-tool-choice":
            call = ToolCall("c1", request.tool_choice, {"city": "Paris"})
            name = "other_tool" if self.defect == "wrong-tool" else call.name
            return Response(
                Message("assistant", "", (ToolCall("c1", name, call.arguments),)), Usage(1, 1, 1), "tool_use"
            )
        deltas.text("Hel")
        deltas.text("lo" if self.defect != "deltas-mismatch" else "p")
        usage = Usage(-1, 1, 1) if self.defect == "negative-usage" else Usage(1, 1, 1)
        return Response(Message("assistant", "Hello"), usage)


@pytest.mark.parametrize(
    ("defect", "message"),
    [
        ("not-a-response", "not a Response"),
        ("ignores-tool-choice", "no tool call"),
        ("wrong-tool", "other_tool"),
        ("deltas-mismatch", "concatenate"),
        ("negative-usage", "input_tokens"),
    ],
)
async def test_check_llm_executor_catches_broken_executors(defect: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        await check_llm_executor(lambda: _Broken(defect))


# ------------------------------------------------------------------------------------------ strategies


@pytest.mark.parametrize(
    "factory",
    [SequentialStrategy, ConcurrentStrategy, lambda: ConcurrentStrategy(max_concurrency=2)],
    ids=["sequential", "concurrent", "bounded"],
)
async def test_check_tool_strategy_passes(factory: Callable[[], Any]) -> None:
    await check_tool_strategy(factory)


class _SkipsLast(SequentialStrategy):
    async def run(self, calls: Sequence[ToolCall], execute: Any) -> None:
        await super().run(calls[:-1], execute)


class _Twice(SequentialStrategy):
    async def run(self, calls: Sequence[ToolCall], execute: Any) -> None:
        await super().run([*calls, *calls[:1]], execute)


class _Reversed(SequentialStrategy):
    async def run(self, calls: Sequence[ToolCall], execute: Any) -> None:
        await super().run(list(reversed(calls)), execute)


class _Unbounded(ConcurrentStrategy):
    """Declares a bound it does not keep."""

    def __init__(self) -> None:
        super().__init__(max_concurrency=2)

    async def run(self, calls: Sequence[ToolCall], execute: Any) -> None:
        await ConcurrentStrategy().run(calls, execute)


class _SwallowsCancel(SequentialStrategy):
    async def run(self, calls: Sequence[ToolCall], execute: Any) -> None:
        for call in calls:
            try:
                await execute(call)
            except anyio.get_cancelled_exc_class():
                return


class _SwallowsErrors(SequentialStrategy):
    async def run(self, calls: Sequence[ToolCall], execute: Any) -> None:
        for call in calls:
            with contextlib.suppress(Exception):
                await execute(call)


class _Overlapping(SequentialStrategy):
    """Claims to be sequential but runs calls concurrently."""

    async def run(self, calls: Sequence[ToolCall], execute: Any) -> None:
        await ConcurrentStrategy().run(calls, execute)


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (_SkipsLast, "exactly once"),
        (_Twice, "exactly once"),
        (_Reversed, "order"),
        (_Unbounded, "max_concurrency"),
        (_SwallowsCancel, "cancel"),
        (_SwallowsErrors, "swallowed the exception"),
        (_Overlapping, "not concurrent"),
    ],
)
async def test_check_tool_strategy_catches_broken_strategies(strategy: Callable[[], Any], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        await check_tool_strategy(strategy)


# ------------------------------------------------------------------------------------------ journals


async def test_check_journal_passes_for_memory_journal() -> None:
    await check_journal(MemoryJournal)


async def test_check_journal_passes_for_codec_journal() -> None:
    """Every entry kind must survive the agent's JSON codec (as in any persistent journal)."""
    await check_journal(CodecJournal)


def test_journal_entries_cover_every_patch_and_entry_kind() -> None:
    from agent_kernel import journal

    entries = journal_entries()
    kinds = {type(e) for e in entries}
    public = [getattr(journal, n) for n in journal.__all__]
    assert kinds == {t for t in public if isinstance(t, type) and issubclass(t, journal.Entry)} - {journal.Entry}
    carried = {type(p) for e in entries for p in getattr(e, "patches", ())}
    every = {getattr(patches, n) for n in patches.__all__ if isinstance(getattr(patches, n), type)} - {patches.Patch}
    assert carried == every, f"journal_entries() misses {every - carried}"


class _NoFencing(MemoryJournal):
    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        self._entries.setdefault(run_id, []).extend(entries)


class _WritesBeforeFencing(MemoryJournal):
    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        log = self._entries.setdefault(run_id, [])
        length = len(log)
        log.extend(entries)
        check_append(run_id, attempt, self._attempts.get(run_id, 0), at, length)


class _ChecksOnlyTheAttempt(MemoryJournal):
    """The fencing of agent-kernel 0.1: a resumer on a stale view of the log could commit."""

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        log = self._entries.get(run_id, [])
        await super().append(run_id, attempt, entries, at=len(log))


class _AcceptsUnclaimedRuns(MemoryJournal):
    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        self._attempts.setdefault(run_id, attempt)
        self._entries.setdefault(run_id, [])
        await super().append(run_id, attempt, entries, at=at)


class _Forgetful(MemoryJournal):
    async def load(self, run_id: str) -> list[Entry]:
        return (await super().load(run_id))[:-1]


class _SharedList(MemoryJournal):
    async def load(self, run_id: str) -> list[Entry]:
        return self._entries.get(run_id, [])


class _NoUnknown(MemoryJournal):
    async def load(self, run_id: str) -> list[Entry]:
        if run_id not in self._entries:
            raise KeyError(run_id)
        return await super().load(run_id)


@pytest.mark.parametrize(
    ("journal", "message"),
    [
        (_NoFencing, "StaleAttempt"),
        (_WritesBeforeFencing, "write nothing"),
        (_ChecksOnlyTheAttempt, "behind the log's end"),
        (_AcceptsUnclaimedRuns, "never claimed"),
        (_Forgetful, "round-trip"),
        (_SharedList, "new list"),
    ],
)
async def test_check_journal_catches_broken_journals(journal: Callable[[], Any], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        await check_journal(journal)


async def test_check_journal_reports_unknown_run_errors() -> None:
    with pytest.raises(KeyError):
        await check_journal(_NoUnknown)


async def test_codec_journal_resumes_in_another_agent() -> None:
    journal = CodecJournal()

    class UseIt:
        name = "use-codec-journal"

        @hookimpl
        def agent_register_runtime(self, runtime: Any) -> None:
            runtime.set_journal(journal)

    def add(a: int, b: int) -> int:
        return a + b

    first = Agent(
        model="scripted",
        plugins=[ScriptedModel([tool_call("add", a=1, b=2), text("3")]), FakeTools(add), UseIt()],
        autoload=False,
    )
    outcome = await first.run("1+2", run_id="codec")
    assert all(isinstance(t, str) for t in journal.texts["codec"])
    model = ScriptedModel([tool_call("add", a=1, b=2), text("3")])
    second = Agent(model="scripted", plugins=[model, FakeTools(add), UseIt()], autoload=False)
    again = await second.resume("codec")
    assert (again.reason, again.output, list(again.state.messages)) == (
        outcome.reason,
        outcome.output,
        list(outcome.state.messages),
    )
    assert model.requests == []


# ------------------------------------------------------------------------------------------ grammar checker

P = [
    "run_start",
    "step_start",
    "before_inference",
    "after_inference",
    "before_tool_execute",
    "before_tool_execute",
    "after_tool_execute",
    "after_tool_execute",
    "step_end",
    "step_start",
    "before_inference",
    "after_inference",
    "step_end",
    "run_end",
]


@pytest.mark.parametrize(
    "phases",
    [
        P,
        ["run_start", "run_end"],
        ["run_start", "step_start", "step_end", "run_end"],  # Stop at step_start
        [
            "run_start",
            "step_start",
            "before_inference",
            "run_end",
            "run_start",
            "after_inference",
            "step_end",
            "run_end",
        ],
        # a hook of after_inference raised (not committed), the resume runs it again
        [
            "run_start",
            "step_start",
            "before_inference",
            "after_inference",
            "run_end",
            "run_start",
            "after_inference",
            "step_end",
            "run_end",
        ],
        # suspended after the befores, resumed with decisions
        [*P[:6], "run_end", "run_start", *P[6:]],
        ["run_start", "run_end", "run_start", "run_end"],
    ],
)
def test_check_phase_grammar_accepts(phases: list[str]) -> None:
    check_phase_grammar(phases)


@pytest.mark.parametrize(
    ("phases", "message"),
    [
        ([], "no phases"),
        (["step_start", "run_end"], "begin with run_start"),
        (["run_start", "step_start"], "no run_end"),
        (["run_start", "before_inference", "run_end"], "cannot follow the start"),
        (["run_start", "step_start", "after_inference", "run_end"], "cannot follow step_start"),
        ([*P[:7], "before_tool_execute", *P[8:]], "cannot follow after_tool_execute"),
        (["run_start", "step_start", "run_start", "run_end"], "before invocation 1 reached run_end"),
        (["run_start", "run_end", "run_end"], "begin with run_start"),
        (["run_start", "step_start", "step_end", "step_end", "run_end"], "cannot follow step_end"),
        (["run_start", "step_start", "run_end", "run_start", "after_inference", "run_end"], "cannot follow step_start"),
        (["run_start", "tool_call", "run_end"], "not a phase"),
    ],
)
def test_check_phase_grammar_rejects(phases: list[str], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_phase_grammar(phases)


def test_check_phase_grammar_checks_steps_calls_and_resumed_flag() -> None:
    good = [
        ("run_start", 0, None, False),
        ("step_start", 1, None, False),
        ("before_inference", 1, None, False),
        ("after_inference", 1, None, False),
        ("before_tool_execute", 1, "c1", False),
        ("run_end", 1, None, False),
        ("run_start", 1, None, True),
        ("after_tool_execute", 1, "c1", True),
        ("step_end", 1, None, True),
        ("run_end", 1, None, True),
    ]
    check_phase_grammar(good)
    with pytest.raises(AssertionError, match="resumed"):
        check_phase_grammar([*good[:6], ("run_start", 1, None, False), *good[7:]])
    with pytest.raises(AssertionError, match="no before_tool_execute"):
        check_phase_grammar([*good[:7], ("after_tool_execute", 1, "c2", True), *good[8:]])
    with pytest.raises(AssertionError, match="step_start of step 3 after step 1"):
        check_phase_grammar([*good[:9], ("step_start", 3, None, True), ("step_end", 3, None, True), good[9]])


# ------------------------------------------------------------------------------------------ pytest plugin


async def test_make_agent_is_isolated(make_agent: MakeAgent, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    source = (
        "from agent_kernel import hookimpl\n\n@hookimpl\ndef agent_run_start():\n    raise RuntimeError('leaked')\n"
    )
    install_distribution(tmp_path, "agent-plugin-leak", "leak", "agent_plugin_leak", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("AGENT_KERNEL_PLUGINS", raising=False)
    assert "leak" in Agent(model="scripted").plugins, "the fake distribution is installed"
    a = make_agent(ScriptedModel([text("hi")]))
    b = make_agent(ScriptedModel([text("hi")]))
    assert "leak" not in a.plugins and a.plugin_manager is not b.plugin_manager
    assert (await a.run("x")).reason == "completed"
    with pytest.raises(TypeError, match="autoload"):
        make_agent(autoload=True)


async def test_run_scripted_returns_the_outcome_the_model_and_the_steps() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    class Tagger:
        name = "tagger"

        @hookimpl
        def agent_step_start(self, ctx: Any) -> list[patches.Patch]:
            return [patches.InjectContext(f"step {ctx.step}")]

    tagger = Tagger()
    r = await run_scripted(
        [tool_call("add", a=1, b=2), text("3")], FakeTools(add), tagger, input="add", settings={"t": 0}
    )
    assert (r.outcome.reason, r.outcome.output) == ("completed", "3")
    assert [m.content for m in r.messages] == ["add", "", "3", "3"]
    assert [req.settings["t"] for req in r.model.requests] == [0, 0], "agent keyword arguments reach the agent"
    assert [req.messages[0].content for req in r.model.requests] == ["step 1", "step 2"], "the plugins ran"
    assert r.recorder.steps() == [
        ["step_start", "before_inference", "after_inference", "before_tool_execute", "after_tool_execute", "step_end"],
        ["step_start", "before_inference", "after_inference", "step_end"],
    ]


async def test_temp_plugin_and_recorder(make_agent: MakeAgent, temp_plugin: TempPlugins, recorder: RunRecorder) -> None:
    seen: list[str] = []

    class Spy:
        name = "spy"

        @hookimpl
        def agent_run_start(self) -> None:
            seen.append("spy")

    spy = temp_plugin(Spy())
    assert list(temp_plugin) == [recorder, spy] and len(temp_plugin) == 2
    with pytest.raises(ValueError, match="already registered"):
        temp_plugin(spy)
    agent = make_agent(ScriptedModel([text("hi")]))
    assert {"spy", "run-recorder"} <= set(agent.plugins)
    await agent.run("x")
    assert seen == ["spy"] and recorder.phases[0] == "run_start"
    temp_plugin.unregister(spy)
    assert "spy" not in make_agent(ScriptedModel([text("hi")])).plugins
    assert "spy" in agent.plugins, "agents built before keep it"
    with pytest.raises(ValueError, match="not registered"):
        temp_plugin.unregister(spy)


async def test_autojump_clock_makes_backoff_free(autojump_clock: MockClock, make_agent: MakeAgent) -> None:
    from agent_kernel import Retry
    from agent_kernel.testing import fault

    class Backoff:
        name = "backoff"

        @hookimpl
        def agent_on_inference_error(self, attempt: int) -> Retry | None:
            return Retry(3600.0) if attempt < 3 else None

    assert isinstance(autojump_clock, MockClock) and autojump_clock.autojump_threshold == 0
    start = trio.current_time()
    outcome = await make_agent(ScriptedModel([fault("busy", times=2), text("done")]), Backoff()).run("x")
    assert (outcome.reason, outcome.stats.retries) == ("completed", 2)
    assert trio.current_time() - start >= 7200, (
        "the test's trio.run uses the mock clock: the backoff was slept virtually"
    )


# ------------------------------------------------------------------------------------------ fakes


async def test_fake_tools(make_agent: MakeAgent) -> None:
    def plain(x: int) -> int:
        """Double x.

        More text.
        """
        return 2 * x

    async def aware(tool_context: Any) -> ToolResult:
        return ToolResult(f"key {tool_context.idempotency_key}", is_error=True)

    tools = FakeTools(plain, aware, idempotent=["plain"])
    model = ScriptedModel([[tool_call("plain", x=4), tool_call("aware")], text("done")])
    agent = make_agent(model, tools)
    specs = {t.name: t for t in agent.tools}
    assert specs["plain"].description == "Double x." and specs["plain"].idempotent
    assert dict(specs["plain"].parameters) == {"type": "object", "properties": {"x": {}}}
    assert dict(specs["aware"].parameters) == {"type": "object", "properties": {}}
    outcome = await agent.run("go", run_id="fake")
    results = [(m.content, m.is_error) for m in outcome.state.messages if m.role == "tool"]
    assert results == [("8", False), ("key fake:1:call_1_2", True)]
    assert [i.name for i in tools.invocations] == ["plain", "aware"] and tools.count("plain") == 1
    with pytest.raises(ValueError, match="unknown strategy"):
        FakeTools(plain, strategy="parallel")


async def test_scripted_model_counts_turns_even_when_a_message_object_repeats(make_agent: MakeAgent) -> None:
    """A plugin appending the same (constant) Message object every step must not rewind the script."""
    nudge = Message("user", "keep going")

    class Nudge:
        name = "nudge"

        @hookimpl
        def agent_step_end(self, ctx: Any) -> list[patches.Patch] | None:
            return [patches.AppendMessages([nudge])] if ctx.step < 3 else None

    model = ScriptedModel([text("one"), text("two"), text("three"), text("four")])
    outcome = await make_agent(model, Nudge()).run("hi")
    answers = [m.content for m in outcome.state.messages if m.role == "assistant"]
    assert answers == ["one", "two", "three"], "each request must get the next turn"


# ------------------------------------------------------------------------------------------ strategies


@given(aks.scripts(max_turns=5, max_calls=2))
def test_scripts_end_with_text_and_call_known_tools(script: list[Any]) -> None:
    from agent_kernel.testing._scripted import Call, Text

    assert 1 <= len(script) <= 5 and isinstance(script[-1], Text)
    for turn in script[:-1]:
        calls = turn if isinstance(turn, list) else [turn]
        assert 1 <= len(calls) <= 2 and all(isinstance(c, Call) for c in calls)
        assert {c.name for c in calls} <= {*aks.TOOL_NAMES, aks.UNKNOWN_TOOL}


@given(st.sampled_from(PHASES).flatmap(lambda ph: st.tuples(st.just(ph), aks.legal_patches(ph))))
def test_legal_patches_are_legal(drawn: tuple[str, list[patches.Patch]]) -> None:
    phase, patch_list = drawn
    assert all(type(p) in patches.ALLOWED[phase] for p in patch_list)


@given(st.sampled_from(PHASES).flatmap(lambda ph: st.tuples(st.just(ph), aks.illegal_results(ph))))
def test_illegal_results_hold_something_illegal(drawn: tuple[str, list[Any]]) -> None:
    phase, result = drawn
    assert any(type(p) not in patches.ALLOWED[phase] for p in result)


@given(aks.plugin_behaviours(max_plugins=3))
def test_plugin_behaviours_build_loadable_plugins(plugins: list[aks.BehaviourPlugin]) -> None:
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("x")]), *plugins], autoload=False)
    for plugin in plugins:
        implemented = set(agent.plugins[plugin.name].hooks)
        assert {f"agent_{phase}" for phase in plugin.behaviours} <= implemented


def test_faults_put_inference_failures_before_their_turns() -> None:
    faults = aks.Faults(inference=((1, 2, True),), tool_delays=(0.5, 3.0))
    script = [tool_call("echo"), text("end")]
    applied = faults.apply(script)
    assert len(applied) == 3 and applied[0] is script[0] and applied[2] is script[1]
    assert applied[1].times == 2
    assert [faults.tool_delay(i) for i in range(3)] == [0.5, 3.0, 0.5]


async def test_scripted_model_forgets_counted_messages_beyond_its_bound_and_still_counts_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_kernel.testing import _scripted

    monkeypatch.setattr(_scripted, "_COUNTED_MAX", 2)
    model = ScriptedModel([*[tool_call("nothing") for _ in range(6)], text("six")])
    agent = Agent(model="scripted", plugins=[model], autoload=False)
    outcome = await agent.run("count")
    assert (outcome.reason, outcome.output, len(model.requests)) == ("completed", "six", 7)
    assert len(model._counted) <= 3


async def test_scripted_tool_calls_are_encoded_once_per_turn_of_the_script_and_every_time_for_a_function() -> None:
    """A turn of the script gives the same calls, deltas and estimate on every run; turns a
    function makes are encoded afresh (they differ from request to request) and not kept."""
    script = [tool_call("add", a=1, b=2), [tool_call("add", a=3, b=4), tool_call("add", a=5, b=6)], text("ok")]

    def add(a: int, b: int) -> int:
        return a + b

    model = ScriptedModel(script)
    agent = Agent(model="scripted", plugins=[model, FakeTools(add)], autoload=False)
    first, second = await agent.run("go"), await agent.run("go")
    calls = [[(c.name, c.arguments) for c in m.tool_calls] for m in first.state.messages if m.role == "assistant"]
    assert calls == [[("add", {"a": 1, "b": 2})], [("add", {"a": 3, "b": 4}), ("add", {"a": 5, "b": 6})], []]
    assert first.state.messages == second.state.messages and first.state.usage == second.state.usage
    assert sorted(model._encoded) == [0, 1]
    # the estimate of a turn of two calls reads their arguments as one JSON list
    calls_made, arguments, estimate, given = model._encoded[1]
    assert [c.id for c in calls_made] == ["call_2_1", "call_2_2"] and given is None
    assert arguments == ['{"a": 3, "b": 4}', '{"a": 5, "b": 6}']
    assert estimate == len('[{"a": 3, "b": 4}, {"a": 5, "b": 6}]') // 4
    # the calls are made once: the second run's messages hold the first run's ToolCall objects
    again = [m.tool_calls for m in second.state.messages if m.role == "assistant"][1]
    assert all(c is d for c, d in zip(again, calls_made, strict=True))

    n = iter(range(1, 100))
    made = ScriptedModel(lambda request: tool_call("add", a=next(n), b=0) if len(request.messages) < 6 else text("ok"))
    outcome = await Agent(model="scripted", plugins=[made, FakeTools(add)], autoload=False).run("go")
    assert [m.content for m in outcome.state.messages if m.role == "tool"] == ["1", "2", "3"]
    assert made._encoded == {}


@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(["user", "assistant", "tool"]), st.text(max_size=40)), max_size=6),
        min_size=1,
        max_size=6,
    )
)
def test_scripted_model_counts_turns_and_tokens_as_a_full_scan_would(growth: list[list[tuple[str, str]]]) -> None:
    """Requests grow as a conversation does; counting from the last assistant message seen
    gives the same turn number and input estimate as counting every message."""
    from agent_kernel.testing._scripted import _estimate_tokens

    model = ScriptedModel([])
    messages: list[Message] = []
    for added in growth:
        messages += [Message(role, content) for role, content in added]  # type: ignore[arg-type]
        full = (sum(m.role == "assistant" for m in messages), sum(_estimate_tokens(m.content) for m in messages))
        assert model._count(messages) == full
        assert (
            model._count(messages[1:])
            == (  # a trimmed window is counted right too
                sum(m.role == "assistant" for m in messages[1:]),
                sum(_estimate_tokens(m.content) for m in messages[1:]),
            )
        )


async def test_scripted_usage_is_reported_exactly_and_a_function_answers_every_turn() -> None:
    exact = ScriptedModel([tool_call("nothing", usage=Usage(100, 7, 1)), text("done", usage=Usage(120, 3, 1))])
    outcome = await Agent(model="scripted", plugins=[exact], autoload=False).run("go")
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (220, 10)

    def echo(request: Request) -> Any:
        last = request.messages[-1].content
        return text("stop") if last.startswith("Unknown") or last == "again" else tool_call("nothing")

    every = ScriptedModel(echo)
    outcome = await Agent(model="scripted", plugins=[every], autoload=False).run("hello")
    assert (outcome.reason, outcome.output, len(every.requests)) == ("completed", "stop", 2)
