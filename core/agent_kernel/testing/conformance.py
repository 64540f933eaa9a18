"""Conformance checks for the components plugins register (like trio's `check_*_stream`).

Every LLM executor, tool strategy and journal should pass its check; first-party
plugins run them in their own tests, third parties are asked to::

    from agent_kernel.testing.conformance import check_journal

    async def test_my_journal_conforms(tmp_path):
        await check_journal(lambda: MyJournal(tmp_path / "runs.db"))

Each check is ``async``, takes a factory (a callable returning a fresh component,
or an awaitable of one) and raises `AssertionError` with a message saying what
was expected. They check structure and contracts, never the wording of a model.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio

from .. import patches as p
from .._agent import Agent
from .._registry import ModelExecutor, RuntimeRegistrar, ToolStrategy
from .._state import (
    ApprovalRequest,
    Approve,
    Deny,
    Message,
    Request,
    Response,
    StateKey,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
)
from ..errors import StaleAttempt
from ..hookspecs import hookimpl
from ..journal import (
    Committed,
    Decided,
    Ended,
    Entry,
    ErrorInfo,
    Inferred,
    Intended,
    Journal,
    Retried,
    Started,
    ToolDone,
    Waiting,
)

__all__ = ["check_journal", "check_llm_executor", "check_tool_strategy", "journal_entries"]

STOP_REASONS = frozenset({"end_turn", "tool_use", "max_tokens", "refusal", "error"})

Factory = Callable[[], Any]


async def _make(factory: Factory) -> Any:
    made = factory()
    if inspect.isawaitable(made):
        made = await made
    return made


# ----------------------------------------------------------------------------- LLM executors


class _Collect:
    """A `Deltas` sink that keeps what the executor streamed."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[tuple[int, str, str, str]] = []

    def text(self, text: str) -> None:
        assert isinstance(text, str), f"deltas.text() got {type(text).__name__}, not str"
        self.texts.append(text)

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> None:
        assert isinstance(index, int) and index >= 0, f"deltas.tool_call() got index {index!r}"
        assert isinstance(arguments, str), (
            f"deltas.tool_call() got arguments {type(arguments).__name__}, not a str fragment"
        )
        self.calls.append((index, call_id, name, arguments))


WEATHER = ToolSpec(
    "get_weather",
    "Get the current weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string", "description": "The city"}}, "required": ["city"]},
)


def _check_response(response: object, what: str) -> Response:
    assert isinstance(response, Response), f"{what}: infer() returned {type(response).__name__}, not a Response"
    message = response.message
    assert isinstance(message, Message), f"{what}: response.message is {type(message).__name__}, not a Message"
    assert message.role == "assistant", f"{what}: response.message.role is {message.role!r}, not 'assistant'"
    assert isinstance(message.content, str), f"{what}: message content is {type(message.content).__name__}, not str"
    usage = response.usage
    assert isinstance(usage, Usage), f"{what}: usage is {type(usage).__name__}, not a Usage"
    for field in ("input_tokens", "output_tokens", "requests"):
        value = getattr(usage, field)
        assert isinstance(value, int) and value >= 0, f"{what}: usage.{field} is {value!r}; must be an int >= 0"
    assert response.stop_reason in STOP_REASONS, (
        f"{what}: stop_reason {response.stop_reason!r} not in {sorted(STOP_REASONS)}"
    )
    for call in message.tool_calls:
        assert isinstance(call, ToolCall), f"{what}: tool call {call!r} is not a ToolCall"
        assert isinstance(call.id, str) and call.id, f"{what}: tool call {call!r} has no id"
        assert isinstance(call.arguments, Mapping), f"{what}: tool call arguments {call.arguments!r} are not a mapping"
        json.dumps(dict(call.arguments))  # must be JSON data
    ids = [c.id for c in message.tool_calls]
    assert len(set(ids)) == len(ids), f"{what}: duplicate tool call ids {ids}"
    return response


def _check_text_deltas(collected: _Collect, response: Response, what: str, streams: bool) -> None:
    if streams:
        assert collected.texts, f"{what}: no text deltas were emitted (pass streams=False for a non-streaming executor)"
    if collected.texts:
        joined = "".join(collected.texts)
        assert joined == response.message.content, (
            f"{what}: text deltas concatenate to {joined!r}, but the final text is {response.message.content!r}"
        )


def _check_call_deltas(collected: _Collect, response: Response, what: str) -> None:
    if not collected.calls:
        return
    by_index: dict[int, dict[str, str]] = {}
    for index, call_id, name, fragment in collected.calls:
        slot = by_index.setdefault(index, {"id": "", "name": "", "arguments": ""})
        slot["id"] = slot["id"] or call_id
        slot["name"] = slot["name"] or name
        slot["arguments"] += fragment
    calls = response.message.tool_calls
    assert sorted(by_index) == list(range(len(calls))), (
        f"{what}: tool call deltas have indexes {sorted(by_index)}, the response has {len(calls)} calls"
    )
    for index, call in enumerate(calls):
        slot = by_index[index]
        assert slot["id"] in ("", call.id), f"{what}: delta {index} has id {slot['id']!r}, the call has {call.id!r}"
        assert slot["name"] in ("", call.name), f"{what}: delta {index} names {slot['name']!r}, the call {call.name!r}"
        if slot["arguments"]:
            try:
                streamed = json.loads(slot["arguments"])
            except ValueError as exc:
                raise AssertionError(
                    f"{what}: streamed arguments of call {index} are not JSON: {slot['arguments']!r}"
                ) from exc
            assert streamed == dict(call.arguments), (
                f"{what}: streamed arguments {streamed!r} differ from the call's {dict(call.arguments)!r}"
            )


async def check_llm_executor(
    factory: Factory,
    *,
    model: str = "test-model",
    text_prompt: str = "Say hello in one short sentence.",
    expect_text: str | Callable[[str], bool] | None = None,
    tool: ToolSpec = WEATHER,
    tool_prompt: str = "What is the weather in Paris? Use the tool.",
    streams: bool = True,
    follow_up: bool = True,
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Check an LLM executor (`ModelExecutor`): three inferences, structure only.

    1. A text turn (no tools): a `Response` with an assistant message, non-empty
       text, usage of non-negative ints and a known stop reason; the text deltas
       (when it streams) concatenate exactly to the final text.
    2. A tool turn with ``tool_choice`` forced to `tool`: at least one call, all to
       `tool`, each with a unique non-empty id and JSON-object arguments; any tool
       call deltas agree with the calls.
    3. (`follow_up`) The conversation with the tool's result appended: a valid
       `Response` again.

    Args:
        factory: returns a fresh executor (or an awaitable of one); called per turn.
        model: the model string put in each `Request`.
        text_prompt: the user message of the text turn.
        expect_text: for deterministic executors, the exact text (or a predicate on
            it); None only asks for non-empty text. Never pin a real model's wording.
        tool: the tool offered in the tool turn.
        tool_prompt: the user message of the tool turn.
        streams: the executor must emit text deltas.
        follow_up: also run turn 3.
        settings: `Request.settings` for every request.

    Raises:
        AssertionError: naming the turn and what was wrong.
    """
    extra = dict(settings or {})

    executor = await _make(factory)
    assert hasattr(executor, "infer") and inspect.iscoroutinefunction(executor.infer), (
        f"{type(executor).__name__} has no async infer(request, deltas) method"
    )
    assert isinstance(executor, ModelExecutor)
    what = "text turn"
    request = Request(model, (Message("user", text_prompt),), (), "none", extra)
    collected = _Collect()
    response = _check_response(await executor.infer(request, collected), what)
    assert response.message.content.strip(), f"{what}: the answer has no text"
    assert not response.message.tool_calls, (
        f"{what}: tool_choice was 'none' but the model called {response.message.tool_calls}"
    )
    if isinstance(expect_text, str):
        assert response.message.content == expect_text, (
            f"{what}: text {response.message.content!r}, expected {expect_text!r}"
        )
    elif expect_text is not None:
        assert expect_text(response.message.content), f"{what}: text {response.message.content!r} fails expect_text"
    _check_text_deltas(collected, response, what, streams)

    what = "tool turn"
    executor = await _make(factory)
    request = Request(model, (Message("user", tool_prompt),), (tool,), tool.name, extra)
    collected = _Collect()
    response = _check_response(await executor.infer(request, collected), what)
    calls = response.message.tool_calls
    assert calls, f"{what}: tool_choice forced {tool.name!r} but the response has no tool call"
    wrong = [c.name for c in calls if c.name != tool.name]
    assert not wrong, f"{what}: tool_choice forced {tool.name!r} but the model called {wrong}"
    if collected.texts:
        _check_text_deltas(collected, response, what, streams=False)
    _check_call_deltas(collected, response, what)

    if follow_up:
        what = "follow-up turn"
        executor = await _make(factory)
        messages = (
            Message("user", tool_prompt),
            response.message,
            *(Message("tool", "Sunny, 21 °C.", tool_call_id=c.id) for c in calls),
        )
        collected = _Collect()
        answer = _check_response(
            await executor.infer(Request(model, messages, (tool,), "auto", extra), collected), what
        )
        if collected.texts:
            _check_text_deltas(collected, answer, what, streams=False)
        _check_call_deltas(collected, answer, what)


# ----------------------------------------------------------------------------- tool strategies


class _Tracker:
    """An `execute` callable that records overlap, order and completion."""

    def __init__(self, checkpoints: int = 3, block: Sequence[str] = (), fail: Sequence[str] = ()) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.running: set[str] = set()
        self.max_running = 0
        self.checkpoints = checkpoints
        self.block = set(block)
        self.fail = set(fail)
        self.first_started = anyio.Event()

    async def __call__(self, call: ToolCall) -> None:
        self.started.append(call.id)
        self.running.add(call.id)
        self.max_running = max(self.max_running, len(self.running))
        self.first_started.set()
        try:
            for _ in range(self.checkpoints):
                await anyio.sleep(0)
            if call.id in self.block:
                await anyio.sleep_forever()
            if call.id in self.fail:
                raise _StrategyProbeError(call.id)
            self.finished.append(call.id)
        finally:
            self.running.discard(call.id)


class _StrategyProbeError(Exception):
    """Raised by a probe call to see that the strategy propagates failures."""


def _calls(n: int) -> list[ToolCall]:
    return [ToolCall(f"call_{i}", "probe", {"i": i}) for i in range(n)]


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def check_tool_strategy(factory: Factory, *, calls: int = 7) -> None:
    """Check a `ToolStrategy`.

    - `concurrent` is a bool and `run` an ``async def``;
    - every call is executed exactly once, and none is still running when `run`
      returns; with no calls, `run` returns;
    - a sequential strategy (``concurrent = False``) runs calls one at a time, in
      call order;
    - a declared ``max_concurrency`` bounds the calls running at once;
    - cancelling `run` leaves no call running and is not swallowed;
    - an exception from `execute` propagates out of `run` (alone or in an
      exception group) and leaves no call running.

    Args:
        factory: returns a fresh strategy (or an awaitable of one); called per check.
        calls: how many calls to run (at least 3).

    Raises:
        AssertionError: naming the broken property.
    """
    if calls < 3:
        raise ValueError("check_tool_strategy needs at least 3 calls")
    strategy = await _make(factory)
    name = type(strategy).__name__
    assert isinstance(getattr(strategy, "concurrent", None), bool), f"{name}.concurrent must be a bool"
    assert inspect.iscoroutinefunction(getattr(strategy, "run", None)), f"{name}.run must be an async def"
    assert isinstance(strategy, ToolStrategy)
    limit = getattr(strategy, "max_concurrency", None)

    tracker = _Tracker()
    await strategy.run([], tracker)
    assert not tracker.started, f"{name}.run([]) executed {tracker.started}"

    probe = _calls(calls)
    ids = [c.id for c in probe]
    strategy = await _make(factory)
    tracker = _Tracker()
    await strategy.run(probe, tracker)
    assert not tracker.running, f"{name}.run returned while {sorted(tracker.running)} were still running"
    assert sorted(tracker.started) == sorted(ids) and len(tracker.started) == len(ids), (
        f"{name}: every call must be executed exactly once; executed {tracker.started} for {ids}"
    )
    assert sorted(tracker.finished) == sorted(ids), f"{name}: calls {set(ids) - set(tracker.finished)} never finished"
    if not strategy.concurrent:
        assert tracker.max_running == 1, f"{name} is not concurrent but ran {tracker.max_running} calls at once"
        assert tracker.started == ids, f"{name} is sequential but ran calls in the order {tracker.started}"
    if limit is not None:
        assert tracker.max_running <= limit, (
            f"{name}: max_concurrency={limit} but {tracker.max_running} calls ran at once"
        )

    # cancellation: the second call blocks until cancelled
    strategy = await _make(factory)
    tracker = _Tracker(block=[ids[1]])
    returned = False
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def drive() -> None:
                nonlocal returned
                await strategy.run(probe, tracker)
                returned = True

            tg.start_soon(drive)
            with anyio.fail_after(60):
                while ids[1] not in tracker.started:
                    await anyio.sleep(0)
            for _ in range(10):  # let the other calls get going
                await anyio.sleep(0)
            scope.cancel()
    assert not returned, f"{name}.run returned normally although it was cancelled with {ids[1]} blocked"
    assert scope.cancelled_caught, f"{name}.run swallowed the cancellation"
    assert not tracker.running, f"{name}: {sorted(tracker.running)} still running after run was cancelled"

    # a failing execute propagates
    strategy = await _make(factory)
    tracker = _Tracker(fail=[ids[0]])
    try:
        await strategy.run(probe, tracker)
    except BaseException as exc:
        leaves = _leaves(exc)
        assert any(isinstance(leaf, _StrategyProbeError) for leaf in leaves), (
            f"{name}.run raised {exc!r} instead of execute's exception"
        )
    else:
        raise AssertionError(f"{name}.run swallowed the exception execute raised for {ids[0]}")
    assert not tracker.running, f"{name}: {sorted(tracker.running)} still running after a call failed"


# ----------------------------------------------------------------------------- journals


class _OwnType:
    """A plain class: only a plugin's converter hooks can (de)serialise it."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _OwnType) and other.label == self.label

    def __hash__(self) -> int:
        return hash(self.label)

    def __repr__(self) -> str:
        return f"_OwnType({self.label!r})"


COUNT_KEY: StateKey[int] = StateKey("conformance.count", int, 0)
OWN_KEY: StateKey[_OwnType | None] = StateKey("conformance.own", _OwnType, None)


class _ConformancePlugin:
    """Declares the state keys and converter hooks the journal entries use."""

    name = "journal-conformance"

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.add_state_key(COUNT_KEY)
        runtime.add_state_key(OWN_KEY)

    @hookimpl
    def agent_configure_converter(self, converter: Any) -> None:
        converter.register_unstructure_hook(_OwnType, lambda v: {"label": v.label})
        converter.register_structure_hook(_OwnType, lambda raw, _: _OwnType(raw["label"]))


def journal_entries() -> list[Entry]:
    """One journal entry of every kind, carrying every patch kind the kernel has.

    Uses plugin state keys (one of a type only a converter hook can handle), so
    the entries round-trip only through the agent's codec.
    """
    call = ToolCall("call_1", "get_weather", {"city": "Paris", "days": [1, 2]})
    message = Message("assistant", "", (call,))
    all_patches: list[p.Patch] = [
        p.AppendMessages([Message("user", "more"), Message("tool", "r", tool_call_id="call_1", is_error=True)]),
        p.InjectContext("context"),
        p.SetData(COUNT_KEY, 3),
        p.SetData(OWN_KEY, _OwnType("mine")),
        p.IncrementData(COUNT_KEY, 2),
        p.ExcludeTools({"a", "b"}),
        p.OnlyTools({"c"}),
        p.Stop("limit", "too many steps"),
        p.Block("not allowed"),
        p.Suspend("needs approval"),
        p.ProvideResult("cached", False),
        p.RewriteArguments({"city": "Lyon"}),
        p.Remind("be brief"),
    ]
    all_patches += [
        p.ToolChoice("get_weather"),
        p.SetModel("scripted:other"),
        p.Finish("final answer given"),
        p.SetWindow(2, "earlier: the user asked about the weather"),
        p.ReplaceMessage(0, Message("user", "rewritten input")),
    ]
    return [
        Started(1, "scripted", "What is the weather?", "Be helpful."),
        Committed("run_start", 0, tuple(all_patches), ("journal-conformance",) * len(all_patches)),
        Inferred(1, Response(message, Usage(10, 5, 1), "tool_use", "scripted")),
        Committed("after_inference", 1),
        Committed("before_tool_execute", 1, (p.Suspend("check"),), ("approval",), "call_1"),
        Intended(1, "call_1", {"city": "Paris", "nested": {"k": [1, "two"]}}),
        Waiting(
            1, "call_1", (ApprovalRequest("run:1:call_1/2/call_9", call, "get_weather", "child asks", 2, "child"),)
        ),
        ToolDone(1, "call_1", ToolResult("Sunny", False)),
        ToolDone(1, "call_2", ToolResult("boom", True)),
        Decided("run/1/call_1", Approve()),
        Decided("run/1/call_2", Approve({"city": "Nice"})),
        Decided("run/1/call_3", Deny("no")),
        Retried("inference", 1, 0.5, "InferenceError: overloaded", "scripted"),
        Ended("suspended"),
        Started(2, "scripted"),
        Ended("error", ErrorInfo("boom", "plugin", "agent_step_start", "ValueError")),
    ]


async def check_journal(factory: Factory) -> None:
    """Check a `Journal` against the claim-then-load-then-append-conditionally rule.

    - it is bound to an agent's codec (`bind`) before use;
    - an unknown run loads ``[]``;
    - `claim` returns 1 for a new run, then increasing numbers; runs are independent;
    - `append` then `load` round-trips entries of every kind, in order, including
      plugin state values only the agent's codec can (de)serialise;
    - an `append` is refused with `StaleAttempt`, writing nothing, when its attempt
      was superseded, when the run was never claimed, or when `at` is not the log's
      length (behind it or beyond it);
    - `runs` lists every run, oldest first;
    - appends to several runs issued concurrently each stay whole, and a refused one
      among them does not fail the others (group commits isolate each append);
    - appends awaited one after another keep their order;
    - the list `load` returns is the caller's (changing it changes nothing).

    Args:
        factory: returns a fresh, empty journal (or an awaitable of one).

    Raises:
        AssertionError: naming the broken property.
    """
    journal: Journal = await _make(factory)
    name = type(journal).__name__
    agent = Agent(model="scripted", plugins=[_ConformancePlugin()], autoload=False)
    journal.bind(agent.codec)

    async def refused(run_id: str, attempt: int, at: int, why: str) -> None:
        before = await journal.load(run_id)
        try:
            await journal.append(run_id, attempt, [Ended("completed")], at=at)
        except StaleAttempt:
            pass
        else:
            raise AssertionError(f"{name}.append must raise StaleAttempt {why}")
        _same_entries(await journal.load(run_id), before, f"{name}: an append refused {why} must write nothing")

    assert await journal.load("conformance-unknown") == [], f"{name}.load of an unknown run must return []"
    await refused("conformance-unknown", 1, 0, "for a run that was never claimed")

    first = await journal.claim("run-a")
    assert first == 1, f"{name}.claim of a new run returned {first!r}, expected 1"
    second = await journal.claim("run-a")
    assert isinstance(second, int) and second > first, f"{name}.claim again returned {second!r} after {first}"
    other = await journal.claim("run-b")
    assert other == 1, f"{name}.claim of another new run returned {other!r}: attempts are per run"

    entries = journal_entries()
    await journal.append("run-a", second, entries[:5], at=0)
    await refused("run-a", second, 3, "when `at` is behind the log's end (another append came first)")
    await refused("run-a", second, 6, "when `at` is beyond the log's end")
    await journal.append("run-a", second, entries[5:], at=5)
    loaded = await journal.load("run-a")
    _same_entries(loaded, entries, f"{name}: append/load round-trip")

    third = await journal.claim("run-a")
    assert third > second, f"{name}.claim returned {third!r} after {second}"
    await refused("run-a", second, len(entries), f"by attempt {second} after attempt {third} claimed the run")
    await journal.append("run-a", third, [Started(third, "scripted")], at=len(entries))
    assert len(await journal.load("run-a")) == len(entries) + 1, f"{name}: the current attempt must be able to append"

    await journal.append("run-b", other, [Started(1, "scripted", "b")], at=0)
    runs = await journal.runs()
    assert "run-a" in runs and "run-b" in runs, f"{name}.runs() returned {runs!r}, missing run-a or run-b"
    assert runs.index("run-a") < runs.index("run-b"), f"{name}.runs() must list oldest first: {runs!r}"

    mutable = await journal.load("run-b")
    mutable.clear()
    assert len(await journal.load("run-b")) == 1, f"{name}.load must return a new list each time"

    # concurrency from one process: whole appends, a refused one failing no other
    ids = [f"run-c{b}" for b in range(12)]
    attempts = [await journal.claim(run_id) for run_id in ids]
    newer = await journal.claim(ids[-1])  # the last run's first attempt is now stale
    batches: list[list[Entry]] = [[Retried(f"batch-{b}", i, 0.0, "") for i in range(3)] for b in range(12)]
    outcomes: dict[str, BaseException | None] = {}

    async def append(run_id: str, attempt: int, batch: list[Entry]) -> None:
        try:
            await journal.append(run_id, attempt, batch, at=0)
            outcomes[run_id] = None
        except Exception as exc:
            outcomes[run_id] = exc

    async with anyio.create_task_group() as tg:
        for run_id, attempt, batch in zip(ids, attempts, batches, strict=True):
            tg.start_soon(append, run_id, attempt, batch)
    assert isinstance(outcomes[ids[-1]], StaleAttempt), (
        f"{name}: a stale append among concurrent ones raised {outcomes[ids[-1]]!r}, not StaleAttempt"
    )
    for run_id, batch in zip(ids[:-1], batches, strict=False):
        assert outcomes[run_id] is None, (
            f"{name}: an append to {run_id!r} failed with {outcomes[run_id]!r} beside a stale one"
        )
        _same_entries(await journal.load(run_id), batch, f"{name}: concurrent appends must each stay whole")
    assert await journal.load(ids[-1]) == [], f"{name}: the stale concurrent append must write nothing"
    await journal.append(ids[-1], newer, batches[-1], at=0)

    attempt = await journal.claim("run-d")
    for i in range(20):
        await journal.append("run-d", attempt, [Retried("sequential", i, 0.0, "")], at=i)
    order = [e.attempt for e in await journal.load("run-d")]  # type: ignore[attr-defined]
    assert order == list(range(20)), f"{name}: sequential appends came back in the order {order}"


def _same_entries(got: Sequence[Entry], expected: Sequence[Entry], what: str) -> None:
    assert len(got) == len(expected), f"{what}: loaded {len(got)} entries, appended {len(expected)}"
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a == b, f"{what}: entry {i} came back as\n  {a!r}\nbut was\n  {b!r}"
