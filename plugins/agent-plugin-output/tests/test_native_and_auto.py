"""Native mode (the final text is the JSON answer) and auto mode (tool or text)."""

from __future__ import annotations

import json

from agent_kernel.testing import run_scripted, text, tool_call
from agent_plugin_output import TypedOutput

from .conftest import City

PARIS_JSON = json.dumps({"name": "Paris", "population": 2_100_000})


async def test_native_a_valid_json_answer_completes_the_run_by_itself() -> None:
    output = TypedOutput(City, mode="native")
    r = await run_scripted([text(PARIS_JSON)], output)
    assert r.outcome.reason == "completed"
    assert r.outcome.stop is None  # ended as any answered run does, not through a patch
    assert r.outcome.output == PARIS_JSON
    assert output.value(r.outcome) == City("Paris", 2_100_000)
    assert [t.name for t in r.model.requests[0].tools] == []  # no final_result tool in native mode


async def test_native_one_code_fence_is_tolerated() -> None:
    output = TypedOutput(City, mode="native")
    r = await run_scripted([text(f"```json\n{PARIS_JSON}\n```")], output)
    assert output.value(r.outcome) == City("Paris", 2_100_000)


async def test_native_invalid_json_is_explained_and_the_model_tries_again() -> None:
    output = TypedOutput(City, mode="native")
    r = await run_scripted([text("The answer is Paris."), text('{"name": "Paris"}'), text(PARIS_JSON)], output)
    assert r.outcome.reason == "completed" and output.value(r.outcome) == City("Paris", 2_100_000)
    first, second = [m.content for m in r.messages if m.role == "user"][1:]
    assert "not valid JSON (Expecting value at line 1 column 1)" in first
    assert "population: required but missing" in second
    assert "Reply with only a JSON value" in second and "final_result" not in second
    assert r.outcome.state.get(output.RETRIES) == 2


async def test_native_retries_are_bounded() -> None:
    output = TypedOutput(City, mode="native", max_retries=2)
    r = await run_scripted([text("nope")] * 9, output)
    assert (r.outcome.reason, r.outcome.stop and r.outcome.stop.code) == ("stopped", "output.invalid")
    assert len(r.model.requests) == 3


async def test_native_tool_calls_are_ordinary_steps() -> None:
    from agent_kernel.testing import FakeTools

    def lookup(city: str) -> str:
        return "2100000"

    output = TypedOutput(City, mode="native", max_retries=0)
    r = await run_scripted([tool_call("lookup", city="Paris"), text(PARIS_JSON)], FakeTools(lookup), output)
    assert r.outcome.reason == "completed" and output.value(r.outcome) == City("Paris", 2_100_000)


async def test_native_puts_the_schema_in_every_request_until_a_value_is_accepted() -> None:
    output = TypedOutput(City, mode="native")
    r = await run_scripted([text("no"), text(PARIS_JSON)], output)
    for request in r.model.requests:
        system = request.messages[0]
        assert system.role == "system" and json.dumps(output.parameters) in system.content
    assert output.instructions is not None and output.instructions.startswith("Give your final answer as one JSON")


async def test_instructions_can_be_switched_off_or_replaced() -> None:
    silent = await run_scripted([text(PARIS_JSON)], TypedOutput(City, mode="native", instructions=False))
    assert [m.role for m in silent.model.requests[0].messages] == ["user"]
    custom = await run_scripted(
        [tool_call("final_result", name="Paris", population=1)], TypedOutput(City, instructions="JSON!")
    )
    assert [(m.role, m.content) for m in custom.model.requests[0].messages] == [("system", "JSON!"), ("user", "go")]
    tool_mode = await run_scripted([tool_call("final_result", name="Paris", population=1)], TypedOutput(City))
    assert [m.role for m in tool_mode.model.requests[0].messages] == ["user"]  # tool mode: none by default


def test_response_format_is_the_openai_json_schema_shape() -> None:
    output = TypedOutput(City, mode="native")
    assert output.response_format() == {
        "type": "json_schema",
        "json_schema": {"name": "final_result", "schema": output.parameters, "strict": False},
    }
    assert output.response_format(strict=True)["json_schema"]["strict"] is True


async def test_auto_offers_the_tool_and_accepts_a_json_text_answer() -> None:
    output = TypedOutput(City, mode="auto")
    by_text = await run_scripted([text(PARIS_JSON)], output)
    assert [t.name for t in by_text.model.requests[0].tools] == ["final_result"]
    assert by_text.outcome.reason == "completed" and output.value(by_text.outcome) == City("Paris", 2_100_000)
    by_tool = await run_scripted([tool_call("final_result", name="Paris", population=2_100_000)], output)
    assert by_tool.outcome.reason == "completed" and output.value(by_tool.outcome) == City("Paris", 2_100_000)


async def test_auto_feedback_mentions_both_ways() -> None:
    output = TypedOutput(City, mode="auto")
    r = await run_scripted([text("Paris!"), text(PARIS_JSON)], output)
    feedback = r.messages[2]
    assert feedback.role == "user" and "Call the final_result tool" in feedback.content
    assert "or reply with only a JSON value" in feedback.content


async def test_auto_hides_the_tool_when_native_structured_output_is_on() -> None:
    output = TypedOutput(City, mode="auto")
    settings = {"response_format": output.response_format()}
    r = await run_scripted([text("Paris!"), text(PARIS_JSON)], output, settings=settings)
    assert all(t.name != "final_result" for request in r.model.requests for t in request.tools)
    assert dict(r.model.requests[0].settings) == settings
    feedback = r.messages[2]
    assert "final_result" not in feedback.content  # the model cannot call it, so it is not told to
    assert output.value(r.outcome) == City("Paris", 2_100_000)
