"""Properties: the root's depth cap holds for any nesting, and every run keeps the phase grammar."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import trio
from handoff_testkit import RunsRecorder, add, scripted, shout
from hypothesis import given
from hypothesis import strategies as st

from agent_kernel import Agent, Deltas, Message, ModelRegistrar, Outcome, Request, Response, ToolCall, hookimpl
from agent_kernel.errors import InferenceError
from agent_kernel.journal import Committed, MemoryJournal, ToolDone
from agent_kernel.patches import SetData
from agent_kernel.testing import UseJournal, text, tool_call
from agent_kernel.testing.grammar import check_plugin_phase_grammar
from agent_plugin_handoff import DEPTH, TRANSFER_TOOL, Handoff, Peer, SubAgent
from agent_plugin_tools import Toolbox


def turns_for(level: int, calls: int, deeper: bool) -> list[Any]:
    if not calls or not deeper:
        return [text(f"L{level} done")]
    return [[tool_call(f"L{level + 1}", input=f"from {level} #{i}") for i in range(calls)], text(f"L{level} done")]


@given(
    levels=st.integers(1, 5),
    cap=st.integers(1, 4),
    calls=st.lists(st.integers(0, 2), min_size=6, max_size=6),
    parallel=st.lists(st.booleans(), min_size=6, max_size=6),
    nested_caps=st.lists(st.integers(1, 6), min_size=6, max_size=6),
    backend=st.sampled_from(["trio", "asyncio"]),
)
def test_no_run_is_deeper_than_the_root_cap_and_the_root_ends_once(
    levels: int, cap: int, calls: list[int], parallel: list[bool], nested_caps: list[int], backend: str
) -> None:
    """Level d (d = 1..levels) calls level d+1 calls[d] times; the root calls level 1 calls[0] times."""
    rec = RunsRecorder()
    sub: SubAgent | None = None
    for level in range(levels, 0, -1):
        plugins: list[object] = [
            scripted(turns_for(level, calls[level], level < levels)),
            Toolbox([add], parallel=parallel[level]),
            rec,
        ]
        if sub is not None:
            plugins.append(Handoff([sub], max_depth=nested_caps[level]))  # never the cap that applies
        sub = SubAgent(f"L{level}", f"level {level}", model="scripted", plugins=plugins, autoload=False)
    assert sub is not None
    root = Agent(
        "scripted",
        [
            scripted(turns_for(0, calls[0], True)),
            Toolbox([add], parallel=parallel[0]),
            Handoff([sub], max_depth=cap),
            rec,
        ],
        autoload=False,
    )

    async def main() -> dict[str, list[Any]]:
        outcome = await root.run("go", run_id="root")
        assert outcome.reason == "completed" and outcome.output == "L0 done"
        return {run_id: await root.journal.load(run_id) for run_id in await root.journal.runs()}

    journal = trio.run(main) if backend == "trio" else asyncio.run(main())

    deepest = min(levels, cap)
    for depth in range(deepest + 1):
        expected = math.prod(calls[:depth])
        found = [r for r in journal if r.count("/") == 2 * depth]
        assert len(found) == expected, f"depth {depth}: {len(found)} runs, expected {expected}"
    for run_id, entries in journal.items():
        depth = run_id.count("/") // 2
        assert depth <= cap
        linked = [
            p.value
            for e in entries
            if isinstance(e, Committed)
            for p in e.patches
            if isinstance(p, SetData) and p.key is DEPTH
        ]
        assert linked == ([] if depth == 0 else [depth])
    refusals = [
        e.result
        for entries in journal.values()
        for e in entries
        if isinstance(e, ToolDone) and "depth limit" in e.result.content
    ]
    refused = math.prod(calls[: cap + 1]) if levels > cap else 0
    assert len(refusals) == refused
    assert all(r.is_error and f"depth limit {cap} reached" in r.content for r in refusals)
    rec.check()
    assert rec.phases("root").count("run_start") == rec.phases("root").count("run_end") == 1


def test_a_handoff_keeps_the_phase_grammar_with_random_plugins_and_faults() -> None:
    def plugins() -> object:
        child = SubAgent("helper", "Helps.", model="scripted", plugins=[scripted([text("ok")])], autoload=False)
        return Handoff([child], transfers=[Peer("other", "Another agent.", model="scripted", instructions="Be other.")])

    check_plugin_phase_grammar(plugins, max_examples=15)


class Switchboard:
    """Serves every model of the transfer property from one script; fails turn `fail_at` once."""

    name = "switchboard"

    def __init__(self, models: list[str], turns: list[Any], fail_at: int | None) -> None:
        self.models, self.turns, self.fail_at = models, turns, fail_at
        self.requests: list[Request] = []

    @hookimpl
    def agent_register_models(self, models: ModelRegistrar) -> None:
        for model in self.models:
            models.add(model, self)

    async def infer(self, request: Request, deltas: Deltas) -> Response:
        self.requests.append(request)
        turn = sum(1 for m in request.messages if m.role == "assistant")
        if turn == self.fail_at:
            self.fail_at = None
            raise InferenceError("provider down", retryable=False)
        target = self.turns[turn]
        if target is None:
            return Response(Message("assistant", "end"))
        return Response(Message("assistant", "", (ToolCall(f"t{turn}", TRANSFER_TOOL, {"agent": target}),)))


PEERS = {
    "p0": Peer("p0", "zero", model="m0", instructions="I am p0.", tools=["add"]),
    "p1": Peer("p1", "one", model="m1"),
    "p2": Peer("p2", "two", model="m2", instructions="I am p2.", tools=[]),
}


@given(
    targets=st.lists(st.sampled_from(["p0", "p1", "p2", "nobody"]), max_size=6),
    fail_at=st.none() | st.integers(0, 6),
    backend=st.sampled_from(["trio", "asyncio"]),
)
def test_every_request_goes_to_the_agent_the_run_was_last_transferred_to(
    targets: list[str], fail_at: int | None, backend: str
) -> None:
    """Whatever the transfers (valid or not) and wherever a failure interrupts the run, resume included."""
    board = Switchboard(["lead", "m0", "m1", "m2"], [*targets, None], fail_at)
    journal = MemoryJournal()

    def build() -> Agent:
        plugins = [board, Toolbox([add, shout]), Handoff(transfers=PEERS.values()), UseJournal(journal)]
        return Agent("lead", plugins, autoload=False, instructions="I lead.")

    async def main() -> Outcome:
        outcome = await build().run("go", run_id="t")
        if outcome.reason == "error":
            outcome = await build().resume("t")  # a fresh agent: the transfers come from the journal
        return outcome

    outcome = trio.run(main) if backend == "trio" else asyncio.run(main())
    assert outcome.reason == "completed" and outcome.output == "end"

    everything = ["add", "shout", TRANSFER_TOOL]
    model, system, visible = "lead", "I lead.", everything
    expected = [(model, [system], visible)]
    for target in targets:
        peer = PEERS.get(target)
        if peer is not None:
            model = peer.model
            system = peer.instructions if peer.instructions is not None else system
            visible = everything if peer.tools is None else sorted({*peer.tools, TRANSFER_TOOL})
        expected.append((model, [system], visible))
    seen = [
        (r.model, [m.content for m in r.messages if m.role == "system"], sorted(t.name for t in r.tools))
        for r in board.requests
    ]
    if fail_at is not None and fail_at <= len(targets):
        expected = expected[: fail_at + 1] + expected[fail_at:]  # the failed request, sent again by the resume
    assert seen == expected
    assert outcome.state.model == model
