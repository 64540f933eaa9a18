"""Retry inside real agent runs: one test per rule, on trio's autojump MockClock."""

from __future__ import annotations

import logging
import random
from typing import Any

import importlib_metadata
import pytest
import trio
from retry_testkit import Events, FlakyModel, assert_grammar, bad_request, run, unavailable

from agent_kernel import Agent, Context, Fail, Fallback, Log, Request, RunState, hookimpl
from agent_kernel import Retry as RetryDecision
from agent_kernel import events as ev
from agent_kernel.errors import InferenceError
from agent_kernel.testing import RunRecorder, ScriptedModel, fault, text, tool_call
from agent_plugin_retry import Backoff, Retry, is_retryable
from agent_plugin_tools import Toolbox, tool

# ----------------------------------------------------------------------------- inference


async def test_retryable_errors_are_retried_with_exponential_backoff(autojump_clock: trio.testing.MockClock) -> None:
    model = ScriptedModel([fault("503", times=2), text("ok")])
    events, recorder = Events(), RunRecorder()
    outcome, elapsed = await run("scripted", [model, Retry(3, base_delay=1.0, jitter="none"), events, recorder])
    assert (outcome.reason, outcome.output) == ("completed", "ok")
    assert len(model.requests) == 3
    assert outcome.stats.retries == 2
    assert events.delays() == [1.0, 2.0]
    assert [(e.what, e.attempt) for e in events.retries()] == [("inference", 1), ("inference", 2)]
    assert elapsed == pytest.approx(3.0)  # the kernel slept exactly the decided delays
    assert_grammar(recorder)


async def test_attempts_never_exceed_max_attempts(autojump_clock: trio.testing.MockClock) -> None:
    model = ScriptedModel([fault("503", times=10), text("never")])
    events, recorder = Events(), RunRecorder()
    outcome, _ = await run("scripted", [model, Retry(3, base_delay=0.1), events, recorder])
    assert outcome.reason == "error"
    assert "503" in outcome.error.message
    assert len(model.requests) == 3  # 3 tries in all, the first included
    assert outcome.stats.retries == 2 == len(events.retries())
    assert_grammar(recorder)


async def test_max_attempts_one_never_retries(autojump_clock: trio.testing.MockClock) -> None:
    model = ScriptedModel([fault("503"), text("never")])
    outcome, _ = await run("scripted", [model, Retry(1)])
    assert (outcome.reason, len(model.requests), outcome.stats.retries) == ("error", 1, 0)


async def test_a_non_retryable_error_is_never_retried_nor_sent_to_a_fallback(
    autojump_clock: trio.testing.MockClock,
) -> None:
    primary, backup = FlakyModel("primary", [bad_request()]), FlakyModel("backup")
    events = Events()
    outcome, elapsed = await run("primary", [primary, backup, Retry(5, fallback=["backup"]), events])
    assert outcome.reason == "error" and "400" in outcome.error.message
    assert (len(primary.requests), len(backup.requests)) == (1, 0)
    assert outcome.stats.retries == 0 and events.retries() == [] and elapsed == 0


async def test_each_delay_is_capped_by_max_delay(autojump_clock: trio.testing.MockClock) -> None:
    model = ScriptedModel([fault("503", times=5), text("ok")])
    events = Events()
    retry = Retry(6, base_delay=1.0, max_delay=3.0, jitter="none")
    outcome, elapsed = await run("scripted", [model, retry, events])
    assert outcome.reason == "completed"
    assert events.delays() == [1.0, 2.0, 3.0, 3.0, 3.0]
    assert elapsed == pytest.approx(12.0)


async def test_full_jitter_draws_each_delay_uniformly_below_the_cap(autojump_clock: trio.testing.MockClock) -> None:
    model = ScriptedModel([fault("503", times=4), text("ok")])
    events = Events()
    retry = Retry(5, base_delay=1.0, max_delay=5.0, rng=random.Random(7))
    outcome, elapsed = await run("scripted", [model, retry, events])
    assert outcome.reason == "completed"
    same = random.Random(7)
    expected = [same.uniform(0.0, cap) for cap in (1.0, 2.0, 4.0, 5.0)]
    assert events.delays() == pytest.approx(expected)
    assert elapsed == pytest.approx(sum(expected))
    assert all(0.0 <= d <= cap for d, cap in zip(events.delays(), (1.0, 2.0, 4.0, 5.0), strict=True))


def test_equal_jitter_and_backoff_caps() -> None:
    rng = random.Random(1)
    backoff = Backoff(10, base_delay=2.0, max_delay=10.0, jitter="equal")
    assert [backoff.cap(n) for n in (1, 2, 3, 4, 50, 5000)] == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    for n in range(1, 8):
        cap = backoff.cap(n)
        assert cap / 2 <= backoff.delay(n, rng) <= cap


async def test_the_total_window_bounds_the_sum_of_delays(autojump_clock: trio.testing.MockClock) -> None:
    model = ScriptedModel([fault("503", times=10), text("never")])
    events = Events()
    retry = Retry(10, base_delay=4.0, max_delay=4.0, max_total=10.0, jitter="none")
    outcome, elapsed = await run("scripted", [model, retry, events])
    assert outcome.reason == "error"
    assert events.delays() == [4.0, 4.0]  # a third 4 s delay would make 12 s > 10 s
    assert len(model.requests) == 3 and elapsed == pytest.approx(8.0)


# ----------------------------------------------------------------------------- retry_after


class RetryAtOnce:
    """A bare decision plugin: Retry(delay=0) once, whatever the error says."""

    name = "retry-at-once"

    @hookimpl
    def agent_on_inference_error(self, attempt: int) -> RetryDecision | Fail:
        return RetryDecision(0.0) if attempt == 1 else Fail()


async def test_the_kernel_waits_at_least_retry_after_whatever_the_decision(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Verifies the kernel contract Retry relies on: it sleeps max(decision delay, retry_after)."""
    model = FlakyModel("m", unavailable(1, retry_after=7.0))
    events = Events()
    outcome, elapsed = await run("m", [model, RetryAtOnce(), events])
    assert outcome.reason == "completed"
    assert elapsed == pytest.approx(7.0)
    assert events.delays() == [7.0]  # the event reports the delay actually waited


async def test_retry_after_raises_the_decided_delay(autojump_clock: trio.testing.MockClock) -> None:
    model = FlakyModel("m", [*unavailable(1, retry_after=5.0), *unavailable(1)])
    events = Events()
    outcome, elapsed = await run("m", [model, Retry(3, base_delay=1.0, jitter="none"), events])
    assert outcome.reason == "completed"
    assert events.delays() == [5.0, 2.0]  # max(1, retry_after=5), then the plain backoff
    assert elapsed == pytest.approx(7.0)


async def test_retry_after_beyond_max_delay_gives_up_on_that_model(autojump_clock: trio.testing.MockClock) -> None:
    primary, backup = FlakyModel("primary", unavailable(1, retry_after=60.0)), FlakyModel("backup")
    events = Events()
    retry = Retry(5, max_delay=30.0, fallback=["backup"])
    outcome, elapsed = await run("primary", [primary, backup, retry, events])
    assert (outcome.reason, outcome.output) == ("completed", "answer from backup")
    assert (len(primary.requests), len(backup.requests)) == (1, 1)
    assert elapsed == 0 and events.delays() == [0.0]  # the fallback is immediate


# ----------------------------------------------------------------------------- fallback


async def test_the_fallback_chain_is_tried_in_order_each_with_its_own_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a = FlakyModel("a", unavailable(100))
    b = FlakyModel("b", unavailable(100))
    c = FlakyModel("c", unavailable(1))
    order: list[str] = []
    for flaky in (a, b, c):
        flaky.requests = _Spy(order, flaky.model)
    events = Events()
    retry = Retry(3, base_delay=0.5, fallback=["b", "c"], fallback_attempts=2)
    outcome, _ = await run("a", [a, b, c, retry, events])
    assert (outcome.reason, outcome.output) == ("completed", "answer from c")
    assert order == ["a", "a", "a", "b", "b", "c", "c"]
    assert outcome.stats.retries == 6 == len(events.retries())
    assert outcome.usage.requests == 1


async def test_fallback_lasts_one_request_the_next_step_asks_the_run_model_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    primary = ScriptedModel([fault("503", times=1), text("never sent"), text("done")], model="primary")
    backup = ScriptedModel([tool_call("echo", word="y"), text("backup done")], model="backup")
    backup.name = "scripted-backup"

    async def echo(word: str) -> str:
        return word

    outcome, _ = await run("primary", [primary, backup, Toolbox([echo]), Retry(1, fallback=["backup"])])
    assert outcome.reason == "completed"
    assert [len(primary.requests), len(backup.requests)] == [2, 1]
    assert outcome.output == "done"  # step 2 was answered by the run's own model


async def test_fallback_exhausted_fails_with_the_last_error(autojump_clock: trio.testing.MockClock) -> None:
    a, b = FlakyModel("a", unavailable(9)), FlakyModel("b", [InferenceError("b is down", retryable=True)] * 9)
    outcome, _ = await run("a", [a, b, Retry(2, fallback=["b"])])
    assert outcome.reason == "error" and "b is down" in outcome.error.message
    assert (len(a.requests), len(b.requests)) == (2, 2)


class JumpTo:
    """Another decision plugin: sends the first failure of each request straight to `model`."""

    name = "jump"

    def __init__(self, model: str) -> None:
        self.model = model

    @hookimpl
    def agent_on_inference_error(self, attempt: int) -> Fallback | None:
        return Fallback(self.model) if attempt == 1 else None


async def test_the_chain_continues_after_a_model_another_plugin_chose(autojump_clock: trio.testing.MockClock) -> None:
    a, b, c = FlakyModel("a", unavailable(9)), FlakyModel("b", unavailable(9)), FlakyModel("c", unavailable(9))
    order: list[str] = []
    for flaky in (a, b, c):
        flaky.requests = _Spy(order, flaky.model)
    retry = Retry(2, fallback=["b", "c"], fallback_attempts=2)
    outcome, _ = await run("a", [a, b, c, retry, JumpTo("c")])  # JumpTo is registered last: it decides first
    assert outcome.reason == "error"
    assert order == ["a", "c", "c"]  # c is the chain's last model: b is not tried after it


def test_attempt_one_starts_a_fresh_budget() -> None:
    """The kernel's `attempt` restarts at 1 for each request: so does the budget."""
    retry = Retry(2, base_delay=0.0)
    ctx = Context("run", RunState("run", "m", Log()), 1, False, 1, "before_inference", {})
    request, error = Request("m", ()), InferenceError("503", retryable=True)
    for _ in range(3):
        assert isinstance(retry.agent_on_inference_error(ctx, request, error, 1), RetryDecision)
        assert isinstance(retry.agent_on_inference_error(ctx, request, error, 2), Fail)


class _Spy(list):
    """A `requests` list that also records the model order into a shared list."""

    def __init__(self, order: list[str], model: str) -> None:
        super().__init__()
        self.order, self.model = order, model

    def append(self, item: object) -> None:
        self.order.append(self.model)
        super().append(item)


# ----------------------------------------------------------------------------- tools


class Flaky:
    """Tool bodies that raise `error` the first `times` calls; `calls` counts every call."""

    def __init__(self, times: int, error: type[Exception] = ConnectionError) -> None:
        self.times, self.error, self.calls = times, error, 0

    def hit(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error(f"failure {self.calls}")
        return "fine"


def toolbox(flaky: dict[str, Flaky], idempotent: set[str]) -> Toolbox:
    def make(body: Flaky) -> Any:
        async def function() -> str:
            return body.hit()

        return function

    return Toolbox(
        [tool(name=n, description=f"The {n} tool.", idempotent=n in idempotent)(make(b)) for n, b in flaky.items()]
    )


def two_calls_script(*names: str) -> ScriptedModel:
    return ScriptedModel([[tool_call(n) for n in names], text("done")])


async def test_tools_are_not_retried_unless_opted_in(autojump_clock: trio.testing.MockClock) -> None:
    body = Flaky(1)
    outcome, _ = await run("scripted", [two_calls_script("fetch"), toolbox({"fetch": body}, {"fetch"}), Retry(5)])
    assert outcome.reason == "completed"
    assert body.calls == 1 and outcome.stats.retries == 0 and outcome.stats.tool_errors == 1


async def test_idempotent_tools_are_retried_when_opted_in(autojump_clock: trio.testing.MockClock) -> None:
    body = Flaky(2)
    events = Events()
    retry = Retry(3, base_delay=1.0, jitter="none", tools=True)
    outcome, elapsed = await run(
        "scripted", [two_calls_script("fetch"), toolbox({"fetch": body}, {"fetch"}), retry, events]
    )
    assert outcome.reason == "completed"
    assert body.calls == 3 and outcome.stats.tool_errors == 0
    assert [(e.what, e.attempt, e.delay) for e in events.retries()] == [("tool:fetch", 1, 1.0), ("tool:fetch", 2, 2.0)]
    assert outcome.stats.retries == 2 and elapsed == pytest.approx(3.0)
    [result] = [m for m in outcome.state.messages if m.role == "tool"]
    assert (result.content, result.is_error) == ("fine", False)


async def test_a_tool_not_declared_idempotent_is_never_retried(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    body = Flaky(1)
    retry = Retry(5, tools={"charge"}, per_tool={"charge": 5})
    with caplog.at_level(logging.WARNING, logger="agent_plugin_retry"):
        outcome, _ = await run("scripted", [two_calls_script("charge"), toolbox({"charge": body}, set()), retry])
    assert outcome.reason == "completed"
    assert body.calls == 1 and outcome.stats.retries == 0 and outcome.stats.tool_errors == 1
    assert "'charge' is not declared idempotent" in caplog.text


async def test_the_allow_list_picks_which_idempotent_tools_are_retried(autojump_clock: trio.testing.MockClock) -> None:
    a, b = Flaky(1), Flaky(1)
    plugins = [two_calls_script("a", "b"), toolbox({"a": a, "b": b}, {"a", "b"}), Retry(3, tools={"a"})]
    outcome, _ = await run("scripted", plugins)
    assert outcome.reason == "completed"
    assert (a.calls, b.calls) == (2, 1)
    assert outcome.stats.retries == 1 and outcome.stats.tool_errors == 1


async def test_per_tool_budgets(autojump_clock: trio.testing.MockClock) -> None:
    a, b = Flaky(4), Flaky(4)
    retry = Retry(2, tools=True, per_tool={"a": 5, "b": Backoff(3, base_delay=0.0)})
    plugins = [two_calls_script("a", "b"), toolbox({"a": a, "b": b}, {"a", "b"}), retry]
    outcome, _ = await run("scripted", plugins)
    assert outcome.reason == "completed"
    assert (a.calls, b.calls) == (5, 3)  # a succeeded on its 5th try; b gave up after 3
    results = {m.tool_call_id: m for m in outcome.state.messages if m.role == "tool"}
    assert not results["call_1_1"].is_error and results["call_1_2"].is_error


async def test_inference_and_tool_budgets_are_separate(autojump_clock: trio.testing.MockClock) -> None:
    body = Flaky(2)
    model = ScriptedModel([fault("503", times=2), tool_call("fetch"), fault("503", times=2), text("done")])
    events = Events()
    outcome, _ = await run("scripted", [model, toolbox({"fetch": body}, {"fetch"}), Retry(3, tools=True), events])
    assert outcome.reason == "completed"
    assert body.calls == 3 and len(model.requests) == 6
    assert [e.what for e in events.retries()] == ["inference"] * 2 + ["tool:fetch"] * 2 + ["inference"] * 2


async def test_non_retryable_tool_errors_are_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    body = Flaky(1, ValueError)
    outcome, _ = await run("scripted", [two_calls_script("f"), toolbox({"f": body}, {"f"}), Retry(5, tools=True)])
    assert body.calls == 1 and outcome.stats.retries == 0


async def test_a_custom_classifier(autojump_clock: trio.testing.MockClock) -> None:
    body = Flaky(1, KeyError)
    retry = Retry(5, tools=True, classify=lambda error: isinstance(error, KeyError))
    outcome, _ = await run("scripted", [two_calls_script("f"), toolbox({"f": body}, {"f"}), retry])
    assert body.calls == 2 and outcome.stats.retries == 1
    model = ScriptedModel([fault("503"), text("never")])
    outcome, _ = await run("scripted", [model, Retry(5, classify=lambda error: False)])
    assert outcome.reason == "error" and len(model.requests) == 1


def test_default_classification() -> None:
    assert is_retryable(InferenceError("x", retryable=True))
    assert not is_retryable(InferenceError("x", retryable=False))
    assert is_retryable(TimeoutError()) and is_retryable(trio.TooSlowError())
    assert is_retryable(ConnectionResetError()) and is_retryable(BrokenPipeError())
    assert not is_retryable(ValueError()) and not is_retryable(KeyError("k"))

    class ProviderError(Exception):
        retryable = True

    assert is_retryable(ProviderError())


# ----------------------------------------------------------------------------- runs


async def test_budgets_restart_on_resume(autojump_clock: trio.testing.MockClock) -> None:
    model = ScriptedModel([fault("503", times=4), text("ok")])
    agent = Agent(model="scripted", plugins=[model, Retry(3)], autoload=False)
    first = await agent.run("go")
    assert first.reason == "error" and len(model.requests) == 3
    second = await agent.resume(first.run_id)
    assert (second.reason, second.output) == ("completed", "ok")
    assert len(model.requests) == 5
    assert second.stats.retries == 3  # stats count the whole run: 2, then 1


async def test_retry_events_are_streamed(autojump_clock: trio.testing.MockClock) -> None:
    model = ScriptedModel([fault("503", times=1), text("ok")])
    agent = Agent(model="scripted", plugins=[model, Retry(2, base_delay=2.0, jitter="none")], autoload=False)
    async with agent.stream("go") as stream:
        seen = [event async for event in stream]
    [scheduled] = [e for e in seen if isinstance(e, ev.RetryScheduled)]
    assert (scheduled.what, scheduled.attempt, scheduled.delay) == ("inference", 1, 2.0)
    assert "503" in scheduled.error
    assert stream.outcome is not None and stream.outcome.stats.retries == 1


async def test_per_run_memory_is_released_at_run_end(autojump_clock: trio.testing.MockClock) -> None:
    retry = Retry(3)
    outcome, _ = await run("scripted", [ScriptedModel([fault("503"), text("ok")]), retry])
    assert outcome.reason == "completed" and retry._runs == {}


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Retry(0)
    with pytest.raises(ValueError, match="base_delay"):
        Retry(base_delay=-1)
    with pytest.raises(ValueError, match="jitter"):
        Retry(jitter="some")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of model strings"):
        Retry(fallback="openai:gpt-4o-mini")
    with pytest.raises(TypeError, match="collection of tool names"):
        Retry(tools="fetch")
    with pytest.raises(ValueError, match="max_attempts"):
        Retry(per_tool={"fetch": 0})


def test_entry_point_is_a_module_with_no_behaviour() -> None:
    [entry] = [ep for ep in importlib_metadata.entry_points(group="agent_kernel.plugins") if ep.name == "retry"]
    assert entry.value == "agent_plugin_retry.plugin" and entry.dist.name == "agent-plugin-retry"
    module = entry.load()
    assert [name for name in dir(module) if name.startswith("agent_")] == []
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("hi")])])
    assert agent.plugins["retry"].hooks == ()
    assert agent.plugins["retry"].distribution == "agent-plugin-retry"


async def test_with_autoload_an_explicit_instance_replaces_the_entry_point(
    autojump_clock: trio.testing.MockClock,
) -> None:
    model = ScriptedModel([fault("503"), text("ok")])
    agent = Agent(model="scripted", plugins=[model, Retry(2)])
    assert agent.plugins["retry"].distribution is None  # the instance, not the installed module
    outcome = await agent.run("go")
    assert (outcome.reason, outcome.stats.retries, len(model.requests)) == ("completed", 1, 2)
