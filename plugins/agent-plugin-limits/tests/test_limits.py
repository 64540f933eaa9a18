"""Limits inside real agent runs: one test per rule, each counting the calls actually made."""

from __future__ import annotations

import itertools
import re

import importlib_metadata
import pytest
import trio
from limits_testkit import Metered, answer, run, tool_results

from agent_kernel import Agent, Approve, RuntimeRegistrar, hookimpl, patches
from agent_kernel.errors import ConfigurationError
from agent_kernel.testing import CodecJournal, RunRecorder, ScriptedModel, check_phase_grammar, text, tool_call
from agent_plugin_limits import CODES, Limits, estimate_tokens

LOOP = [[tool_call("search", q="a"), tool_call("add", a=1, b=2)]]  # a model that never stops calling tools


# ----------------------------------------------------------------------------- steps and requests


async def test_max_steps_stops_after_that_many_steps() -> None:
    outcome, model, counter, recorder = await run(LOOP, Limits(max_steps=3))
    assert (outcome.reason, outcome.stop.code) == ("stopped", "limit.steps")
    assert "max_steps=3" in outcome.stop.detail
    assert outcome.stats.steps == 3 and len(model.requests) == 3 and counter.count() == 6
    assert recorder.phases.count("step_start") == 3  # no fourth, empty step was begun


async def test_a_run_finishing_within_max_steps_completes() -> None:
    script = [tool_call("search", q="x"), tool_call("search", q="y"), text("done")]
    outcome, model, _, _ = await run(script, Limits(max_steps=3))
    assert (outcome.reason, outcome.output, outcome.stop) == ("completed", "done", None)
    assert len(model.requests) == 3


async def test_max_steps_zero_runs_no_step() -> None:
    outcome, model, _, recorder = await run(LOOP, Limits(max_steps=0))
    assert (outcome.reason, outcome.stop.code) == ("stopped", "limit.steps")
    assert outcome.stats.steps == 0 and model.requests == [] and recorder.phases == ["run_start", "run_end"]


async def test_max_requests_stops_before_the_request_that_would_exceed() -> None:
    outcome, model, counter, recorder = await run(LOOP, Limits(max_requests=2))
    assert (outcome.reason, outcome.stop.code) == ("stopped", "limit.requests")
    assert len(model.requests) == 2 and outcome.stats.llm_calls == 2 and counter.count() == 4
    assert recorder.phases.count("step_start") == 2


async def test_max_requests_is_checked_before_inference_too() -> None:
    """A step that starts with the requests used up (resumed with a lower budget) sends nothing."""
    outcome, model, _, _ = await run(LOOP, Limits(max_requests=0))
    assert (outcome.stop.code, len(model.requests)) == ("limit.requests", 0)

    class StepAgain:
        """Starts each step with requests used up by a SetData, as a resume with old counters would."""

        name = "exhaust"

        def __init__(self, limits: Limits) -> None:
            self.limits = limits

        @hookimpl
        def agent_step_start(self, ctx):  # type: ignore[no-untyped-def]
            return [patches.SetData(self.limits.REQUESTS, 5)]

    limits = Limits(max_requests=5)
    outcome, model, _, recorder = await run(LOOP, limits, StepAgain(limits))
    assert (outcome.stop.code, len(model.requests)) == ("limit.requests", 0)
    assert recorder.phases == ["run_start", "step_start", "before_inference", "step_end", "run_end"]


# ----------------------------------------------------------------------------- tool calls


@pytest.mark.parametrize("parallel", [False, True])
async def test_max_tool_calls_never_runs_a_call_beyond_the_budget(parallel: bool) -> None:
    outcome, model, counter, _ = await run(LOOP, Limits(max_tool_calls=3), parallel=parallel)
    assert (outcome.reason, outcome.stop.code) == ("stopped", "limit.tool_calls")
    assert counter.count() == 3 and outcome.stats.tool_calls == 3
    assert len(model.requests) == 2  # the step that hit the budget was the last
    results = tool_results(outcome)
    assert len(results) == 4  # every call of the conversation has a result
    assert results[-1].is_error and results[-1].content.startswith("Not run: 3 of max_tool_calls=3")
    assert [r.is_error for r in results[:3]] == [False, False, False]


async def test_max_tool_calls_zero_blocks_every_call() -> None:
    outcome, model, counter, _ = await run(LOOP, Limits(max_tool_calls=0))
    assert (outcome.stop.code, counter.count(), len(model.requests)) == ("limit.tool_calls", 0, 1)


async def test_max_calls_per_tool() -> None:
    outcome, _, counter, _ = await run(LOOP, Limits(max_calls_per_tool={"search": 2}))
    assert (outcome.reason, outcome.stop.code) == ("stopped", "limit.calls_per_tool")
    assert "'search'" in outcome.stop.detail
    assert counter.count("search") == 2 and counter.count("add") == 3  # add, in the same steps, still ran


async def test_max_calls_per_tool_counts_calls_within_one_answer() -> None:
    script = [[tool_call("search", q="a"), tool_call("search", q="b"), tool_call("add")], text("never")]
    outcome, _, counter, _ = await run(script, Limits(max_calls_per_tool={"search": 1}))
    assert (outcome.stop.code, counter.count("search"), counter.count("add")) == ("limit.calls_per_tool", 1, 1)


async def test_loop_detection_blocks_the_nth_identical_call() -> None:
    script = [tool_call("search", q="same")]
    outcome, model, counter, _ = await run(script, Limits(loop_detection=3))
    assert (outcome.reason, outcome.stop.code) == ("stopped", "stop.loop")
    assert counter.count() == 2 and len(model.requests) == 3
    assert "3 times in a row" in outcome.stop.detail


async def test_loop_detection_needs_identical_arguments_in_a_row() -> None:
    calls = [("search", "a"), ("search", "a"), ("search", "b"), ("search", "a"), ("search", "a")]
    script = [*(tool_call(name, q=q) for name, q in calls), text("done")]
    outcome, _, counter, _ = await run(script, Limits(loop_detection=3))
    assert outcome.reason == "completed" and counter.count() == 5


async def test_consecutive_tool_errors_stop_at_once() -> None:
    outcome, model, counter, _ = await run([tool_call("fail")], Limits(max_consecutive_tool_errors=2))
    assert (outcome.reason, outcome.stop.code) == ("stopped", "stop.tool_errors")
    assert counter.count("fail") == 2 and len(model.requests) == 2


async def test_a_success_resets_the_consecutive_errors() -> None:
    script = [tool_call("fail"), tool_call("echo"), tool_call("fail"), tool_call("echo"), text("done")]
    outcome, _, _, _ = await run(script, Limits(max_consecutive_tool_errors=2))
    assert outcome.reason == "completed"


async def test_consecutive_errors_of_concurrent_calls_stop_at_step_end() -> None:
    script = [[tool_call("fail"), tool_call("fail"), tool_call("fail")], text("never")]
    outcome, model, counter, _ = await run(script, Limits(max_consecutive_tool_errors=2), parallel=True)
    assert (outcome.reason, outcome.stop.code) == ("stopped", "stop.tool_errors")
    assert counter.count() == 3 and len(model.requests) == 1


async def test_stop_after_tools_ends_the_run_once_the_tool_succeeds() -> None:
    script = [tool_call("search"), tool_call("submit", ok=False), tool_call("submit"), text("never")]
    outcome, model, counter, _ = await run(script, Limits(stop_after_tools=["submit"]))
    assert (outcome.reason, outcome.stop.code) == ("stopped", "stop.after_tool")
    assert counter.count("submit") == 2 and len(model.requests) == 3  # a failed submit did not stop it


async def test_stop_on_content_stops_at_once_and_runs_no_tool_of_that_answer() -> None:
    script = [tool_call("search"), text("So: FINAL ANSWER: 4")]
    outcome, model, _, _ = await run(script, Limits(stop_on_content=r"FINAL\s+ANSWER"))
    assert (outcome.reason, outcome.stop.code, outcome.output) == ("stopped", "stop.content", "So: FINAL ANSWER: 4")
    assert len(model.requests) == 2
    outcome, model, counter, _ = await run(
        [answer("DONE", tool_call("search"))], Limits(stop_on_content=re.compile("DONE"))
    )
    assert (outcome.stop.code, len(model.requests), counter.count()) == ("stop.content", 1, 0)
    outcome, _, _, _ = await run([text("all good")], Limits(stop_on_content="FINAL"))
    assert outcome.reason == "completed"


# ----------------------------------------------------------------------------- tokens and cost


async def test_max_input_tokens_refuses_a_request_that_would_certainly_exceed() -> None:
    # each request reports 100 input tokens; the third would need about 110 more than the 200 used
    outcome, model, _, _ = await run(Metered(LOOP, (100, 10)), Limits(max_input_tokens=250))
    assert (outcome.reason, outcome.stop.code) == ("stopped", "limit.tokens.input")
    assert len(model.requests) == 2 and outcome.usage.input_tokens == 200
    assert "the next request needs about 114 input tokens and 200 of max_input_tokens=250" in outcome.stop.detail


async def test_an_answer_over_the_input_budget_stops_at_once() -> None:
    outcome, model, counter, _ = await run(Metered(LOOP, (400, 10)), Limits(max_input_tokens=250))
    assert (outcome.reason, outcome.stop.code) == ("stopped", "limit.tokens.input")
    assert len(model.requests) == 1 and counter.count() == 0  # its tool calls did not run


async def test_the_first_request_is_refused_when_the_input_alone_is_over() -> None:
    model = Metered(LOOP, (100, 10))
    agent = Agent(model="metered", plugins=[model, Limits(max_input_tokens=10)], autoload=False)
    outcome = await agent.run("x" * 400)  # about 100 tokens
    assert (outcome.reason, outcome.stop.code, len(model.requests)) == ("stopped", "limit.tokens.input", 0)


async def test_max_output_tokens() -> None:
    outcome, model, _, _ = await run(Metered(LOOP, (1, 10)), Limits(max_output_tokens=25))
    assert (outcome.stop.code, len(model.requests), outcome.usage.output_tokens) == ("limit.tokens.output", 3, 30)
    outcome, model, _, _ = await run(Metered(LOOP, (1, 10)), Limits(max_output_tokens=20))
    assert (outcome.stop.code, len(model.requests), outcome.usage.output_tokens) == ("limit.tokens.output", 2, 20)


async def test_max_total_tokens() -> None:
    outcome, model, _, _ = await run(Metered(LOOP, (50, 10)), Limits(max_total_tokens=130))
    assert (outcome.stop.code, len(model.requests)) == ("limit.tokens.total", 2)
    assert outcome.usage.total_tokens == 120


async def test_max_cost_refuses_the_request_that_would_exceed() -> None:
    # 100 in at $1/M + 10 out at $2/M = $0.00012 per response; the third would pass $0.0003
    prices = {"metered": (1.0, 2.0)}
    outcome, model, _, _ = await run(Metered(LOOP, (100, 10)), Limits(max_cost=0.0003, prices=prices))
    assert (outcome.reason, outcome.stop.code) == ("stopped", "limit.cost")
    assert len(model.requests) == 2


async def test_a_spent_cost_budget_stops_at_the_step_end() -> None:
    prices = {"metered": (0.0, 1.0)}  # only output costs: $0.10 per answer of 100k tokens
    outcome, model, _, recorder = await run(Metered(LOOP, (1, 100_000)), Limits(max_cost=0.2, prices=prices))
    assert (outcome.stop.code, len(model.requests)) == ("limit.cost", 2)
    assert recorder.phases.count("step_start") == 2  # no empty third step


async def test_an_answer_over_the_cost_budget_stops_at_once() -> None:
    prices = {"metered": (1.0, 2.0)}
    outcome, model, counter, _ = await run(Metered(LOOP, (1000, 10)), Limits(max_cost=0.0005, prices=prices))
    assert (outcome.stop.code, len(model.requests), counter.count()) == ("limit.cost", 1, 0)


async def test_an_unpriced_model_is_an_error_before_anything_is_spent() -> None:
    outcome, model, _, _ = await run(Metered(LOOP), Limits(max_cost=1.0, prices={"other": (1.0, 1.0)}))
    assert outcome.reason == "error" and model.requests == []
    assert outcome.error.plugin == "limits" and "no price for model 'metered'" in outcome.error.message
    assert outcome.error.hook == "agent_run_start" and outcome.stats.steps == 0


def test_price_lookup() -> None:
    limits = Limits(max_cost=1.0, prices={"openai:gpt-4o": (2.5, 10.0), "openai:gpt-4o-mini": (0.15, 0.6)})
    assert limits.price("openai:gpt-4o") == (2.5, 10.0)
    assert limits.price("gpt-4o-mini-2024-07-18") == (0.15, 0.6)  # the longest key it starts with
    assert limits.price("gpt-4o-2024-08-06") == (2.5, 10.0)
    assert limits.price("", "openai:gpt-4o") == (2.5, 10.0)
    with pytest.raises(ConfigurationError, match="no price for model 'claude'"):
        limits.price("claude")


async def test_cost_uses_the_model_that_answered() -> None:
    prices = {"metered": (1.0, 1.0), "cheap": (0.0, 0.0)}
    model = Metered(LOOP, (1000, 1000), reported_model="cheap")
    limits = Limits(max_steps=8, max_cost=0.01, prices=prices)  # at the run model's price, 5 answers would do
    outcome, _, _, _ = await run(model, limits)
    assert outcome.stop.code == "limit.steps"  # the "cheap" answers cost nothing
    assert outcome.state.get(limits.COST) == 0.0


async def test_context_injected_for_one_request_is_not_counted_again() -> None:
    """The estimate subtracts the previous request's own injected context (it is not re-sent)."""

    class Inject:
        name = "inject"

        @hookimpl
        def agent_step_start(self):  # type: ignore[no-untyped-def]
            return [patches.InjectContext("x" * 2000)]  # 500 tokens, every request

    # each request reports 1000 input tokens; the next needs about 1000 - 500 + 10 + 500 + a few
    outcome, model, _, _ = await run(Metered(LOOP, (1000, 10)), Inject(), Limits(max_input_tokens=2100))
    assert (outcome.stop.code, len(model.requests)) == ("limit.tokens.input", 2)


async def test_a_new_context_window_is_estimated_from_what_the_request_will_carry() -> None:
    class Window:
        """From step 2 on, requests carry only the messages after step 1 (a context-window plugin)."""

        name = "window"

        @hookimpl
        def agent_step_end(self, ctx):  # type: ignore[no-untyped-def]
            return [patches.SetWindow(len(ctx.state.messages))] if ctx.step == 1 else None

    model = Metered(LOOP, "measure")
    limits = Limits(max_steps=4, max_input_tokens=1900)
    agent = Agent(model="metered", plugins=[model, _tools(), Window(), limits], autoload=False)
    outcome = await agent.run("x" * 4000)  # 1000 tokens, sent with the first request only
    assert (outcome.stop.code, len(model.requests)) == ("limit.steps", 4)
    assert outcome.usage.input_tokens <= 1900
    # without the window the second request alone would not fit
    model = Metered(LOOP, "measure")
    agent = Agent(
        model="metered", plugins=[model, _tools(), Limits(max_steps=4, max_input_tokens=1900)], autoload=False
    )
    outcome = await agent.run("x" * 4000)
    assert (outcome.stop.code, len(model.requests)) == ("limit.tokens.input", 1)


async def test_blocked_calls_do_not_count_as_tool_errors() -> None:
    limits = Limits(max_tool_calls=1, max_consecutive_tool_errors=1)
    outcome, _, counter, _ = await run([[tool_call("echo"), tool_call("echo")]], limits)
    assert (outcome.stop.code, counter.count()) == ("limit.tool_calls", 1)


def test_the_estimate_heuristic() -> None:
    assert [estimate_tokens(n) for n in (0, 1, 4, 5, 400)] == [0, 1, 1, 2, 100]
    assert estimate_tokens(10, chars_per_token=2.5) == 4


# ----------------------------------------------------------------------------- time


async def test_max_duration_stops_at_the_step_end_when_time_is_up(autojump_clock: trio.testing.MockClock) -> None:
    started = trio.current_time()
    outcome, model, counter, _ = await run([tool_call("search")], Limits(max_duration=25), sleep=10.0)
    assert (outcome.reason, outcome.stop.code) == ("stopped", "limit.duration")
    assert len(model.requests) == 3 and counter.count() == 3
    assert trio.current_time() - started == pytest.approx(30.0)


async def test_tool_calls_are_not_started_once_time_is_up(autojump_clock: trio.testing.MockClock) -> None:
    slow = Metered([[tool_call("search"), tool_call("add")]], latency=20.0)
    outcome, model, counter, _ = await run(slow, Limits(max_duration=10))
    assert (outcome.reason, outcome.stop.code) == ("stopped", "limit.duration")
    assert len(model.requests) == 1 and counter.count() == 0
    assert all(r.is_error and r.content.startswith("Not run") for r in tool_results(outcome))


class SuspendFirst:
    """Suspends the first tool call of the run for an approval."""

    name = "suspend-first"

    @hookimpl
    def agent_before_tool_execute(self, ctx, call):  # type: ignore[no-untyped-def]
        if ctx.step == 1:
            return [patches.Suspend("approve me")]
        return None


class Journal:
    """Journals runs in a `CodecJournal`: every entry is encoded and decoded, as on disk.

    Pass one `CodecJournal` to two agents to simulate a second process resuming the run.
    """

    name = "codec-journal"

    def __init__(self, journal: CodecJournal | None = None) -> None:
        self.journal = journal if journal is not None else CodecJournal()

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.set_journal(self.journal)


async def test_duration_counts_running_time_only_across_resumes(autojump_clock: trio.testing.MockClock) -> None:
    model = Metered([tool_call("search")], latency=5.0)
    limits, recorder = Limits(max_duration=12), RunRecorder()
    agent = Agent(
        model="metered", plugins=[model, _tools(), SuspendFirst(), Journal(), limits, recorder], autoload=False
    )
    first = await agent.run("go")
    assert first.reason == "suspended" and len(model.requests) == 1
    await trio.sleep(1000)  # waiting for the approval is not running time
    [pending] = first.pending
    second = await agent.resume(first.run_id, decisions={pending.id: Approve()})
    assert (second.reason, second.stop.code) == ("stopped", "limit.duration")
    assert len(model.requests) == 3  # 5 s + 5 s + 5 s: the third started at 10 s < 12 s
    assert second.state.get(limits.ELAPSED) == pytest.approx(15.0)
    check_phase_grammar(recorder.calls)


class FailRunStart:
    """Raises in RunStart of every resumed invocation."""

    name = "fail-run-start"

    @hookimpl
    def agent_run_start(self, ctx):  # type: ignore[no-untyped-def]
        if ctx.resumed:
            raise RuntimeError("no")


async def test_a_clock_left_by_an_earlier_invocation_is_not_read(autojump_clock: trio.testing.MockClock) -> None:
    model = Metered([tool_call("search")], latency=5.0)
    limits = Limits(max_duration=100)
    agent = Agent(model="metered", plugins=[model, _tools(), SuspendFirst(), FailRunStart(), limits], autoload=False)
    first = await agent.run("go")
    assert first.reason == "suspended" and first.state.get(limits.ELAPSED) == pytest.approx(5.0)
    await trio.sleep(1000)
    second = await agent.resume(first.run_id)
    assert second.reason == "error"  # RunStart failed, so this invocation set no clock of its own
    assert second.state.get(limits.ELAPSED) == pytest.approx(5.0)


def _tools():  # type: ignore[no-untyped-def]
    from limits_testkit import Counter, toolbox

    return toolbox(Counter())


# ----------------------------------------------------------------------------- runs


class FailOnce:
    """Raises in the StepStart of step `step`, once: the run ends in error and is resumed."""

    name = "fail-once"

    def __init__(self, step: int) -> None:
        self.step, self.failed = step, False

    @hookimpl
    def agent_step_start(self, ctx):  # type: ignore[no-untyped-def]
        if ctx.step == self.step and not self.failed:
            self.failed = True
            raise RuntimeError("crash")


async def test_counters_survive_resume_through_an_encoded_journal() -> None:
    model = Metered(LOOP)
    limits = Limits(max_tool_calls=5, max_requests=10, loop_detection=9, max_calls_per_tool={"add": 9})
    agent = Agent(model="metered", plugins=[model, _tools(), Journal(), FailOnce(3), limits], autoload=False)
    first = await agent.run("go")
    assert first.reason == "error" and first.stats.tool_calls == 4
    second = await agent.resume(first.run_id)
    assert (second.reason, second.stop.code) == ("stopped", "limit.tool_calls")
    assert second.stats.tool_calls == 5  # 4 before the crash, 1 after: the count was not lost
    assert second.state.get(limits.REQUESTS) == 3 and dict(second.state.get(limits.PER_TOOL)) == {"add": 2}


async def test_a_run_resumed_with_a_lower_max_steps_stops_at_the_next_step_start() -> None:
    journal = CodecJournal()
    first_model, second_model = Metered(LOOP), Metered(LOOP)
    plugins = [_tools(), Journal(journal), FailOnce(3)]
    first = await Agent(model="metered", plugins=[first_model, *plugins, Limits(max_steps=10)], autoload=False).run(
        "go"
    )
    assert first.reason == "error" and len(first_model.requests) == 2  # crashed starting step 3
    recorder = RunRecorder()
    agent = Agent(
        model="metered",
        plugins=[second_model, _tools(), Journal(journal), Limits(max_steps=2), recorder],
        autoload=False,
    )
    second = await agent.resume(first.run_id)
    assert (second.reason, second.stop.code) == ("stopped", "limit.steps")
    assert second_model.requests == []
    assert recorder.phases == ["run_start", "step_start", "step_end", "run_end"]


async def test_two_limits_in_one_agent_keep_separate_counters() -> None:
    outcome, _, counter, _ = await run(LOOP, Limits(max_steps=5, name="outer"), Limits(max_tool_calls=3, name="inner"))
    assert (outcome.stop.code, counter.count()) == ("limit.tool_calls", 3)


async def test_per_step_work_does_not_grow_with_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The estimate reads only the messages added since the last response."""
    from agent_plugin_limits import _limits

    seen: list[int] = []
    original = _limits._message_chars

    def counting(message):  # type: ignore[no-untyped-def]
        seen.append(1)
        return original(message)

    monkeypatch.setattr(_limits, "_message_chars", counting)
    per_step: list[int] = []

    class Mark:
        name = "mark"

        @hookimpl
        def agent_step_end(self) -> None:
            per_step.append(len(seen))

    await run(Metered(LOOP, (1, 1)), Limits(max_steps=60, max_input_tokens=10**9), Mark())
    reads = [b - a for a, b in itertools.pairwise(per_step)]
    assert len(reads) == 59 and max(reads[-10:]) <= max(reads[1:11])


# ----------------------------------------------------------------------------- configuration


def test_every_code_names_its_option() -> None:
    options = set(Limits.__init__.__code__.co_varnames)
    assert set(CODES.values()) <= options


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        Limits(max_steps=-1)
    with pytest.raises(ValueError, match="max_steps"):
        Limits(max_steps=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prices"):
        Limits(max_cost=1.0)
    with pytest.raises(ValueError, match="prices"):
        Limits(max_cost=1.0, prices={"m": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="loop_detection"):
        Limits(loop_detection=1)
    with pytest.raises(ValueError, match="max_consecutive_tool_errors"):
        Limits(max_consecutive_tool_errors=0)
    with pytest.raises(TypeError, match="collection of tool names"):
        Limits(stop_after_tools="submit")
    with pytest.raises(ValueError, match="max_duration"):
        Limits(max_duration=float("nan"))


def test_entry_point_is_a_module_with_no_behaviour() -> None:
    [entry] = [ep for ep in importlib_metadata.entry_points(group="agent_kernel.plugins") if ep.name == "limits"]
    assert entry.value == "agent_plugin_limits.plugin" and entry.dist.name == "agent-plugin-limits"
    assert [name for name in dir(entry.load()) if name.startswith("agent_")] == []
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("hi")])])
    assert agent.plugins["limits"].hooks == ()


async def test_with_autoload_an_explicit_instance_replaces_the_entry_point() -> None:
    model = ScriptedModel([tool_call("nope"), tool_call("nope"), text("never")])
    agent = Agent(model="scripted", plugins=[model, Limits(max_steps=1)])
    assert agent.plugins["limits"].distribution is None  # the instance, not the installed module
    outcome = await agent.run("go")
    assert (outcome.reason, outcome.stop.code, len(model.requests)) == ("stopped", "limit.steps", 1)
