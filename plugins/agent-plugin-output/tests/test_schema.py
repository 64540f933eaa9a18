"""`schema_for` (attrs class -> JSON schema) and `check_json` (the JSON-schema checker)."""

from __future__ import annotations

import datetime
import enum
import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_plugin_output import OutputInvalid, TypedOutput, UnsupportedSchema, check_json, schema_for


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@attrs.frozen
class Point:
    x: int
    y: int


@attrs.frozen
class Everything:
    """Every supported kind of field.

    More text that is not part of the summary.
    """

    s: str
    i: int
    f: float
    b: bool
    n: None
    any: Any
    opt: int | None
    lit: Literal["a", "b"]
    color: Color
    items: list[str]
    seq: Sequence[int]
    tags: frozenset[str]
    pair: tuple[int, str]
    many: tuple[int, ...]
    table: dict[str, int]
    mapping: Mapping[str, Point]
    point: Point
    doc: Annotated[str, "described"]
    with_default: int = 3
    hidden: int = attrs.field(default=0, init=False)


def test_schema_for_every_supported_field_type() -> None:
    schema = schema_for(Everything)
    assert schema["description"] == "Every supported kind of field."
    assert schema["additionalProperties"] is False
    assert schema["required"] == [
        "s",
        "i",
        "f",
        "b",
        "n",
        "any",
        "opt",
        "lit",
        "color",
        "items",
        "seq",
        "tags",
        "pair",
        "many",
        "table",
        "mapping",
        "point",
        "doc",
    ]
    p = schema["properties"]
    assert "hidden" not in p
    assert p["s"] == {"type": "string"} and p["i"] == {"type": "integer"} and p["f"] == {"type": "number"}
    assert p["b"] == {"type": "boolean"} and p["n"] == {"type": "null"} and p["any"] == {}
    assert p["opt"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert p["lit"] == {"type": "string", "enum": ["a", "b"]}
    assert p["color"] == {"type": "string", "enum": ["red", "green"]}
    assert p["items"] == {"type": "array", "items": {"type": "string"}}
    assert p["seq"] == {"type": "array", "items": {"type": "integer"}}
    assert p["tags"] == {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    assert p["pair"] == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "items": False,
        "minItems": 2,
        "maxItems": 2,
    }
    assert p["many"] == {"type": "array", "items": {"type": "integer"}}
    assert p["table"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert p["mapping"]["additionalProperties"] == schema_for(Point)
    assert p["point"] == schema_for(Point)
    assert p["doc"] == {"type": "string", "description": "described"}
    assert p["with_default"] == {"type": "integer"}


@attrs.frozen
class Node:
    child: Node | None = None


@attrs.frozen
class WithDate:
    when: datetime.date


@attrs.frozen
class IntKeys:
    table: dict[int, str]


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (Node, "refers to itself"),
        (WithDate, "field 'when'.*not supported"),
        (IntKeys, "key type must be str"),
    ],
)
def test_unsupported_types_are_named(cls: type, message: str) -> None:
    with pytest.raises(UnsupportedSchema, match=message):
        schema_for(cls)


# ----------------------------------------------------------------------------- the checker


@pytest.mark.parametrize(
    ("schema", "value", "error"),
    [
        ({"type": "string"}, 1, "(the value): expected a string, got the integer 1"),
        ({"type": "integer"}, 1.5, "expected an integer, got the number 1.5"),
        ({"type": "integer"}, True, "expected an integer, got true"),
        ({"type": "number"}, "1", 'expected a number, got the string "1"'),
        ({"type": ["string", "null"]}, 1, "expected a string or null"),
        ({"const": 1}, 2, "expected 1, got the integer 2"),
        ({"enum": [1, "a"]}, True, 'expected one of [1, "a"], got true'),
        ({"minLength": 2}, "a", "must be at least 2 characters long, got 1"),
        ({"maxLength": 1}, "ab", "must be at most 1 characters long, got 2"),
        ({"pattern": "^a+$"}, "b", "must match the pattern '^a+$'"),
        ({"minimum": 1}, 0, "must be at least 1, got 0"),
        ({"maximum": 1}, 2, "must be at most 1, got 2"),
        ({"exclusiveMinimum": 1}, 1, "must be greater than 1, got 1"),
        ({"exclusiveMaximum": 1}, 1, "must be less than 1, got 1"),
        ({"multipleOf": 0.5}, 0.7, "must be a multiple of 0.5"),
        ({"required": ["a"]}, {}, "a: required but missing"),
        ({"properties": {"a": {"type": "integer"}}}, {"a": "x"}, "a: expected an integer"),
        ({"properties": {}, "additionalProperties": False}, {"b": 1}, "b: unknown key (accepted keys: none)"),
        ({"additionalProperties": {"type": "integer"}}, {"b c": "x"}, '["b c"]: expected an integer'),
        ({"minProperties": 1}, {}, "must have at least 1 keys, got 0"),
        ({"maxProperties": 0}, {"a": 1}, "must have at most 0 keys, got 1"),
        ({"items": {"type": "integer"}}, [1, "x"], "[1]: expected an integer"),
        ({"prefixItems": [{"type": "integer"}], "items": False}, [1, 2], "must have at most 1 items, got 2"),
        ({"minItems": 1}, [], "must have at least 1 items, got 0"),
        ({"maxItems": 1}, [1, 2], "must have at most 1 items, got 2"),
        ({"uniqueItems": True}, [1, 1.0], "[1]: repeats an earlier item"),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, None, "expected an integer or a string, got null"),
        ({"anyOf": [{"type": "object", "required": ["a"]}, {"type": "string"}]}, {}, "a: required but missing"),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1, "matches 2 of the oneOf alternatives"),
        ({"allOf": [{"type": "integer"}, {"minimum": 5}]}, 1, "must be at least 5"),
        ({"not": {"type": "string"}}, "x", "matches a schema it must not match"),
        (False, 1, "no value is allowed here"),
        ({"properties": {"a": {"$ref": "#/$defs/n"}}, "$defs": {"n": {"type": "null"}}}, {"a": 1}, "a: expected null"),
    ],
)
def test_each_keyword_reports_its_problem(schema: Any, value: Any, error: str) -> None:
    errors = check_json(value, schema)
    assert any(error in e for e in errors), errors


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "integer"}, 5.0),  # JSON Schema: 5.0 is an integer
        ({"type": "number"}, 5),
        ({"nullable": True, "type": "string"}, None),
        ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, "x"),
        ({"enum": [1.0]}, 1),
        ({"format": "date-time", "title": "ignored"}, "not a date"),
        (True, {"anything": [1]}),
        ({}, None),
    ],
)
def test_valid_values_pass(schema: Any, value: Any) -> None:
    assert check_json(value, schema) == []


def test_malformed_schemas_raise() -> None:
    with pytest.raises(UnsupportedSchema, match="must be an object or a boolean"):
        check_json([1], {"items": 3})


def test_at_most_ten_problems_are_listed() -> None:
    output = TypedOutput({"type": "object", "additionalProperties": False, "properties": {}})
    with pytest.raises(OutputInvalid) as caught:
        output.validate({f"k{i}": i for i in range(25)})
    assert len(caught.value.errors) == 11 and caught.value.errors[-1] == "... and 15 more problems"


# ----------------------------------------------------------------------------- round trip (property)


def values_of(cls: type) -> st.SearchStrategy[Any]:
    fields = {}
    for a in attrs.fields(cls):
        if a.init:
            fields[a.name] = st.from_type(a.type)
    return st.builds(cls, **fields)


@attrs.frozen
class Order:
    item: str
    quantity: int
    price: float
    express: bool
    color: Color
    size: Literal["S", "M", "L"]
    tags: tuple[str, ...]
    at: Point | None
    notes: dict[str, str] = attrs.Factory(dict)


@given(
    st.builds(
        Order,
        item=st.text(),
        quantity=st.integers(),
        price=st.floats(allow_nan=False, allow_infinity=False),
        express=st.booleans(),
        color=st.sampled_from(Color),
        size=st.sampled_from(["S", "M", "L"]),
        tags=st.lists(st.text(max_size=3), max_size=3).map(tuple),
        at=st.none() | st.builds(Point, st.integers(), st.integers()),
        notes=st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3),
    )
)
def test_every_value_dumps_to_json_that_validates_and_structures_back_equal(order: Order) -> None:
    output = TypedOutput(Order)
    data = json.loads(json.dumps(output.dump(order)))  # what a persistent journal keeps
    assert check_json(data, output.parameters) == []
    assert output.validate(data) == order
