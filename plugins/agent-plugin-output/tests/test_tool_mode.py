"""Tool mode (the default): the model calls ``final_result``; the run finishes ``completed``."""

from __future__ import annotations

import json

import pytest

from agent_kernel import Context, StopInfo, ToolCall, ToolResult, hookimpl
from agent_kernel.patches import Stop
from agent_kernel.testing import FakeTools, check_phase_grammar, run_scripted, text, tool_call
from agent_plugin_output import ACCEPTED, ALREADY, TypedOutput, UnsupportedSchema, output_of

from .conftest import City

PARIS = {"name": "Paris", "population": 2_100_000}


def answered(messages: list) -> bool:  # type: ignore[type-arg]
    """Every tool call of the conversation has a tool message answering it."""
    asked = [c.id for m in messages if m.role == "assistant" for c in m.tool_calls]
    answers = [m.tool_call_id for m in messages if m.role == "tool"]
    return sorted(asked) == sorted(answers)


async def test_a_valid_call_completes_the_run_with_the_typed_value() -> None:
    output = TypedOutput(City)
    r = await run_scripted([tool_call("final_result", **PARIS)], output)
    outcome = r.outcome
    assert outcome.reason == "completed"
    assert output.value(outcome) == City("Paris", 2_100_000)
    assert json.loads(outcome.output) == {"name": "Paris", "population": 2_100_000, "country": None}
    assert outcome.stop == StopInfo("finished", "final_result was called with a valid result", completed=True)
    assert len(r.model.requests) == 1  # no request after the final result
    r.recorder.assert_phases(
        [
            "run_start",
            "step_start",
            "before_inference",
            "after_inference",
            "before_tool_execute",
            "after_tool_execute",
            "step_end",
            "run_end",
        ]
    )
    check_phase_grammar(r.recorder.calls)
    tool_message = r.messages[-2]
    assert (tool_message.role, tool_message.content, tool_message.is_error) == ("tool", ACCEPTED, False)
    assert r.messages[-1].role == "assistant" and r.messages[-1].content == outcome.output


async def test_the_tool_is_offered_with_the_schema_as_parameters() -> None:
    output = TypedOutput(City)
    r = await run_scripted([tool_call("final_result", **PARIS)], output)
    [spec] = [t for t in r.model.requests[0].tools if t.name == "final_result"]
    assert dict(spec.parameters) == output.parameters
    assert spec.parameters["required"] == ["name", "population"]
    assert spec.parameters["properties"]["population"]["description"] == "inhabitants"
    assert "A city and how many people live there." in spec.description
    assert spec.plugin == "output"


async def test_an_invalid_call_gets_every_problem_and_the_model_retries() -> None:
    output = TypedOutput(City)
    r = await run_scripted(
        [tool_call("final_result", name=3, population="many", mayor="x"), tool_call("final_result", **PARIS)], output
    )
    assert r.outcome.reason == "completed" and output.value(r.outcome) == City("Paris", 2_100_000)
    error = next(m for m in r.messages if m.role == "tool")
    assert error.is_error
    assert "name: expected a string, got the integer 3" in error.content
    assert 'population: expected an integer, got the string "many"' in error.content
    assert "mayor: unknown key (accepted keys: name, population, country)" in error.content
    assert r.outcome.state.get(output.RETRIES) == 1
    assert len(r.model.requests) == 2


async def test_attrs_validators_run_and_their_message_reaches_the_model() -> None:
    output = TypedOutput(City)
    r = await run_scripted(
        [tool_call("final_result", name="Paris", population=-5), tool_call("final_result", **PARIS)], output
    )
    error = next(m for m in r.messages if m.role == "tool")
    assert error.is_error and "'population' must be > 0: -5" in error.content
    assert output.value(r.outcome) == City("Paris", 2_100_000)


@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_retries_are_bounded_then_the_run_stops_with_output_invalid(max_retries: int) -> None:
    output = TypedOutput(City, max_retries=max_retries)
    bad = tool_call("final_result", name="Paris")
    r = await run_scripted([bad] * (max_retries + 5), output)
    outcome = r.outcome
    assert outcome.reason == "stopped"
    assert outcome.stop is not None and outcome.stop.code == "output.invalid"
    assert "population: required but missing" in outcome.stop.detail
    assert len(r.model.requests) == max_retries + 1
    assert outcome.state.get(output.RETRIES) == max_retries
    assert output.value(outcome) is None
    assert answered(r.messages)  # the last invalid call got its error result too


async def test_a_text_answer_is_refused_and_the_model_is_told_to_call_the_tool() -> None:
    output = TypedOutput(City)
    r = await run_scripted([text("Paris, 2.1 million people"), tool_call("final_result", **PARIS)], output)
    assert r.outcome.reason == "completed"
    feedback = r.messages[2]
    assert feedback.role == "user" and "calling the final_result tool" in feedback.content
    assert r.outcome.state.get(output.RETRIES) == 1


async def test_text_answers_forever_stop_after_the_bound_without_more_feedback() -> None:
    output = TypedOutput(City, max_retries=1)
    r = await run_scripted([text("Paris")] * 5, output)
    assert (r.outcome.reason, r.outcome.stop and r.outcome.stop.code) == ("stopped", "output.invalid")
    assert len(r.model.requests) == 2
    assert r.messages[-1].role == "assistant"  # no feedback after the failure that stops the run
    assert [m.role for m in r.messages] == ["user", "assistant", "user", "assistant"]


async def test_other_tool_calls_of_the_response_still_run() -> None:
    def note(text: str) -> str:
        return f"noted {text}"

    tools = FakeTools(note)
    output = TypedOutput(City)
    r = await run_scripted([[tool_call("note", text="a"), tool_call("final_result", **PARIS)]], tools, output)
    assert r.outcome.reason == "completed"
    assert [i.name for i in tools.invocations] == ["note"]
    assert [m.content for m in r.messages if m.role == "tool"] == ["noted a", ACCEPTED]
    assert len(r.model.requests) == 1


async def test_ordinary_tool_steps_are_not_attempts() -> None:
    def note(text: str) -> str:
        return "ok"

    output = TypedOutput(City, max_retries=0)
    r = await run_scripted(
        [tool_call("note", text="a"), tool_call("note", text="b"), tool_call("final_result", **PARIS)],
        FakeTools(note),
        output,
    )
    assert r.outcome.reason == "completed" and r.outcome.state.get(output.RETRIES) == 0
    assert len(r.recorder.steps()) == 3


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
async def test_the_first_valid_call_wins_and_the_others_are_ignored(strategy: str) -> None:
    output = TypedOutput(City)
    turn = [
        tool_call("final_result", name="Nowhere"),
        tool_call("final_result", name="Paris", population=1),
        tool_call("final_result", name="Rome", population=2),
    ]
    r = await run_scripted([turn], FakeTools(strategy=strategy), output)
    assert output.value(r.outcome) == City("Paris", 1)
    assert [m.content for m in r.messages if m.role == "tool"] == [ALREADY, ACCEPTED, ALREADY]
    assert r.outcome.state.get(output.RETRIES) == 0


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
async def test_a_response_whose_calls_all_fail_is_one_failed_attempt(strategy: str) -> None:
    output = TypedOutput(City, max_retries=1)
    turn = [tool_call("final_result", name="A"), tool_call("final_result", name="B")]
    r = await run_scripted([turn, tool_call("final_result", **PARIS)], FakeTools(strategy=strategy), output)
    assert r.outcome.reason == "completed"
    assert r.outcome.state.get(output.RETRIES) == 1
    errors = [m for m in r.messages if m.role == "tool" and m.is_error]
    assert len(errors) == 2 and all("population: required but missing" in m.content for m in errors)


class StopAfterTools:
    name = "stopper"

    @hookimpl
    def agent_after_tool_execute(self, ctx: Context, call: ToolCall, result: ToolResult) -> list[Stop]:
        return [Stop("other.stop", "stopped by another plugin")]


async def test_a_run_stopped_by_another_plugin_keeps_the_value() -> None:
    output = TypedOutput(City)
    r = await run_scripted([tool_call("final_result", **PARIS)], output, StopAfterTools())
    assert r.outcome.reason == "stopped" and r.outcome.stop is not None and r.outcome.stop.code == "other.stop"
    assert output.value(r.outcome) == City("Paris", 2_100_000)
    assert r.messages[-1].role == "tool"  # no JSON answer was appended: the run did not finish


async def test_value_helpers() -> None:
    output = TypedOutput(City, name="city")
    r = await run_scripted([tool_call("final_result", **PARIS)], output)
    assert output.value(r.outcome) == output.value(r.outcome.state) == City("Paris", 2_100_000)
    assert output_of(r.outcome, "city") is output.value(r.outcome)
    assert output_of(r.outcome) is None  # no TypedOutput named "output"
    assert output.state_keys[0].name == "city.value"
    nothing = await run_scripted([text("no")], TypedOutput(City, name="city", max_retries=0))
    assert nothing.outcome.stop is not None and nothing.outcome.stop.code == "city.invalid"
    assert output.value(nothing.outcome) is None


async def test_a_custom_tool_name_and_description() -> None:
    output = TypedOutput(City, tool_name="answer", description="Answer with a city.")
    r = await run_scripted([tool_call("answer", **PARIS)], output)
    [spec] = r.model.requests[0].tools
    assert (spec.name, spec.description) == ("answer", "Answer with a city.")
    assert output.value(r.outcome) == City("Paris", 2_100_000)
    assert r.outcome.stop is not None and r.outcome.stop.detail == "answer was called with a valid result"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"mode": "json"}, "mode"),
        ({"name": "a b"}, "name"),
        ({"tool_name": "final result"}, "tool_name"),
    ],
)
def test_bad_options_fail_at_construction(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        TypedOutput(City, **kwargs)


def test_a_schema_must_be_an_attrs_class_or_a_dict() -> None:
    with pytest.raises(UnsupportedSchema, match="attrs class or a JSON schema"):
        TypedOutput(int)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedSchema, match="attrs class or a JSON schema"):
        TypedOutput([1, 2])  # type: ignore[arg-type]
