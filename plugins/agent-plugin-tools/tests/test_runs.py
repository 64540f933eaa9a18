"""Toolbox inside real agent runs: results, errors, threads, timeouts, idempotency keys."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import attrs
import pytest
import trio

from agent_kernel import Agent, Retry, ToolContext, ToolResult, hookimpl
from agent_kernel.errors import ToolInputError
from agent_kernel.testing import RunRecorder, ScriptedModel, text, tool_call
from agent_plugin_tools import Toolbox, tool

from .conftest import run_agent, tool_messages


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first addend.
        b: the second addend.
    """
    return a + b


@attrs.frozen
class Weather:
    city: str
    celsius: float


async def test_a_tool_call_round_trip() -> None:
    recorder = RunRecorder()
    model = ScriptedModel([tool_call("add", a=2, b=3), text("It is 5")])
    agent = Agent(model="scripted", plugins=[model, Toolbox([add]), recorder], autoload=False)
    outcome = await agent.run("What is 2+3?")
    assert (outcome.reason, outcome.output) == ("completed", "It is 5")
    [message] = tool_messages(outcome)
    assert (message.content, message.is_error, message.tool_call_id) == ("5", False, "call_1_1")
    assert outcome.stats.tool_calls == 1 and outcome.stats.tool_errors == 0
    [spec] = model.requests[0].tools
    assert spec.name == "add" and spec.description == "Add two integers."
    assert spec.parameters["properties"]["a"] == {"type": "integer", "description": "the first addend."}
    recorder.assert_phases(
        [
            *("run_start", "step_start", "before_inference", "after_inference"),
            *("before_tool_execute", "after_tool_execute", "step_end"),
            *("step_start", "before_inference", "after_inference", "step_end", "run_end"),
        ]
    )


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"a": "2", "b": 3}, """Invalid arguments for 'add': parameter a: expected an integer, got the string "2\""""),
        ({"a": 2}, "Invalid arguments for 'add': missing required parameter 'b' (an integer)"),
        ({"a": 2, "b": 3, "c": 4}, "Invalid arguments for 'add': unknown parameter 'c' (the tool takes: a, b)"),
        (
            {"a": [2], "b": None},
            "parameter a: expected an integer, got an array; parameter b: expected an integer, got null",
        ),
    ],
)
async def test_invalid_arguments_become_error_results_the_model_sees(arguments: dict[str, Any], expected: str) -> None:
    calls: list[tuple[int, int]] = []

    def add_and_log(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    model = ScriptedModel([tool_call("add_and_log", **arguments), text("sorry")])
    agent = Agent(model="scripted", plugins=[model, Toolbox([add_and_log])], autoload=False)
    outcome = await agent.run("go")
    assert outcome.reason == "completed"
    [message] = tool_messages(outcome)
    assert message.is_error
    assert expected.replace("'add'", "'add_and_log'") in message.content
    assert calls == []  # never called with bad input
    assert model.requests[1].messages[-1] == message  # the model saw it
    assert outcome.stats.tool_errors == 1


async def test_unknown_tool_is_an_error_result() -> None:
    outcome = await run_agent([tool_call("subtract", a=1, b=2), text("ok")], Toolbox([add]))
    [message] = tool_messages(outcome)
    assert message.is_error and message.content == "Unknown tool 'subtract'. Available tools: add."
    assert outcome.reason == "completed"


async def test_sync_tools_run_in_a_worker_thread() -> None:
    def where() -> int:
        return threading.get_ident()

    outcome = await run_agent([tool_call("where"), text("done")], Toolbox([where]))
    [message] = tool_messages(outcome)
    assert int(message.content) != threading.get_ident()


async def test_a_sync_tool_does_not_block_the_event_loop() -> None:
    released = threading.Event()

    def wait_for_release() -> str:
        return "released" if released.wait(5) else "the loop was blocked"

    async def release_soon() -> None:
        await trio.sleep(0.01)  # runs only if the loop is free while the tool waits
        released.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(release_soon)
        outcome = await run_agent([tool_call("wait_for_release"), text("done")], Toolbox([wait_for_release]))
    assert tool_messages(outcome)[0].content == "released"


async def test_async_tools_are_awaited_on_the_loop() -> None:
    async def fetch(city: str) -> Weather:
        await trio.sleep(0)
        return Weather(city, 21.5)

    async def thread_of() -> int:
        return threading.get_ident()

    outcome = await run_agent(
        [[tool_call("fetch", city="Oslo"), tool_call("thread_of")], text("ok")], Toolbox([fetch, thread_of])
    )
    weather, thread = tool_messages(outcome)
    assert weather.content == '{"city": "Oslo", "celsius": 21.5}'
    assert int(thread.content) == threading.get_ident()


@pytest.mark.parametrize(
    ("value", "content", "is_error"),
    [
        ("plain text", "plain text", False),
        ("", "", False),
        (42, "42", False),
        (None, "null", False),
        ({"b": [1, 2], "é": True}, '{"b": [1, 2], "é": true}', False),
        ((1, "x"), '[1, "x"]', False),
        ({3, 1, 2}, "[1, 2, 3]", False),
        (Weather("Rome", 30.0), '{"city": "Rome", "celsius": 30.0}', False),
        ([Weather("Rome", 30.0)], '[{"city": "Rome", "celsius": 30.0}]', False),
        (ToolResult("custom failure", is_error=True), "custom failure", True),
    ],
)
async def test_return_values_are_encoded(value: Any, content: str, is_error: bool) -> None:
    def give() -> Any:
        return value

    [message] = tool_messages(await run_agent([tool_call("give"), text("ok")], Toolbox([give])))
    assert (message.content, message.is_error) == (content, is_error)


async def test_values_that_are_not_json_become_an_error_result() -> None:
    def give() -> object:
        return object()

    [message] = tool_messages(await run_agent([tool_call("give"), text("ok")], Toolbox([give])))
    assert message.is_error
    assert message.content.startswith(
        "Tool 'give' failed: TypeError: tool 'give' returned a object that cannot be encoded as JSON"
    )


@pytest.mark.parametrize("is_async", [False, True])
async def test_exceptions_become_error_results(is_async: bool) -> None:
    def explode(reason: str) -> str:
        raise RuntimeError(reason)

    async def explode_async(reason: str) -> str:
        raise RuntimeError(reason)

    function = tool(name="explode")(explode_async if is_async else explode)
    outcome = await run_agent([tool_call("explode", reason="boom"), text("handled")], Toolbox([function]))
    [message] = tool_messages(outcome)
    assert message.is_error and message.content == "Tool 'explode' failed: RuntimeError: boom"
    assert outcome.reason == "completed" and outcome.output == "handled"


async def test_a_tool_may_raise_tool_input_error_itself() -> None:
    def divide(a: float, b: float) -> float:
        if b == 0:
            raise ToolInputError("b must not be zero")
        return a / b

    [message] = tool_messages(await run_agent([tool_call("divide", a=1, b=0), text("ok")], Toolbox([divide])))
    assert message.is_error and message.content == "Invalid arguments for 'divide': b must not be zero"


async def test_exceptions_go_to_the_tool_error_decision_with_a_stable_key() -> None:
    seen: list[tuple[str, int]] = []

    def flaky(ctx: ToolContext) -> str:
        seen.append((ctx.idempotency_key, ctx.attempt))
        if len(seen) < 3:
            raise ConnectionError("try again")
        return "finally"

    class RetryTwice:
        name = "retry-twice"

        @hookimpl
        def agent_on_tool_error(self, error: Exception, attempt: int) -> Retry | None:
            assert isinstance(error, ConnectionError)
            return Retry() if attempt < 3 else None

    outcome = await run_agent([tool_call("flaky"), text("ok")], Toolbox([flaky]), RetryTwice(), run_id="r-1")
    assert tool_messages(outcome)[0].content == "finally"
    assert seen == [("r-1:1:call_1_1", 1), ("r-1:1:call_1_1", 2), ("r-1:1:call_1_1", 3)]
    assert outcome.stats.retries == 2


async def test_idempotency_key_is_run_step_call_id() -> None:
    keys: list[tuple[str, str, int, str]] = []

    async def remember(note: str, ctx: ToolContext) -> str:
        keys.append((ctx.idempotency_key, ctx.run_id, ctx.step, ctx.call_id))
        return note

    script = [
        [tool_call("remember", note="a"), tool_call("remember", note="b")],
        tool_call("remember", note="c"),
        text("ok"),
    ]
    outcome = await run_agent(script, Toolbox([remember]), run_id="run-42")
    assert [m.content for m in tool_messages(outcome)] == ["a", "b", "c"]
    assert keys == [
        ("run-42:1:call_1_1", "run-42", 1, "call_1_1"),
        ("run-42:1:call_1_2", "run-42", 1, "call_1_2"),
        ("run-42:2:call_2_1", "run-42", 2, "call_2_1"),
    ]
    assert len({k for k, *_ in keys}) == 3


@pytest.mark.parametrize("idempotent", [True, False])
async def test_a_call_interrupted_mid_flight_on_resume(
    idempotent: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """Idempotent tools re-run on resume with the same key; others give "outcome unknown"."""
    keys: list[str] = []

    @tool(idempotent=idempotent)
    async def charge(amount: int, ctx: ToolContext) -> str:
        keys.append(ctx.idempotency_key)
        if len(keys) == 1:
            await anyio.sleep_forever()  # the first attempt never finishes
        return f"charged {amount}"

    agent = Agent(
        model="scripted",
        plugins=[ScriptedModel([tool_call("charge", amount=5), text("ok")]), Toolbox([charge])],
        autoload=False,
    )
    first = await agent.run("pay", run_id="pay-1", timeout=10)
    assert first.reason == "cancelled"
    second = await agent.resume("pay-1")
    assert second.reason == "completed"
    [message] = tool_messages(second)
    if idempotent:
        assert keys == ["pay-1:1:call_1_1", "pay-1:1:call_1_1"]
        assert (message.content, message.is_error) == ("charged 5", False)
    else:
        assert keys == ["pay-1:1:call_1_1"]
        assert message.is_error and "outcome of this tool call is unknown" in message.content


# ----------------------------------------------------------------------------- timeouts


async def test_async_tool_timeout_is_an_error_result(autojump_clock: trio.testing.MockClock) -> None:
    cancelled = []

    @tool(timeout=1.5)
    async def slow() -> str:
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise
        return "never"

    async def quick() -> str:
        await anyio.sleep(1)
        return "quick"

    start = trio.current_time()
    outcome = await run_agent([[tool_call("slow"), tool_call("quick")], text("ok")], Toolbox([slow, quick], timeout=5))
    slow_message, quick_message = tool_messages(outcome)
    assert slow_message.is_error and slow_message.content == "Tool 'slow' timed out after 1.5 s and was cancelled."
    assert (quick_message.content, quick_message.is_error) == ("quick", False)
    assert cancelled == [True]
    assert trio.current_time() - start == pytest.approx(2.5)
    assert outcome.reason == "completed"


async def test_toolbox_timeout_applies_to_every_tool(autojump_clock: trio.testing.MockClock) -> None:
    async def wait(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "waited"

    outcome = await run_agent(
        [[tool_call("wait", seconds=1), tool_call("wait", seconds=3)], text("ok")], Toolbox([wait], timeout=2)
    )
    assert [(m.content, m.is_error) for m in tool_messages(outcome)] == [
        ("waited", False),
        ("Tool 'wait' timed out after 2 s and was cancelled.", True),
    ]


async def test_sync_tool_timeout_abandons_the_thread() -> None:
    finish = threading.Event()
    finished = threading.Event()

    @tool(timeout=0.05)
    def stuck() -> str:
        finish.wait(10)
        finished.set()
        return "late"

    started = time.monotonic()
    outcome = await run_agent([tool_call("stuck"), text("ok")], Toolbox([stuck]))
    elapsed = time.monotonic() - started
    [message] = tool_messages(outcome)
    assert message.is_error
    assert message.content == (
        "Tool 'stuck' timed out after 0.05 s; it may still complete in the background, so check before calling it again."
    )
    assert elapsed < 5
    assert not finished.is_set()  # the thread is still running: it was abandoned, not waited for
    finish.set()
    assert await anyio.to_thread.run_sync(finished.wait, 5)


async def test_positional_only_keyword_only_and_defaults_are_passed_right() -> None:
    def shape(a: int = 1, b: int = 2, /, c: int = 3, *, d: int = 4, ctx: ToolContext) -> str:
        return f"{a} {b} {c} {d} {ctx.call_id}"

    class Greeter:
        def __init__(self, greeting: str) -> None:
            self.greeting = greeting

        async def __call__(self, who: str) -> str:
            return f"{self.greeting}, {who}"

    calls = [tool_call("shape", b=20, d=40), tool_call("shape", a=10, c=30), tool_call("greet", who="Ada")]
    outcome = await run_agent([calls, text("ok")], Toolbox([shape, tool(name="greet")(Greeter("Hello"))]))
    assert [m.content for m in tool_messages(outcome)] == ["1 20 3 40 call_1_1", "10 2 30 4 call_1_2", "Hello, Ada"]
