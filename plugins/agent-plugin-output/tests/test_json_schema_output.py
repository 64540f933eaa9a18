"""JSON schema dicts as the output type: the value is the decoded JSON."""

from __future__ import annotations

import json

import pytest

from agent_kernel.testing import run_scripted, text, tool_call
from agent_plugin_output import TypedOutput, UnsupportedSchema

VERDICT = {
    "type": "object",
    "description": "A verdict on the claim.",
    "properties": {
        "verdict": {"enum": ["true", "false", "unclear"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "sources": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["verdict", "confidence"],
    "additionalProperties": False,
}


async def test_a_dict_schema_is_validated_and_the_value_is_the_json() -> None:
    output = TypedOutput(VERDICT)
    good = {"verdict": "true", "confidence": 0.9, "sources": ["a"]}
    r = await run_scripted(
        [tool_call("final_result", verdict="maybe", confidence=2, sources=[]), tool_call("final_result", **good)],
        output,
    )
    error = next(m for m in r.messages if m.role == "tool")
    assert 'verdict: expected one of ["true", "false", "unclear"], got the string "maybe"' in error.content
    assert "confidence: must be at most 1, got 2" in error.content
    assert "sources: must have at least 1 items, got 0" in error.content
    assert output.value(r.outcome) == good
    assert json.loads(r.outcome.output) == good
    assert output.parameters is output.json_schema  # an object schema is used as is
    assert "A verdict on the claim." in output.description


async def test_a_non_object_schema_is_wrapped_for_the_model_and_unwrapped_for_the_caller() -> None:
    output = TypedOutput({"type": "array", "items": {"type": "integer"}, "$defs": {"n": {"type": "integer"}}})
    assert output.parameters["properties"]["result"] == {"type": "array", "items": {"type": "integer"}}
    assert output.parameters["required"] == ["result"] and "$defs" in output.parameters
    r = await run_scripted(
        [tool_call("final_result", result=[1, "2"]), tool_call("final_result", result=[1, 2])], output
    )
    assert "result[1]: expected an integer" in next(m for m in r.messages if m.role == "tool").content
    assert output.value(r.outcome) == [1, 2]
    assert r.outcome.output == "[1, 2]"


async def test_native_mode_with_a_wrapped_schema_takes_the_value_bare_or_wrapped() -> None:
    output = TypedOutput({"type": "string", "maxLength": 5}, mode="native")
    r = await run_scripted([text('"too long"'), text('"short"')], output)
    assert output.value(r.outcome) == "short"
    assert "result: must be at most 5 characters long, got 8" in r.messages[2].content
    wrapped = await run_scripted([text('{"result": "short"}')], output)
    assert output.value(wrapped.outcome) == "short"


async def test_refs_to_defs_are_followed() -> None:
    schema = {
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/place"}},
        "required": ["home"],
        "$defs": {"place": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
    }
    output = TypedOutput(schema)
    r = await run_scripted([tool_call("final_result", home={}), tool_call("final_result", home={"x": 1})], output)
    assert "home.x: required but missing" in next(m for m in r.messages if m.role == "tool").content
    assert output.value(r.outcome) == {"home": {"x": 1}}


def test_a_ref_that_does_not_resolve_fails_at_construction() -> None:
    with pytest.raises(UnsupportedSchema, match="does not resolve"):
        TypedOutput({"$ref": "#/$defs/missing"})
    with pytest.raises(UnsupportedSchema, match="only local"):
        TypedOutput({"$ref": "https://example.com/schema.json"})


async def test_a_null_value_is_a_value() -> None:
    output = TypedOutput({"type": ["integer", "null"]})
    r = await run_scripted([tool_call("final_result", result=None), tool_call("final_result", result=5)], output)
    assert r.outcome.reason == "completed" and len(r.model.requests) == 1
    assert output.value(r.outcome) is None and r.outcome.state.get(output.CALL) == "1:call_1_1"
    assert r.outcome.output == "null"
