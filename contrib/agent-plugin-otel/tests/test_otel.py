"""Telemetry: the span tree of runs, under trio and asyncio, through errors, cancellation,
suspension, resumes and retries, with the real OpenTelemetry SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import importlib_metadata
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import INVALID_SPAN, NoOpTracerProvider, SpanKind
from otel_testkit import Traces, attr, end, is_error, shape, span_id, start

from agent_kernel import (
    Agent,
    Approve,
    Context,
    Deny,
    Message,
    Request,
    Response,
    Retry,
    RuntimeRegistrar,
    ToolCall,
    ToolResult,
    hookimpl,
    patches,
)
from agent_kernel.config import ConfigError, find_settings, load_config
from agent_kernel.journal import Started
from agent_kernel.testing import ScriptedModel, fault, text, tool_call
from agent_plugin_approval import Approval
from agent_plugin_approval.policies import require_approval
from agent_plugin_guardrails import Guardrails
from agent_plugin_otel import CONTENT_ENV, Settings, Telemetry
from agent_plugin_retry import Retry as RetryPlugin
from agent_plugin_tools import Toolbox

CONTENT_KEYS = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def build(traces: Traces, *plugins: object, model: str = "scripted", **telemetry: Any) -> Agent:
    return Agent(model=model, plugins=[*plugins, traces.plugin(**telemetry)], autoload=False)


def invocations(traces: Traces) -> list[Any]:
    return traces.operation("invoke_agent")


def check_usage(traces: Traces, invoke: Any) -> None:
    """An invocation's usage is what its own inferences used (not the run's total so far)."""
    chats = [s for s in traces.children(invoke) if attr(s, "gen_ai.operation.name") == "chat"]
    for kind in ("input", "output"):
        key = f"gen_ai.usage.{kind}_tokens"
        assert attr(invoke, key) == sum(attr(c, key) or 0 for c in chats), (invoke.name, key)


# ----------------------------------------------------------------------------- the tree of a run


class CurrentInHooks:
    """Notes the current span in a phase hook (another plugin's, e.g. calling a moderation API)."""

    name = "current-in-hooks"

    def __init__(self) -> None:
        self.seen: list[int] = []

    @hookimpl
    def agent_step_start(self) -> None:
        self.seen.append(trace.get_current_span().get_span_context().span_id)


def test_span_tree_of_a_run_with_a_tool_call(run: Any, traces: Traces) -> None:
    hooks = CurrentInHooks()
    agent = build(traces, ScriptedModel([tool_call("add", a=2, b=3), text("5")]), Toolbox([add]), hooks)

    async def main() -> Any:
        with traces.tracer.start_as_current_span("caller") as caller:
            outcome = await agent.run("What is 2+3?", run_id="r1")
            assert trace.get_current_span() is caller  # the run left the caller's context as it found it
        assert trace.get_current_span() is INVALID_SPAN
        return outcome

    outcome = run(main)
    assert outcome.reason == "completed" and outcome.output == "5"
    traces.check()
    [caller] = [s for s in traces.spans if s.name == "caller"]
    [invoke] = invocations(traces)
    assert invoke.parent is not None and invoke.parent.span_id == span_id(caller)
    assert (invoke.name, invoke.kind) == ("invoke_agent", SpanKind.INTERNAL)
    assert shape(traces, invoke) == ["chat scripted", "execute_tool add", "chat scripted"]
    assert hooks.seen == [span_id(invoke)] * 2  # the invocation's span is current while its phases run
    assert dict(invoke.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.request.model": "scripted",
        "gen_ai.conversation.id": "r1",
        "agent_kernel.run.id": "r1",
        "agent_kernel.run.attempt": 1,
        "agent_kernel.run.resumed": False,
        "agent_kernel.outcome.reason": "completed",
        "gen_ai.usage.input_tokens": outcome.usage.input_tokens,
        "gen_ai.usage.output_tokens": outcome.usage.output_tokens,
        "agent_kernel.retries": 0,
    }
    assert not is_error(invoke)

    first, second = traces.operation("chat")
    assert first.kind is SpanKind.CLIENT
    assert attr(first, "gen_ai.request.model") == attr(first, "gen_ai.response.model") == "scripted"
    assert [attr(c, "agent_kernel.step") for c in (first, second)] == [1, 2]
    assert [attr(c, "agent_kernel.attempt") for c in (first, second)] == [1, 1]
    assert attr(first, "gen_ai.response.finish_reasons") == ("tool_call",)
    assert attr(second, "gen_ai.response.finish_reasons") == ("stop",)
    assert attr(first, "gen_ai.usage.input_tokens") + attr(second, "gen_ai.usage.input_tokens") == (
        outcome.usage.input_tokens
    )
    assert attr(first, "gen_ai.usage.output_tokens") + attr(second, "gen_ai.usage.output_tokens") == (
        outcome.usage.output_tokens
    )
    assert "gen_ai.provider.name" not in (first.attributes or {})  # "scripted" names no provider

    [tool] = traces.operation("execute_tool")
    assert tool.kind is SpanKind.INTERNAL
    assert dict(tool.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.call.id": "call_1_1",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.description": "Add two integers.",
        "gen_ai.conversation.id": "r1",
        "agent_kernel.step": 1,
        "agent_kernel.attempt": 1,
    }
    assert end(first) <= start(tool) and end(tool) <= start(second)
    for span in traces.spans:  # content is not recorded by default
        assert not set(CONTENT_KEYS) & set(span.attributes or {}), span.name


def test_provider_and_model_come_from_the_model_string(run: Any, traces: Traces) -> None:
    model = ScriptedModel([text("hi")], model="acme:large-1")
    agent = build(traces, model, model="acme:large-1", agent_name="helper")
    outcome = run(agent.run, "hello")
    assert outcome.reason == "completed"
    traces.check()
    [invoke] = invocations(traces)
    [chat] = traces.operation("chat")
    assert invoke.name == "invoke_agent helper" and attr(invoke, "gen_ai.agent.name") == "helper"
    assert chat.name == "chat large-1"
    for span in (invoke, chat):
        assert (attr(span, "gen_ai.provider.name"), attr(span, "gen_ai.request.model")) == ("acme", "large-1")
    assert attr(chat, "gen_ai.response.model") == "acme:large-1"  # as the executor reported it


def test_request_settings_become_request_attributes(run: Any, traces: Traces) -> None:
    agent = Agent(
        model="scripted",
        plugins=[ScriptedModel([text("hi")]), traces.plugin()],
        autoload=False,
        settings={"temperature": 0.2, "max_tokens": 64, "top_p": 1, "stop": "END", "seed": 7, "user": "u1"},
    )
    run(agent.run, "hello")
    [chat] = traces.operation("chat")
    assert {k: v for k, v in (chat.attributes or {}).items() if k.startswith("gen_ai.request.")} == {
        "gen_ai.request.model": "scripted",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.seed": 7,
    }


# ----------------------------------------------------------------------------- context inside the work


def test_parallel_tool_calls_each_run_inside_their_own_span(run: Any, traces: Traces) -> None:
    seen: dict[str, int] = {}
    meeting: dict[str, Any] = {"arrived": 0}

    def current() -> int:
        return trace.get_current_span().get_span_context().span_id

    async def rendezvous() -> None:
        meeting["arrived"] += 1
        if meeting["arrived"] == 2:
            meeting["event"].set()
        with anyio.fail_after(30):  # both calls must be in flight at once, or this never returns
            await meeting["event"].wait()

    async def left(x: int) -> int:
        """Left."""
        seen["left"] = current()
        await rendezvous()
        seen["left after await"] = current()
        return x

    async def right(x: int) -> int:
        """Right."""
        seen["right"] = current()
        await rendezvous()
        seen["right after await"] = current()
        return x

    def middle(x: int) -> int:
        """Middle (sync: runs in a worker thread)."""
        seen["middle"] = current()
        return x

    def first_turn(request: Request) -> Any:
        seen["chat"] = current()  # inside the executor
        return [tool_call("left", x=1), tool_call("middle", x=2), tool_call("right", x=3)]

    model = ScriptedModel([first_turn, text("done")])
    agent = build(traces, model, Toolbox([left, middle, right], parallel=True))

    async def main() -> Any:
        meeting["event"] = anyio.Event()
        return await agent.run("go")

    assert run(main).reason == "completed"
    traces.check()
    [invoke] = invocations(traces)
    tools = {attr(s, "gen_ai.tool.name"): s for s in traces.operation("execute_tool")}
    children = shape(traces, invoke)
    assert children[0] == children[-1] == "chat scripted"
    assert sorted(children[1:-1]) == ["execute_tool left", "execute_tool middle", "execute_tool right"]
    assert seen["chat"] == span_id(traces.operation("chat")[0])
    for name in ("left", "middle", "right"):
        assert seen[name] == span_id(tools[name]), name
    assert seen["left after await"] == seen["left"] and seen["right after await"] == seen["right"]
    assert start(tools["right"]) < end(tools["left"]) and start(tools["left"]) < end(tools["right"])


def test_an_agent_run_inside_a_tool_is_a_child_of_that_tool_span(run: Any, traces: Traces) -> None:
    expert = build(traces, ScriptedModel([text("42")]), agent_name="expert")

    async def ask_expert(question: str) -> str:
        """Ask the expert."""
        return (await expert.run(question, run_id="inner")).output

    lead = build(
        traces,
        ScriptedModel([tool_call("ask_expert", question="meaning?"), text("It is 42.")]),
        Toolbox([ask_expert]),
        agent_name="lead",
    )
    assert run(partial(lead.run, "?", run_id="outer")).output == "It is 42."
    traces.check()
    outer, inner = invocations(traces)
    assert (outer.name, inner.name) == ("invoke_agent lead", "invoke_agent expert")
    [tool] = [s for s in traces.children(outer) if s.name == "execute_tool ask_expert"]
    assert inner.parent is not None and inner.parent.span_id == span_id(tool)
    assert shape(traces, inner) == ["chat scripted"]


def test_concurrent_runs_sharing_one_plugin_keep_their_own_trees(run: Any, traces: Traces) -> None:
    meeting: dict[str, Any] = {"arrived": 0}

    async def wait_for_other(name: str) -> str:
        """Returns once both runs are inside it."""
        meeting["arrived"] += 1
        if meeting["arrived"] == 2:
            meeting["event"].set()
        with anyio.fail_after(30):
            await meeting["event"].wait()
        return name

    telemetry = traces.plugin()
    agents = [
        Agent(
            model="scripted",
            plugins=[
                ScriptedModel([tool_call("wait_for_other", name=n), text(n)]),
                Toolbox([wait_for_other]),
                telemetry,
            ],
            autoload=False,
        )
        for n in ("a", "b")
    ]

    async def main() -> None:
        meeting["event"] = anyio.Event()
        async with anyio.create_task_group() as tg:
            for agent, run_id in zip(agents, ("run-a", "run-b"), strict=True):
                tg.start_soon(partial(agent.run, "go", run_id=run_id))

    run(main)
    traces.check()  # includes: each child is under the invoke_agent span of its own run
    spans = invocations(traces)
    assert sorted(attr(s, "agent_kernel.run.id") for s in spans) == ["run-a", "run-b"]
    for invoke in spans:
        assert shape(traces, invoke) == ["chat scripted", "execute_tool wait_for_other", "chat scripted"]


def test_a_streamed_run_is_traced_under_the_caller(run: Any, traces: Traces) -> None:
    agent = build(traces, ScriptedModel([text("hello there")]))

    async def main() -> None:
        with traces.tracer.start_as_current_span("caller"):
            async with agent.stream("hi") as events:
                async for _ in events:
                    pass
            assert events.outcome is not None and events.outcome.reason == "completed"

    run(main)
    traces.check()
    [caller] = [s for s in traces.spans if s.name == "caller"]
    [invoke] = invocations(traces)
    assert invoke.parent is not None and invoke.parent.span_id == span_id(caller)
    assert shape(traces, invoke) == ["chat scripted"]


# ----------------------------------------------------------------------------- errors


class RaisesAfterInference:
    name = "raises-after-inference"

    @hookimpl
    def agent_after_inference(self) -> None:
        raise RuntimeError("the checker broke")


def test_a_run_ending_in_error_ends_its_span_with_an_error_status(run: Any, traces: Traces) -> None:
    agent = build(
        traces, ScriptedModel([tool_call("add", a=1, b=2), text("3")]), Toolbox([add]), RaisesAfterInference()
    )
    outcome = run(agent.run, "go")
    assert outcome.reason == "error" and outcome.error is not None
    traces.check()
    [invoke] = invocations(traces)
    assert is_error(invoke) and invoke.status.description == outcome.error.message
    assert attr(invoke, "error.type") == "RuntimeError"
    assert attr(invoke, "agent_kernel.error.plugin") == "raises-after-inference"
    assert attr(invoke, "agent_kernel.error.hook") == "agent_after_inference"
    assert attr(invoke, "agent_kernel.outcome.reason") == "error"
    [chat] = traces.children(invoke)  # the inference itself succeeded
    assert chat.name == "chat scripted" and not is_error(chat) and attr(chat, "gen_ai.usage.output_tokens") > 0


def test_an_inference_failure_that_ends_the_run(run: Any, traces: Traces) -> None:
    agent = build(traces, ScriptedModel([fault("bad request", retryable=False), text("never")]))
    outcome = run(agent.run, "go")
    assert outcome.reason == "error" and outcome.error is not None
    traces.check()
    [invoke] = invocations(traces)
    [chat] = traces.children(invoke)
    assert is_error(chat) and attr(chat, "error.type") == "InferenceError"
    assert attr(chat, "agent_kernel.decision") == "fail"
    assert "gen_ai.usage.input_tokens" not in (chat.attributes or {})
    assert is_error(invoke) and attr(invoke, "error.type") == outcome.error.type == "InferenceError"


def test_tool_failures_are_error_spans_and_the_run_goes_on(run: Any, traces: Traces) -> None:
    def explode() -> str:
        """Always fails."""
        raise ValueError("kaput")

    def broken() -> ToolResult:
        """Returns an error result."""
        return ToolResult("it did not work", is_error=True)

    script = [[tool_call("explode"), tool_call("add", a="x", b=1), tool_call("broken")], text("sorry")]
    agent = build(traces, ScriptedModel(script), Toolbox([explode, add, broken]))
    outcome = run(agent.run, "go")
    assert outcome.reason == "completed" and outcome.stats.tool_errors == 3
    traces.check()
    tools = {attr(s, "gen_ai.tool.name"): s for s in traces.operation("execute_tool")}
    assert all(is_error(s) for s in tools.values())
    assert attr(tools["explode"], "error.type") == "ValueError"
    assert attr(tools["explode"], "agent_kernel.decision") == "fail"
    assert attr(tools["add"], "error.type") == "ToolInputError"  # the model gets it at once: no decision
    assert "agent_kernel.decision" not in (tools["add"].attributes or {})
    assert attr(tools["broken"], "error.type") == "tool_error"
    assert not is_error(invocations(traces)[0])


class RaisesInRunEnd:
    name = "raises-in-run-end"

    @hookimpl(tryfirst=True)
    def agent_run_end(self) -> None:
        raise ValueError("cannot save")


def test_a_raising_run_end_hook_is_blamed_and_the_span_still_ends(run: Any, traces: Traces) -> None:
    agent = build(traces, ScriptedModel([text("hi")]), RaisesInRunEnd())
    outcome = run(agent.run, "go")
    assert outcome.reason == "error" and outcome.error is not None
    assert (outcome.error.plugin, outcome.error.hook) == ("raises-in-run-end", "agent_run_end")
    traces.check()
    [invoke] = invocations(traces)
    # ended before the other RunEnd hook failed: it keeps the reason it was given (README, Limits)
    assert attr(invoke, "agent_kernel.outcome.reason") == "completed"


class ExplodingRedactor:
    """Makes the kernel fail while committing the invocation's first entry, before RunStart."""

    name = "exploding-redactor"

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.add_redactor(self.redact)

    def redact(self, value: Any) -> Any:
        if isinstance(value, Started):
            raise OSError("redactor unavailable")
        return value


def test_an_invocation_that_fails_before_run_start_still_gets_its_span(run: Any, traces: Traces) -> None:
    agent = build(traces, ScriptedModel([text("hi")]), ExplodingRedactor())
    outcome = run(agent.run, "go")
    assert outcome.reason == "error" and outcome.error is not None and outcome.error.type == "OSError"
    traces.check()
    [invoke] = invocations(traces)
    assert is_error(invoke) and attr(invoke, "error.type") == "OSError"
    assert traces.children(invoke) == []


class StopAfterFirstStep:
    name = "stop-after-first-step"

    @hookimpl
    def agent_step_end(self) -> list[patches.Patch]:
        return [patches.Stop("budget.steps", "one step only")]


def test_a_stopped_run_records_its_stop_code(run: Any, traces: Traces) -> None:
    script = [tool_call("add", a=1, b=2), text("never")]
    agent = build(traces, ScriptedModel(script), Toolbox([add]), StopAfterFirstStep())
    outcome = run(agent.run, "go")
    assert outcome.reason == "stopped"
    traces.check()
    [invoke] = invocations(traces)
    assert attr(invoke, "agent_kernel.outcome.reason") == "stopped"
    assert attr(invoke, "agent_kernel.stop.code") == "budget.steps"
    assert not is_error(invoke) and "error.type" not in (invoke.attributes or {})
    assert shape(traces, invoke) == ["chat scripted", "execute_tool add"]


# ----------------------------------------------------------------------------- cancellation


def test_a_cancelled_run_and_its_resume(run: Any, traces: Traces) -> None:
    started: dict[str, Any] = {}

    async def wait_forever() -> str:
        """Never returns."""
        started["event"].set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    agent = build(traces, ScriptedModel([tool_call("wait_forever"), text("gave up")]), Toolbox([wait_forever]))

    async def main() -> Any:
        started["event"] = anyio.Event()
        with traces.tracer.start_as_current_span("caller") as caller:
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(agent.run, "go", run_id="c1"))
                await started["event"].wait()
                tg.cancel_scope.cancel()
            assert trace.get_current_span() is caller
        return await agent.resume("c1")  # not idempotent: the model hears the outcome is unknown

    outcome = run(main)
    assert outcome.reason == "completed" and outcome.output == "gave up"
    traces.check()
    cancelled, resumed = invocations(traces)
    assert attr(cancelled, "agent_kernel.outcome.reason") == "cancelled"
    assert is_error(cancelled) and attr(cancelled, "error.type") == "cancelled"
    assert shape(traces, cancelled) == ["chat scripted", "execute_tool wait_forever"]
    [_, tool] = traces.children(cancelled)
    assert is_error(tool) and attr(tool, "error.type") == "cancelled"

    assert (attr(resumed, "agent_kernel.run.resumed"), attr(resumed, "agent_kernel.run.attempt")) == (True, 2)
    assert [link.context for link in resumed.links] == [cancelled.context]
    assert shape(traces, resumed) == ["execute_tool wait_forever", "chat scripted"]
    check_usage(traces, cancelled)
    check_usage(traces, resumed)
    [unknown, _] = traces.children(resumed)
    assert attr(unknown, "agent_kernel.tool.executed") is False
    assert is_error(unknown) and attr(unknown, "error.type") == "tool_error"
    assert not is_error(resumed)


def test_a_run_cancelled_while_parallel_calls_run(run: Any, traces: Traces) -> None:
    state: dict[str, Any] = {}

    async def quick() -> str:
        """Returns at once."""
        state["quick done"].set()
        return "quick"

    async def slow() -> str:
        """Never returns."""
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    script = [[tool_call("quick"), tool_call("slow")], text("never")]
    agent = build(traces, ScriptedModel(script), Toolbox([quick, slow], parallel=True))

    async def main() -> None:
        state["quick done"] = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run, "go")
            await state["quick done"].wait()  # quick has returned: its result waits for slow's
            tg.cancel_scope.cancel()

    run(main)
    traces.check()  # the finished call's span ends with the run, not never
    [invoke] = invocations(traces)
    assert attr(invoke, "agent_kernel.outcome.reason") == "cancelled"
    tools = {attr(s, "gen_ai.tool.name"): s for s in traces.operation("execute_tool")}
    assert not is_error(tools["quick"])  # it succeeded; only its after_tool_execute never came
    assert is_error(tools["slow"]) and attr(tools["slow"], "error.type") == "cancelled"


def test_a_timed_out_run(run: Any, traces: Traces) -> None:
    async def wait_forever() -> str:
        """Never returns."""
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    agent = build(traces, ScriptedModel([tool_call("wait_forever"), text("never")]), Toolbox([wait_forever]))
    outcome = run(partial(agent.run, "go", timeout=0.05))
    assert outcome.reason == "cancelled" and outcome.error is not None
    traces.check()
    [invoke] = invocations(traces)
    assert is_error(invoke) and attr(invoke, "error.type") == "TimeoutError"
    assert invoke.status.description == outcome.error.message
    [_, tool] = traces.children(invoke)
    assert is_error(tool) and attr(tool, "error.type") == "cancelled"


# ----------------------------------------------------------------------------- suspension


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_a_suspended_run_and_its_resume(run: Any, traces: Traces, decision: str) -> None:
    model = ScriptedModel([tool_call("add", a=2, b=3), text("done")])
    agent = build(traces, model, Toolbox([add]), Approval(require_approval("add")))

    async def main() -> Any:
        first = await agent.run("2+3?", run_id="s1")
        assert first.reason == "suspended"
        [request] = first.pending
        answer = Approve() if decision == "approve" else Deny("not now")
        return await agent.resume("s1", decisions={request.id: answer})

    assert run(main).reason == "completed"
    traces.check()
    suspended, resumed = invocations(traces)
    assert attr(suspended, "agent_kernel.outcome.reason") == "suspended"
    assert attr(suspended, "agent_kernel.outcome.pending") == 1
    assert not is_error(suspended)
    assert shape(traces, suspended) == ["chat scripted"]  # the tool did not run

    assert (attr(resumed, "agent_kernel.run.resumed"), attr(resumed, "agent_kernel.run.attempt")) == (True, 2)
    assert [link.context for link in resumed.links] == [suspended.context]
    assert shape(traces, resumed) == ["execute_tool add", "chat scripted"]
    check_usage(traces, suspended)
    check_usage(traces, resumed)
    assert attr(resumed, "gen_ai.usage.output_tokens") > 0
    [tool, _] = traces.children(resumed)
    if decision == "approve":
        assert "agent_kernel.tool.executed" not in (tool.attributes or {}) and not is_error(tool)
    else:
        assert attr(tool, "agent_kernel.tool.executed") is False
        assert is_error(tool) and attr(tool, "error.type") == "tool_error"


class Answers:
    """Blocks `add`, answers `mul` from a cache."""

    name = "answers"

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        if call.name == "add":
            return [patches.Block("no adding today")]
        if call.name == "mul":
            return [patches.ProvideResult("6 (cached)")]
        return None


def test_calls_answered_without_running_get_a_span(run: Any, traces: Traces) -> None:
    def mul(a: int, b: int) -> int:
        """Multiply."""
        raise AssertionError("answered from the cache, never run")

    script = [[tool_call("add", a=1, b=2), tool_call("mul", a=2, b=3), tool_call("nope")], text("ok")]
    agent = build(traces, ScriptedModel(script), Toolbox([add, mul]), Answers())
    assert run(agent.run, "go").reason == "completed"
    traces.check()
    tools = {attr(s, "gen_ai.tool.name"): s for s in traces.operation("execute_tool")}
    assert sorted(tools) == ["add", "mul", "nope"]
    assert all(attr(s, "agent_kernel.tool.executed") is False for s in tools.values())
    assert is_error(tools["add"]) and is_error(tools["nope"]) and not is_error(tools["mul"])


# ----------------------------------------------------------------------------- retries


def test_inference_retries_are_one_span_per_attempt(run: Any, traces: Traces) -> None:
    model = ScriptedModel([fault("busy", times=2), text("ok")])
    agent = build(traces, model, RetryPlugin(3, base_delay=0.0, jitter="none"))
    outcome = run(agent.run, "go")
    assert outcome.reason == "completed" and outcome.stats.retries == 2
    traces.check()
    [invoke] = invocations(traces)
    chats = traces.children(invoke)
    assert [attr(c, "agent_kernel.attempt") for c in chats] == [1, 2, 3]
    assert [attr(c, "agent_kernel.step") for c in chats] == [1, 1, 1]
    assert [is_error(c) for c in chats] == [True, True, False]
    for failed in chats[:2]:
        assert attr(failed, "error.type") == "InferenceError"
        assert (attr(failed, "agent_kernel.decision"), attr(failed, "agent_kernel.retry.delay")) == ("retry", 0.0)
    assert "agent_kernel.decision" not in (chats[2].attributes or {})
    assert attr(invoke, "agent_kernel.retries") == 2


def test_a_fallback_is_visible_on_the_failed_attempt(run: Any, traces: Traces) -> None:
    backup = ScriptedModel([text("from the backup")], model="backup")
    backup.name = "backup-model"
    agent = build(traces, ScriptedModel([fault("down"), text("never")]), backup, RetryPlugin(1, fallback=["backup"]))
    outcome = run(agent.run, "go")
    assert outcome.output == "from the backup"
    traces.check()
    failed, answered = traces.operation("chat")
    assert (failed.name, answered.name) == ("chat scripted", "chat backup")
    assert attr(failed, "agent_kernel.decision") == "fallback"
    assert attr(failed, "agent_kernel.fallback.model") == "backup"
    assert is_error(failed) and not is_error(answered)
    assert attr(answered, "agent_kernel.attempt") == 2
    assert attr(invocations(traces)[0], "agent_kernel.retries") == 1


class HangsOnce:
    """Model ``hangs``: the first request never answers, the next ones do."""

    name = "hangs-once"

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def agent_register_models(self, models: Any) -> None:
        models.add("hangs", self)

    async def infer(self, request: Request, deltas: Any) -> Response:
        self.calls += 1
        if self.calls == 1:
            await anyio.sleep_forever()
        return Response(Message("assistant", "at last"), model="hangs")


class Deadline:
    """An outer wrap manager: each inference attempt gets 50 ms, then fails with TimeoutError."""

    name = "deadline"

    @hookimpl
    def agent_wrap_inference(self) -> Any:
        @asynccontextmanager
        async def deadline() -> AsyncIterator[None]:
            with anyio.fail_after(0.05):
                yield

        return deadline()

    @hookimpl
    def agent_on_inference_error(self, error: Exception, attempt: int) -> Retry | None:
        return Retry(0.0) if isinstance(error, TimeoutError) and attempt == 1 else None


def test_an_attempt_cut_short_by_an_outer_deadline(run: Any, traces: Traces) -> None:
    agent = build(traces, HangsOnce(), Deadline(), model="hangs")
    outcome = run(agent.run, "go")
    assert outcome.output == "at last"
    traces.check()
    cut, answered = traces.operation("chat")
    assert is_error(cut) and attr(cut, "error.type") == "TimeoutError"  # what the kernel decided on
    assert attr(cut, "agent_kernel.decision") == "retry"
    assert not is_error(answered) and attr(answered, "agent_kernel.attempt") == 2


class RetryToolOnce:
    name = "retry-tool-once"

    @hookimpl
    def agent_on_tool_error(self, attempt: int) -> Retry | None:
        return Retry(0.0) if attempt == 1 else None


def test_tool_retries_are_one_span_per_attempt(run: Any, traces: Traces) -> None:
    calls: list[int] = []

    def flaky() -> str:
        """Fails the first time."""
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("try again")
        return "fine"

    agent = build(traces, ScriptedModel([tool_call("flaky"), text("ok")]), Toolbox([flaky]), RetryToolOnce())
    assert run(agent.run, "go").reason == "completed"
    traces.check()
    spans = traces.operation("execute_tool")
    assert [attr(s, "agent_kernel.attempt") for s in spans] == [1, 2]
    assert [attr(s, "gen_ai.tool.call.id") for s in spans] == ["call_1_1", "call_1_1"]
    assert is_error(spans[0]) and attr(spans[0], "error.type") == "ConnectionError"
    assert attr(spans[0], "agent_kernel.decision") == "retry"
    assert not is_error(spans[1])
    assert attr(invocations(traces)[0], "agent_kernel.retries") == 1


# ----------------------------------------------------------------------------- content


SECRET = "sk-abcdefghijklmnopqrstuvwx"


def test_content_is_recorded_on_request_and_after_redaction(run: Any, traces: Traces) -> None:
    def echo(text: str) -> str:
        """Echo the text."""
        return f"echo: {text}"

    model = ScriptedModel([tool_call("echo", text=f"key {SECRET}"), text(f"your key is {SECRET}")])
    agent = build(traces, model, Toolbox([echo]), Guardrails(), record_content=True)
    outcome = run(agent.run, f"my key is {SECRET}")
    assert outcome.reason == "completed"
    traces.check()
    for span in traces.spans:
        for value in (span.attributes or {}).values():
            assert SECRET not in str(value), span.name
    _, second = traces.operation("chat")
    messages = json.loads(attr(second, "gen_ai.input.messages"))
    assert messages == [
        {"role": "user", "parts": [{"type": "text", "content": "my key is [REDACTED:openai_key]"}]},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1_1",
                    "name": "echo",
                    "arguments": {"text": "key [REDACTED:openai_key]"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1_1", "response": "echo: key [REDACTED:openai_key]"}],
        },
    ]
    assert json.loads(attr(second, "gen_ai.output.messages")) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "your key is [REDACTED:openai_key]"}],
            "finish_reason": "stop",
        }
    ]
    [tool] = traces.operation("execute_tool")
    assert json.loads(attr(tool, "gen_ai.tool.call.arguments")) == {"text": "key [REDACTED:openai_key]"}
    assert attr(tool, "gen_ai.tool.call.result") == "echo: key [REDACTED:openai_key]"


def test_the_content_switch_follows_the_opentelemetry_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = NoOpTracerProvider()
    monkeypatch.delenv(CONTENT_ENV, raising=False)
    assert Telemetry(tracer_provider=provider).record_content is False
    for value, expected in (("true", True), ("SPAN_ONLY", True), ("span_and_event", True), ("false", False)):
        monkeypatch.setenv(CONTENT_ENV, value)
        assert Telemetry(tracer_provider=provider).record_content is expected, value
    monkeypatch.setenv(CONTENT_ENV, "true")
    assert Telemetry(tracer_provider=provider, record_content=False).record_content is False


# ----------------------------------------------------------------------------- metrics


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


@pytest.mark.parametrize("tracing", [True, False], ids=["with-tracing", "metrics-only"])
def test_genai_client_metrics(run: Any, traces: Traces, tracing: bool) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(tracer_provider=traces.provider if tracing else NoOpTracerProvider(), meter_provider=meters)
    model = ScriptedModel([fault("busy"), tool_call("add", a=1, b=2), text("3")], model="acme:m1")
    agent = Agent(
        model="acme:m1", plugins=[model, Toolbox([add]), RetryPlugin(2, base_delay=0.0), telemetry], autoload=False
    )
    outcome = run(agent.run, "go")
    assert outcome.reason == "completed"
    points = _points(reader)
    base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "acme", "gen_ai.request.model": "m1"}
    durations = {tuple(sorted(p.attributes.items())): p.count for p in points["gen_ai.client.operation.duration"]}
    assert durations == {
        tuple(sorted({**base, "error.type": "InferenceError"}.items())): 1,
        tuple(sorted({**base, "gen_ai.response.model": "acme:m1"}.items())): 2,
    }
    tokens = {p.attributes["gen_ai.token.type"]: p for p in points["gen_ai.client.token.usage"]}
    assert (tokens["input"].count, tokens["input"].sum) == (2, outcome.usage.input_tokens)
    assert (tokens["output"].count, tokens["output"].sum) == (2, outcome.usage.output_tokens)
    assert dict(tokens["input"].attributes) == {
        **base,
        "gen_ai.response.model": "acme:m1",
        "gen_ai.token.type": "input",
    }
    if tracing:
        traces.check()
        assert len(traces.operation("chat")) == 3
    else:
        assert traces.spans == []


# ----------------------------------------------------------------------------- no-op provider


class Peek:
    """Keeps the context and request of the inference and the call of the tool phase."""

    name = "peek"

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    @hookimpl
    def agent_before_inference(self, ctx: Context, request: Request) -> None:
        self.seen["inference"] = (ctx, request)

    @hookimpl
    def agent_before_tool_execute(self, ctx: Context, call: ToolCall) -> None:
        self.seen["tool"] = (ctx, call)


def test_with_a_no_op_provider_every_hook_returns_at_once(run: Any) -> None:
    telemetry = Telemetry(tracer_provider=NoOpTracerProvider())
    peek = Peek()
    during: list[Any] = []

    def look() -> str:
        """Look at the plugin while the run is live."""
        ctx, request = peek.seen["inference"]
        during.append(telemetry.agent_wrap_inference(ctx, request))
        during.append(telemetry.agent_wrap_tool_call(*peek.seen["tool"]))
        during.append(telemetry.agent_wrap_run(ctx))
        during.append(dict(telemetry._live))
        return "seen"

    agent = Agent(
        model="scripted",
        plugins=[ScriptedModel([tool_call("look"), text("ok")]), Toolbox([look]), peek, telemetry],
        autoload=False,
    )
    assert run(agent.run, "go").reason == "completed"
    assert during == [None, None, None, {}]  # no manager: the kernel keeps its no-wrapper path
    assert telemetry._live == {} and telemetry._untraced == set()


# ----------------------------------------------------------------------------- packaging and configuration


def test_the_entry_point_is_a_module_with_no_behaviour() -> None:
    [entry] = [ep for ep in importlib_metadata.entry_points(group="agent_kernel.plugins") if ep.name == "otel"]
    assert entry.value == "agent_plugin_otel.plugin" and entry.dist is not None
    assert entry.dist.name == "agent-plugin-otel"
    assert [name for name in dir(entry.load()) if name.startswith("agent_")] == []


def test_agent_kernel_plugins_lists_it() -> None:
    env = {**os.environ, "AGENT_KERNEL_PLUGINS": "otel"}
    env.pop("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", None)
    done = subprocess.run(
        [sys.executable, "-m", "agent_kernel", "plugins"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"name": "otel", "distribution": "agent-plugin-otel", "version": "0.1.0", "hooks": []}
    ]


def test_an_explicit_instance_replaces_the_entry_point(monkeypatch: pytest.MonkeyPatch, traces: Traces) -> None:
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "otel")
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("hi")]), traces.plugin()])
    info = agent.plugins["otel"]
    assert info.distribution is None and "agent_run_start" in info.hooks


def test_agent_toml_configures_it(tmp_path: Any) -> None:
    found = find_settings("otel")
    assert found == (Settings, "agent-plugin-otel")
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\nmodel = "scripted"\n\n[plugins.otel]\nrecord_content = true\nagent_name = "helper"\n')
    config = load_config(path, user=False, env={})
    [plugin] = config.plugin_objects()
    assert isinstance(plugin, Telemetry)
    assert (plugin.name, plugin.record_content, plugin.agent_name, plugin._metrics) == ("otel", True, "helper", False)
    path.write_text("[plugins.otel]\nmetrics = true\n")
    [plugin] = load_config(path, user=False, env={}).plugin_objects()
    assert isinstance(plugin, Telemetry) and plugin._metrics and plugin.record_content is False
    path.write_text('[plugins.otel]\nrecord_content = "yes"\nsample = 1\n')
    with pytest.raises(ConfigError) as failed:
        load_config(path, user=False, env={})
    assert 'plugins.otel.record_content: expected true or false, got "yes"' in str(failed.value)
    assert "plugins.otel.sample: unknown key" in str(failed.value)


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="name"):
        Telemetry(name="")
    with pytest.raises(ValueError, match="agent_name"):
        Telemetry(agent_name="")
