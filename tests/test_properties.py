"""Hypothesis properties of the kernel (DESIGN §4-5).

- the phase grammar and RunEnd-exactly-once, under random scripts, random patches,
  raising and misbehaving plugins, inference and tool faults, timeouts and
  cancellation from outside (trio, and a smaller run under asyncio);
- resume: a finished run makes zero calls and returns the same outcome; a run that
  failed or was cancelled at a random point, resumed until done, never re-requests a
  recorded response nor re-runs a recorded tool result, and ends like a run that
  never failed; event ``seq`` strictly increases across invocations;
- fold: deterministic, pure, and folding a concatenation equals folding in sequence;
- concurrent tool calls: patches merged in call order (never completion order),
  conflicts per `StateKey.merge`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from functools import partial
from itertools import pairwise
from typing import Any

import anyio
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent_kernel import (
    Agent,
    Approve,
    Context,
    Deny,
    Message,
    RunState,
    StateKey,
    ToolCall,
    fold,
    hookimpl,
    merge_concurrent,
    patches,
)
from agent_kernel import events as ev
from agent_kernel._cursor import APPROVE, Cursor
from agent_kernel._fold import resolve_call
from agent_kernel._log import Log
from agent_kernel.errors import PatchConflict
from agent_kernel.hookspecs import PHASES
from agent_kernel.journal import Committed, Decided, Inferred, ToolDone, Waiting
from agent_kernel.testing import ConcurrentStrategy, FakeTools, ScriptedModel, text, tool_call
from agent_kernel.testing import strategies as aks
from agent_kernel.testing.grammar import Transcript, check_transcript, exercise, run_sync

# ------------------------------------------------------------------------------------------ grammar


@given(
    script=aks.scripts(mid_text=True),
    plugins=aks.plugin_behaviours(),
    faults=aks.faults(),
    concurrent=st.booleans(),
)
def test_grammar_and_run_end_once_under_random_plugins_and_faults(
    script: list[Any], plugins: list[Any], faults: aks.Faults, concurrent: bool
) -> None:
    transcript = run_sync(partial(exercise, script, plugins, faults, concurrent=concurrent))
    check_transcript(transcript)


@settings(max_examples=10)
@given(
    script=aks.scripts(), plugins=aks.plugin_behaviours(max_plugins=2), faults=aks.faults(), concurrent=st.booleans()
)
def test_grammar_and_run_end_once_under_asyncio(
    script: list[Any], plugins: list[Any], faults: aks.Faults, concurrent: bool
) -> None:
    run = partial(exercise, script, plugins, faults, concurrent=concurrent, time_scale=0.001)
    check_transcript(run_sync(run, "asyncio"))


@given(
    script=aks.scripts(mid_text=True),
    plugins=aks.plugin_behaviours(),
    faults=aks.faults(),
    concurrent=st.booleans(),
)
def test_the_journal_replays_to_where_the_live_run_ended(
    script: list[Any], plugins: list[Any], faults: aks.Faults, concurrent: bool
) -> None:
    """Live runs and resumes share `Cursor.apply`: folding the journal anew gives the
    state the last invocation ended with, and the same next move."""
    t = run_sync(partial(exercise, script, plugins, faults, concurrent=concurrent))
    final = t.outcomes[-1]
    assume(final is not None)
    assert final is not None
    cursor = Cursor(t.run_id, "scripted")
    cursor.replay(t.entries)
    assert cursor.state == final.state
    if final.reason in ("completed", "stopped"):
        assert cursor.finished and cursor.next_move() == final.reason
    elif final.reason == "suspended":
        assert cursor.next_move() == APPROVE and cursor.state.pending == final.pending


def test_grammar_property_for_a_plugin_author() -> None:
    """The public property, as a plugin author calls it, with a well-behaved plugin."""
    from agent_kernel.testing import check_plugin_phase_grammar

    class Counter_:
        name = "counter"
        key = StateKey("counter.steps", int, 0)

        @hookimpl
        def agent_register_runtime(self, runtime: Any) -> None:
            runtime.add_state_key(self.key)

        @hookimpl
        def agent_step_end(self) -> list[patches.Patch]:
            return [patches.IncrementData(self.key)]

    check_plugin_phase_grammar(Counter_, max_examples=15)


# ------------------------------------------------------------------------------------------ resume


def _turns(script: Sequence[Any]) -> int:
    return len(script)


def _known_calls(script: Sequence[Any]) -> int:
    count = 0
    for turn in script[:-1]:
        calls = turn if isinstance(turn, list) else [turn]
        count += sum(1 for c in calls if c.name in aks.TOOL_NAMES)
    return count


class FailOnce:
    """Raises in the phase hook call with ordinal `at` (counted over all phases), once."""

    name = "fail-once"

    def __init__(self, at: int) -> None:
        self.at = at
        self.n = 0

    def tick(self) -> None:
        n = self.n
        self.n += 1
        if n == self.at:
            raise RuntimeError(f"fails once, at phase call {n}")


def _fail_once_plugin(at: int, is_async: bool) -> FailOnce:
    methods: dict[str, Any] = {}
    for phase in PHASES:
        if is_async:

            async def hook(self: FailOnce) -> None:
                await anyio.sleep(0)
                self.tick()

        else:

            def hook(self: FailOnce) -> None:  # type: ignore[misc]
                self.tick()

        hook.__name__ = f"agent_{phase}"
        methods[f"agent_{phase}"] = hookimpl(hook)
    return type("FailOnceAt", (FailOnce,), methods)(at)  # type: ignore[no-any-return]


def _conversation(t: Transcript) -> list[tuple[str, str, bool]]:
    final = t.final
    assert final is not None
    return [(m.role, m.content, m.is_error) for m in final.state.messages]


@given(
    script=aks.scripts(unknown=True),
    at=st.integers(0, 40),
    is_async=st.booleans(),
    concurrent=st.booleans(),
)
def test_resume_after_an_error_at_a_random_point_re_requests_nothing(
    script: list[Any], at: int, is_async: bool, concurrent: bool
) -> None:
    reference = run_sync(partial(exercise, script, [], concurrent=concurrent))
    assert reference.final is not None and reference.final.reason == "completed"

    t = run_sync(partial(exercise, script, [_fail_once_plugin(at, is_async)], concurrent=concurrent))
    check_transcript(t)
    assert t.final is not None and t.final.reason == "completed", t.outcomes
    if len(t.outcomes) > 1:
        error = t.outcomes[0].error if t.outcomes[0] else None
        assert error is not None and (error.plugin, error.type) == ("fail-once", "RuntimeError"), error
    assert len(t.requests) == _turns(script), "each turn is requested exactly once over all invocations"
    assert len(t.tool_starts) == _known_calls(script), "each known tool call runs exactly once"
    assert _conversation(t) == _conversation(reference), "the resumed run ends like one that never failed"


@given(
    script=aks.scripts(),
    faults=aks.faults(inference=False, retries=False),
    concurrent=st.booleans(),
)
def test_resume_after_cancellation_never_repeats_recorded_work(
    script: list[Any], faults: aks.Faults, concurrent: bool
) -> None:
    t = run_sync(partial(exercise, script, [], faults, concurrent=concurrent))
    check_transcript(t)
    assert t.final is not None and t.final.reason == "completed", t.outcomes
    inferred = [e for e in t.entries if isinstance(e, Inferred)]
    assert len(t.requests) == len(inferred), "a recorded response is never requested again"
    turns = [sum(m.role == "assistant" for m in r.messages) for r in t.requests]
    assert len(set(turns)) == len(turns), f"a turn was requested twice: {turns}"
    starts = Counter((i.name, i.idempotency_key) for i in t.tool_starts)
    repeated = {k: n for k, n in starts.items() if n > 1 and k[0] == "add"}
    assert not repeated, f"a non-idempotent tool ran twice: {repeated}"
    finishes = Counter(i.idempotency_key for i in t.tool_finishes)
    assert all(n == 1 for n in finishes.values()), f"a tool finished twice: {finishes}"
    done = Counter(e.call_id for e in t.entries if isinstance(e, ToolDone) and e.step)
    results = [m for m in t.final.state.messages if m.role == "tool"]
    assert len(results) == _all_calls(script), "every call got exactly one result"
    assert sum(done.values()) == len(results)


@given(
    script=aks.scripts(),
    suspends=st.frozensets(st.integers(0, 6), max_size=4),
    deny=st.booleans(),
    concurrent=st.booleans(),
)
def test_a_tool_that_suspends_its_run_is_called_again_once_with_its_decisions(
    script: list[Any], suspends: frozenset[int], deny: bool, concurrent: bool
) -> None:
    """ToolSuspended: the call waits (the step's other calls do not), its requests are decided once,
    and it is called exactly once more, with them; everything else runs once."""
    decision = Deny("no") if deny else Approve()
    t = run_sync(
        partial(
            exercise,
            script,
            [],
            aks.Faults(tool_suspends=suspends),
            concurrent=concurrent,
            max_resumes=10,
            decide=lambda request: decision,
        )
    )
    check_transcript(t)
    assert t.final is not None and t.final.reason == "completed", t.outcomes
    waits = [e for e in t.entries if isinstance(e, Waiting)]
    waited = {f"{t.run_id}:{w.step}:{w.call_id}" for w in waits}
    starts = Counter(i.idempotency_key for i in t.tool_starts)
    assert {k: n for k, n in starts.items() if n != (2 if k in waited else 1)} == {}, (waited, starts)
    decided = [e.request_id for e in t.entries if isinstance(e, Decided)]
    assert sorted(decided) == sorted(r.id for w in waits for r in w.requests), "each request decided exactly once"
    results = {m.tool_call_id: m.content for m in t.final.state.messages if m.role == "tool"}
    assert len(results) == _all_calls(script), "every call got exactly one result"
    expected = f'"decided": ["{type(decision).__name__}"]'
    assert all(expected in results[w.call_id] for w in waits), "each waiting call got its decision"
    assert len(t.requests) == _turns(script), "no turn was requested again"
    for outcome in t.outcomes:  # call ids are call_<step>_<n>: n is the call's place in its step
        waiting = [int(r.id.split("/")[0].rsplit("_", 1)[1]) for r in outcome.pending] if outcome else []
        assert waiting == sorted(waiting), f"requests wait in call order, not completion order: {outcome}"


def _all_calls(script: Sequence[Any]) -> int:
    return sum(len(turn) if isinstance(turn, list) else 1 for turn in script[:-1])


@given(
    script=aks.scripts(),
    plugins=aks.plugin_behaviours(raises=False, illegal=False, suspend=False),
    concurrent=st.booleans(),
)
def test_resume_of_a_finished_run_makes_zero_calls_and_returns_the_same_outcome(
    script: list[Any], plugins: list[Any], concurrent: bool
) -> None:
    async def scenario() -> None:
        model = ScriptedModel(script)
        t = await exercise(script, plugins, concurrent=concurrent, model=model, max_resumes=6)
        first = t.final
        assert first is not None
        if first.reason not in ("completed", "stopped"):
            return  # e.g. still suspended after the resumes: not a finished run
        agent = Agent(model="scripted", plugins=[model, *_rebuilt(plugins)], autoload=False)
        # the same journal: replay it into the new agent's in-memory journal
        await agent.journal.claim(t.run_id)
        await agent.journal.append(t.run_id, 1, t.entries, at=0)
        requests = len(model.requests)
        again = await agent.resume(t.run_id)
        assert len(model.requests) == requests, "a finished run makes no request"
        assert (again.reason, again.output, again.stop, again.state) == (
            first.reason,
            first.output,
            first.stop,
            first.state,
        )
        assert again.stats.llm_calls == first.stats.llm_calls and again.stats.tool_calls == first.stats.tool_calls

    run_sync(scenario)


def _rebuilt(plugins: list[Any]) -> list[Any]:
    return [aks.BehaviourPlugin.make(p.name, p.behaviours.values()) for p in plugins]


@given(script=aks.scripts(unknown=False), timeout=st.sampled_from([0.5, 1.5, 2.5]), concurrent=st.booleans())
def test_event_seq_strictly_increases_across_run_and_resume(
    script: list[Any], timeout: float, concurrent: bool
) -> None:
    async def scenario() -> None:
        async def slow(**kwargs: Any) -> str:
            await anyio.sleep(1.0)
            return "ok"

        slow.__name__ = "echo"
        tools = FakeTools(slow, strategy="concurrent" if concurrent else "sequential")
        agent = Agent(model="scripted", plugins=[ScriptedModel(script), tools], autoload=False)
        seen: list[ev.Event] = []
        async with agent.stream("go", run_id="seq", timeout=timeout) as events:
            async for event in events:
                seen.append(event)
        resumes = 0
        while events.outcome is not None and events.outcome.reason == "cancelled" and resumes < 3:
            resumes += 1
            async with agent.stream(run_id="seq", resume=True) as events:
                async for event in events:
                    seen.append(event)
        seqs = [e.seq for e in seen]
        assert all(b > a for a, b in pairwise(seqs)), seqs
        assert {e.run_id for e in seen} == {"seq"}
        assert sum(isinstance(e, ev.RunStarted) for e in seen) == resumes + 1
        assert sum(isinstance(e, ev.RunEnded) for e in seen) == resumes + 1

    run_sync(scenario)


# ------------------------------------------------------------------------------------------ fold

_messages = st.lists(
    st.builds(Message, st.sampled_from(["user", "assistant", "tool"]), st.text(max_size=5)), max_size=4
)


@st.composite
def run_states(draw: st.DrawFn) -> RunState:
    messages = [Message("user", "first"), *draw(_messages)]
    return RunState(
        "run",
        "scripted",
        Log(messages),
        step=draw(st.integers(0, 5)),
        data={k.name: draw(st.integers(-3, 3)) for k in draw(st.sets(st.sampled_from(aks.STATE_KEYS)))},
        context=tuple(draw(st.lists(st.text(max_size=3), max_size=2))),
    )


patch_lists = st.sampled_from(PHASES).flatmap(lambda phase: aks.legal_patches(phase, max_size=5))
CALL = ToolCall("call_1", "echo", {"x": 1})


def _snapshot(state: RunState) -> tuple[Any, ...]:
    return (list(state.messages), dict(state.data), state.context, state.stop, state.pending, state.step)


@given(state=run_states(), patch_list=patch_lists)
def test_fold_is_deterministic_and_pure(state: RunState, patch_list: list[patches.Patch]) -> None:
    before = _snapshot(state)
    first = fold(state, patch_list, call=CALL)
    second = fold(state, patch_list, call=CALL)
    assert first == second
    assert _snapshot(state) == before, "fold must not change its input"
    assert fold(state, [], call=CALL) == state


@given(patch_list=aks.legal_patches("before_tool_execute", max_size=6), data=st.data())
def test_a_call_s_fate_does_not_depend_on_plugin_order(patch_list: list[patches.Patch], data: Any) -> None:
    """Block outranks ProvideResult outranks Suspend, in any order (DESIGN §4: policies compose)."""
    shuffled = data.draw(st.permutations(patch_list))
    plan, again = resolve_call(CALL, patch_list), resolve_call(CALL, shuffled)
    kinds = {type(patch) for patch in patch_list}
    expected = (
        "block"
        if patches.Block in kinds
        else "provide"
        if patches.ProvideResult in kinds
        else "suspend"
        if patches.Suspend in kinds
        else "run"
    )
    assert plan.action == again.action == expected


@given(state=run_states(), a=patch_lists, b=patch_lists)
def test_folding_a_concatenation_equals_folding_in_sequence(
    state: RunState, a: list[patches.Patch], b: list[patches.Patch]
) -> None:
    assert fold(state, a + b, call=CALL) == fold(fold(state, a, call=CALL), b, call=CALL)


# ------------------------------------------------------------------------------------------ serialisation


@functools.cache
def _codec_agent() -> Agent:
    class Keys:
        name = "keys"

        @hookimpl
        def agent_register_runtime(self, runtime: Any) -> None:
            for key in aks.STATE_KEYS:
                runtime.add_state_key(key)

    return Agent(model="scripted", plugins=[Keys()], autoload=False)


@given(
    phase_patches=st.sampled_from(PHASES).flatmap(lambda ph: st.tuples(st.just(ph), aks.legal_patches(ph, max_size=6)))
)
def test_every_patch_round_trips_through_the_agent_codec(phase_patches: tuple[str, list[patches.Patch]]) -> None:
    phase, patch_list = phase_patches
    codec = _codec_agent().codec
    entry = Committed(phase, 1, tuple(patch_list), ("p",) * len(patch_list), "call_1")
    assert codec.decode(codec.encode(entry)) == entry


def test_every_journal_entry_kind_round_trips_through_the_agent_codec() -> None:
    from agent_kernel.testing.conformance import _ConformancePlugin, journal_entries

    codec = Agent(model="scripted", plugins=[_ConformancePlugin()], autoload=False).codec
    failures = []
    for entry in journal_entries():
        try:
            back = codec.decode(codec.encode(entry))
        except Exception as exc:
            failures.append(f"{type(entry).__name__}: {type(exc).__name__}: {exc}")
            continue
        if back != entry:
            failures.append(f"{entry!r} came back as {back!r}")
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------------------------------ merging

LAST: StateKey[int] = StateKey("merge.last", int, 0, merge="last")
STRICT: StateKey[int] = StateKey("merge.strict", int, 0)
SUM: StateKey[int] = StateKey("merge.sum", int, 0, merge="sum")
JOINED: StateKey[tuple[str, ...]] = StateKey("merge.joined", tuple, (), merge=lambda a, b: (*a, *b))

_writes = st.lists(
    st.one_of(
        st.builds(lambda v: patches.SetData(LAST, v), st.integers(0, 9)),
        st.builds(lambda v: patches.SetData(STRICT, v), st.integers(0, 9)),
        st.builds(lambda v: patches.IncrementData(STRICT, v), st.integers(1, 3)),
        st.builds(lambda t: patches.Remind(t), st.text(max_size=3)),
    ),
    max_size=3,
)


@given(batches=st.lists(_writes, min_size=1, max_size=4))
def test_merge_concurrent_keeps_call_order_and_detects_conflicts(batches: list[list[patches.Patch]]) -> None:
    call_ids = [f"call_{i}" for i in range(len(batches))]
    writers = [
        i for i, batch in enumerate(batches) if any(isinstance(p, patches.SetData) and p.key is STRICT for p in batch)
    ]
    if len(writers) > 1:
        with pytest.raises(PatchConflict, match=f"{call_ids[writers[0]]}.*{call_ids[writers[1]]}"):
            merge_concurrent(batches, call_ids)
        return
    merged = merge_concurrent(batches, call_ids)
    assert [len(m) for m in merged] == [len(b) for b in batches]
    assert [[type(p) for p in m] for m in merged] == [[type(p) for p in b] for b in batches]
    flat_before = [p for b in batches for p in b]
    flat_after = [p for m in merged for p in m]
    state = RunState("run", "scripted", Log([Message("user", "x")]))
    assert fold(state, flat_after) == fold(state, flat_before), "'last' keeps the later call's value, in call order"


@given(values=st.lists(st.text(alphabet="abc", max_size=2), min_size=1, max_size=5))
def test_merge_concurrent_applies_a_function_rule_in_call_order(values: list[str]) -> None:
    batches = [[patches.SetData(JOINED, (v,))] for v in values]
    merged = merge_concurrent(batches, [f"call_{i}" for i in range(len(values))])
    state = fold(RunState("run", "scripted", Log([])), [p for m in merged for p in m])
    assert state.get(JOINED) == functools.reduce(lambda a, b: (*a, *b), [(v,) for v in values])


def test_merge_concurrent_sum_rule_adds_concurrent_writes() -> None:
    merged = merge_concurrent([[patches.SetData(SUM, 2)], [patches.SetData(SUM, 3)]], ["call_1", "call_2"])
    state = fold(RunState("run", "scripted", Log([])), [p for m in merged for p in m])
    assert state.get(SUM) == 5, f"merge='sum' must add concurrent writes, got {state.get(SUM)}: {merged}"


def test_merge_concurrent_one_call_setting_a_key_twice_is_no_conflict() -> None:
    batch = [patches.SetData(STRICT, 1), patches.SetData(STRICT, 2)]
    merged = merge_concurrent([batch, [patches.Remind("x")]], ["call_1", "call_2"])
    assert merged == [batch, [patches.Remind("x")]], "only two different calls writing one key conflict"


class Collector:
    """after_tool_execute: each call appends its id under `JOINED` and sets `LAST`."""

    name = "collector"

    @hookimpl
    def agent_register_runtime(self, runtime: Any) -> None:
        runtime.add_state_key(JOINED)
        runtime.add_state_key(LAST)

    @hookimpl
    def agent_after_tool_execute(self, ctx: Context, call: ToolCall) -> list[patches.Patch]:
        index = int(call.id.rsplit("_", 1)[1])
        return [patches.SetData(JOINED, (call.id,)), patches.SetData(LAST, index), patches.Remind(f"r{index}")]


@given(order=st.integers(2, 4).flatmap(lambda n: st.permutations(list(range(n)))))
def test_parallel_patches_fold_in_call_order_not_completion_order(order: list[int]) -> None:
    async def scenario() -> None:
        finished: list[int] = []
        rank = {call: position for position, call in enumerate(order)}

        async def echo(i: int) -> str:
            while len(finished) != rank[i]:  # finish in the drawn order
                await anyio.sleep(0)
            finished.append(i)
            return f"result {i}"

        n = len(order)
        model = ScriptedModel([[tool_call("echo", i=i) for i in range(n)], text("done")])
        agent = Agent(
            model="scripted", plugins=[model, FakeTools(echo, strategy="concurrent"), Collector()], autoload=False
        )
        outcome = await agent.run("go", run_id="parallel")
        assert finished == order, "the tools completed in the drawn order"
        done = [e.call_id for e in await agent.journal.load("parallel") if isinstance(e, ToolDone)]
        assert done == [f"call_1_{i + 1}" for i in order], "results are journaled as they complete"
        ids = [f"call_1_{i + 1}" for i in range(n)]
        assert outcome.state.get(JOINED) == tuple(ids), "merged in call order"
        assert outcome.state.get(LAST) == n, "'last' is the last call in call order"
        tool_messages = [m for m in outcome.state.messages if m.role == "tool"]
        assert [m.tool_call_id for m in tool_messages] == ids
        assert [m.content for m in tool_messages] == [
            f"result {i}\n\n<system-reminder>r{i + 1}</system-reminder>" for i in range(n)
        ]

    run_sync(scenario)


async def test_concurrent_calls_writing_a_strict_key_end_the_run_with_a_conflict() -> None:
    class Writer:
        name = "writer"

        @hookimpl
        def agent_register_runtime(self, runtime: Any) -> None:
            runtime.add_state_key(STRICT)

        @hookimpl
        def agent_after_tool_execute(self, call: ToolCall) -> list[patches.Patch]:
            return [patches.SetData(STRICT, len(call.id))]

    def echo(i: int = 0) -> int:
        return i

    model = ScriptedModel([[tool_call("echo", i=1), tool_call("echo", i=2)], text("done")])
    agent = Agent(
        model="scripted", plugins=[model, FakeTools(echo, strategy=ConcurrentStrategy()), Writer()], autoload=False
    )
    outcome = await agent.run("go")
    assert outcome.reason == "error" and outcome.error is not None
    assert (
        outcome.error.type == "PatchConflict"
        and "call_1_1" in outcome.error.message
        and "call_1_2" in outcome.error.message
    )

    model = ScriptedModel([[tool_call("echo", i=1), tool_call("echo", i=2)], text("done")])
    sequential = Agent(model="scripted", plugins=[model, FakeTools(echo), Writer()], autoload=False)
    assert (await sequential.run("go")).reason == "completed", "sequential calls see each other's writes: no conflict"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["append", "extend", "replace"]), st.integers(0, 50), st.lists(st.integers(), max_size=3)
        )
    )
)
def test_every_log_view_behaves_as_the_immutable_list_it_was_made_as(
    operations: list[tuple[str, int, list[int]]],
) -> None:
    """Views share one buffer (appending to a shorter one forks it): each view still reads,
    iterates, reverses and indexes as the list it was made as, whatever was done later."""
    views: list[tuple[Log[int], list[int]]] = [(Log(), [])]
    for operation, pick, items in operations:
        log, model = views[pick % len(views)]  # any earlier view, often a shorter one: a fork
        if operation == "append":
            views.append((log.append(pick), [*model, pick]))
        elif operation == "extend":
            views.append((log.extend(items), [*model, *items]))
        elif model:
            views.append(
                (log.replace(pick % len(model), -1), [*model[: pick % len(model)], -1, *model[pick % len(model) + 1 :]])
            )
    for log, model in views:
        assert list(log) == model and list(reversed(log)) == model[::-1] and len(log) == len(model)
        assert [log[i] for i in range(-len(model), len(model))] == model + model
        assert log == model
