"""Sequential and parallel strategies, several Toolboxes, and backend neutrality."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_kernel import Agent, ToolCall, ToolStrategy, hookimpl
from agent_kernel.errors import ConfigurationError, PluginLoadError
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_tools import Parallel, Sequential, Toolbox

from .conftest import run_agent, tool_messages


class InFlight:
    """Counts tool calls in flight and remembers the most at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.log: list[str] = []

    async def work(self, i: int, seconds: float) -> str:
        self.now += 1
        self.most = max(self.most, self.now)
        self.log.append(f"start {i}")
        try:
            await anyio.sleep(seconds)
        finally:
            self.now -= 1
        self.log.append(f"end {i}")
        return f"result {i}"


class AfterLog:
    """A plugin that writes each after_tool_execute into a shared log."""

    name = "after-log"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl
    def agent_after_tool_execute(self, call: ToolCall) -> None:
        self.log.append(f"after {call.arguments['i']}")


def test_strategies_are_frozen_equal_values() -> None:
    assert Sequential() == Sequential() and Parallel(3) == Parallel(3) and Parallel() == Parallel(None)
    assert Parallel(3) != Parallel(4) and Parallel(3) != Sequential()
    assert (Sequential.concurrent, Parallel.concurrent) == (False, True)
    assert isinstance(Sequential(), ToolStrategy) and isinstance(Parallel(2), ToolStrategy)
    with pytest.raises(AttributeError):
        Parallel(2).max_concurrency = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        Parallel(0)
    with pytest.raises(TypeError):
        Parallel("2")  # type: ignore[arg-type]
    assert Toolbox([]).strategy == Sequential()
    assert Toolbox([], parallel=True, max_concurrency=4).strategy == Parallel(4)


async def test_sequential_runs_one_call_after_another(autojump_clock: trio.testing.MockClock) -> None:
    flight = InFlight()
    calls = [tool_call("work", i=i, seconds=1) for i in range(4)]
    start = trio.current_time()
    outcome = await run_agent([calls, text("ok")], Toolbox([flight.work]), AfterLog(flight.log))
    assert flight.most == 1
    assert flight.log == [f"{what} {i}" for i in range(4) for what in ("start", "end", "after")]
    assert trio.current_time() - start == pytest.approx(4)
    assert [m.content for m in tool_messages(outcome)] == [f"result {i}" for i in range(4)]


async def test_parallel_runs_calls_concurrently(autojump_clock: trio.testing.MockClock) -> None:
    flight = InFlight()
    calls = [tool_call("work", i=i, seconds=1) for i in range(4)]
    start = trio.current_time()
    outcome = await run_agent([calls, text("ok")], Toolbox([flight.work], parallel=True), AfterLog(flight.log))
    assert flight.most == 4
    assert trio.current_time() - start == pytest.approx(1)
    assert sorted(flight.log[:4]) == [f"start {i}" for i in range(4)]  # all started before any ended
    assert flight.log[-4:] == [f"after {i}" for i in range(4)]  # hooks fold after all ran, in call order
    assert [m.content for m in tool_messages(outcome)] == [f"result {i}" for i in range(4)]


@pytest.mark.parametrize("limit", [1, 2, 3, 5])
async def test_parallel_concurrency_is_bounded(limit: int, autojump_clock: trio.testing.MockClock) -> None:
    flight = InFlight()
    calls = [tool_call("work", i=i, seconds=1 + (i % 3)) for i in range(12)]
    outcome = await run_agent([calls, text("ok")], Toolbox([flight.work], parallel=True, max_concurrency=limit))
    assert flight.most == limit  # reached, never exceeded
    starts = [entry for entry in flight.log if entry.startswith("start")]
    if limit == 1:
        assert starts == [f"start {i}" for i in range(12)]  # slots are taken in call order
    assert [m.content for m in tool_messages(outcome)] == [f"result {i}" for i in range(12)]


async def test_parallel_sync_tools_are_bounded_too() -> None:
    lock = threading.Lock()
    state = {"now": 0, "most": 0}
    gate = threading.Barrier(3, timeout=5)

    def block(i: int) -> int:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            if i < 3:
                gate.wait()  # the first three must all be in flight together
            return threading.get_ident()
        finally:
            with lock:
                state["now"] -= 1

    calls = [tool_call("block", i=i) for i in range(9)]
    outcome = await run_agent([calls, text("ok")], Toolbox([block], parallel=True, max_concurrency=3))
    messages = tool_messages(outcome)
    assert not any(m.is_error for m in messages), [m.content for m in messages]
    assert state["most"] == 3
    assert len({m.content for m in messages[:3]}) == 3  # three different worker threads


async def _completion_order_run(order: list[int]) -> tuple[list[int], list[str], list[str]]:
    """Run len(order) parallel calls that complete in `order`; return completions and results."""
    n = len(order)
    gates = [anyio.Event() for _ in range(n)]
    following = {order[k]: order[k + 1] for k in range(n - 1)}
    finished: list[int] = []

    async def step(i: int) -> str:
        await gates[i].wait()
        await anyio.sleep(0)
        finished.append(i)
        if i in following:
            gates[following[i]].set()
        return f"step {i}"

    gates[order[0]].set()
    with anyio.fail_after(10):
        outcome = await run_agent(
            [[tool_call("step", i=i) for i in range(n)], text("ok")], Toolbox([step], parallel=True)
        )
    results = [m.content for m in tool_messages(outcome)]
    call_ids = [m.tool_call_id or "" for m in tool_messages(outcome)]
    return finished, results, call_ids


async def test_parallel_results_are_appended_in_call_order() -> None:
    order = [3, 0, 4, 1, 2]
    finished, results, call_ids = await _completion_order_run(order)
    assert finished == order  # they really completed out of order
    assert results == [f"step {i}" for i in range(5)]
    assert call_ids == [f"call_1_{i + 1}" for i in range(5)]


@settings(max_examples=30, deadline=None)
@given(order=st.integers(2, 8).flatmap(lambda n: st.permutations(list(range(n)))))
def test_parallel_results_in_call_order_whatever_the_completion_order(order: list[int]) -> None:
    finished, results, _ = trio.run(_completion_order_run, order)
    assert finished == order
    assert results == [f"step {i}" for i in range(len(order))]


@settings(max_examples=30, deadline=None)
@given(
    delays=st.lists(st.integers(0, 5), min_size=1, max_size=15),
    limit=st.none() | st.integers(1, 6),
)
def test_parallel_random_delays_bounded_and_ordered(delays: list[int], limit: int | None) -> None:
    async def main() -> tuple[InFlight, list[str]]:
        flight = InFlight()
        calls = [tool_call("work", i=i, seconds=d) for i, d in enumerate(delays)]
        outcome = await run_agent([calls, text("ok")], Toolbox([flight.work], parallel=True, max_concurrency=limit))
        return flight, [m.content for m in tool_messages(outcome)]

    flight, results = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert results == [f"result {i}" for i in range(len(delays))]
    assert flight.most <= (limit or len(delays))
    assert flight.now == 0


async def test_many_parallel_calls(autojump_clock: trio.testing.MockClock) -> None:
    async def square(x: int) -> int:
        await anyio.sleep((x * 7919) % 13 / 10)
        return x * x

    def cube(x: int) -> int:
        return x**3

    calls = [tool_call("square" if i % 2 else "cube", x=i) for i in range(200)]
    outcome = await run_agent([calls, text("ok")], Toolbox([square, cube], parallel=True, max_concurrency=16))
    assert [m.content for m in tool_messages(outcome)] == [str(i * i if i % 2 else i**3) for i in range(200)]
    assert outcome.stats.tool_calls == 200 and outcome.stats.tool_errors == 0


async def test_parallel_errors_stay_with_their_call() -> None:
    async def maybe(i: int) -> str:
        await anyio.sleep(0)
        if i % 2:
            raise ValueError(f"odd {i}")
        return f"even {i}"

    outcome = await run_agent(
        [[tool_call("maybe", i=i) for i in range(4)], text("ok")], Toolbox([maybe], parallel=True)
    )
    assert [(m.content, m.is_error) for m in tool_messages(outcome)] == [
        ("even 0", False),
        ("Tool 'maybe' failed: ValueError: odd 1", True),
        ("even 2", False),
        ("Tool 'maybe' failed: ValueError: odd 3", True),
    ]


async def test_parallel_wrap_hook_failure_names_the_plugin() -> None:
    class BrokenWrap:
        name = "broken-wrap"

        @hookimpl
        def agent_wrap_tool_call(self, call: ToolCall) -> Any:
            if call.id == "call_1_2":
                raise RuntimeError("wrap exploded")
            return None

    async def noop(i: int) -> str:
        return "ok"

    calls = [tool_call("noop", i=i) for i in range(3)]
    outcome = await run_agent([calls, text("ok")], Toolbox([noop], parallel=True), BrokenWrap())
    assert outcome.reason == "error"
    assert outcome.error is not None
    assert (outcome.error.plugin, outcome.error.hook) == ("broken-wrap", "agent_wrap_tool_call")
    assert "wrap exploded" in outcome.error.message


# ----------------------------------------------------------------------------- several Toolboxes


def upper(s: str) -> str:
    return s.upper()


def add(a: int, b: int) -> int:
    return a + b


async def test_two_toolboxes_with_different_names() -> None:
    model = ScriptedModel([[tool_call("add", a=1, b=2), tool_call("upper", s="hi")], text("ok")])
    agent = Agent(
        model="scripted", plugins=[model, Toolbox([add], name="math"), Toolbox([upper], name="text")], autoload=False
    )
    assert {spec.name: spec.plugin for spec in agent.tools} == {"add": "math", "upper": "text"}
    outcome = await agent.run("go")
    assert [m.content for m in tool_messages(outcome)] == ["3", "HI"]
    assert {t.name for t in model.requests[0].tools} == {"add", "upper"}


def test_two_toolboxes_with_the_same_name_fail_loudly() -> None:
    with pytest.raises(PluginLoadError, match="two plugins are named 'toolbox'"):
        Agent(model="scripted", plugins=[Toolbox([add]), Toolbox([upper])], autoload=False)


def test_duplicate_tool_names_across_toolboxes() -> None:
    with pytest.raises(ConfigurationError) as info:
        Agent(
            model="scripted",
            plugins=[Toolbox([add], name="first"), Toolbox([add, upper], name="second")],
            autoload=False,
        )
    message = str(info.value)
    assert "tool 'add'" in message and "'first'" in message and "'second'" in message


async def test_toolboxes_with_equal_strategies_agree(autojump_clock: trio.testing.MockClock) -> None:
    flight = InFlight()

    async def other(i: int, seconds: float) -> str:
        return await flight.work(i, seconds)

    calls = [tool_call("work" if i % 2 else "other", i=i, seconds=1) for i in range(6)]
    plugins = [Toolbox([flight.work], True, 2, name="a"), Toolbox([other], True, 2, name="b")]
    outcome = await run_agent([calls, text("ok")], *plugins)
    assert flight.most == 2  # Parallel(2), shared by both
    assert [m.content for m in tool_messages(outcome)] == [f"result {i}" for i in range(6)]


@pytest.mark.parametrize("max_concurrency", [None, 4])
def test_toolboxes_with_different_strategies_are_refused(max_concurrency: int | None) -> None:
    with pytest.raises(ConfigurationError) as info:
        Agent(
            model="scripted",
            plugins=[
                Toolbox([add], parallel=True, max_concurrency=max_concurrency, name="fast"),
                Toolbox([upper], name="slow"),
            ],
            autoload=False,
        )
    message = str(info.value)
    assert "tool strategy" in message and "'fast'" in message and "'slow'" in message


# ----------------------------------------------------------------------------- asyncio


def test_runs_under_asyncio_too() -> None:
    async def main() -> list[tuple[str, bool]]:
        import asyncio

        ticks: list[int] = []

        async def tick() -> None:
            for i in range(3):
                await asyncio.sleep(0.001)
                ticks.append(i)

        async def fetch(n: int) -> int:
            await anyio.sleep(0.01 * (3 - n))  # later calls finish first
            return n

        def blocking(n: int) -> str:
            return f"thread {threading.get_ident() != main_thread}"

        async def slow() -> str:
            await anyio.sleep(10)
            return "never"

        main_thread = threading.get_ident()
        ticker = asyncio.ensure_future(tick())
        calls = [tool_call("fetch", n=n) for n in range(3)] + [
            tool_call("blocking", n=1),
            tool_call("slow"),
            tool_call("fetch", n="x"),
        ]
        toolbox = Toolbox([fetch, blocking, slow], parallel=True, max_concurrency=2, timeout=0.2)
        outcome = await run_agent([calls, text("ok")], toolbox)
        await ticker
        assert ticks == [0, 1, 2]
        assert outcome.reason == "completed"
        return [(m.content, m.is_error) for m in tool_messages(outcome)]

    assert anyio.run(main, backend="asyncio") == [
        ("0", False),
        ("1", False),
        ("2", False),
        ("thread True", False),
        ("Tool 'slow' timed out after 0.2 s and was cancelled.", True),
        ("Invalid arguments for 'fetch': parameter n: expected an integer, got the string \"x\"", True),
    ]


@pytest.mark.parametrize("make", [Sequential, Parallel, lambda: Parallel(1), lambda: Parallel(3)])
async def test_strategies_pass_the_kernel_conformance_check(make: Any) -> None:
    from agent_kernel.testing import check_tool_strategy

    await check_tool_strategy(make, calls=9)
