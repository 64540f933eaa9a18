"""Argument validation: strict, complete, with messages naming the parameter."""

from __future__ import annotations

import enum
import json
import math
from typing import Any, Literal, Optional

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_kernel import ToolContext
from agent_kernel.errors import ToolInputError
from agent_plugin_tools import Toolbox
from agent_plugin_tools._types import make_converter


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Point:
    x: int
    y: int = 0


@attrs.frozen
class Positive:
    value: int = attrs.field(validator=attrs.validators.gt(0))


@attrs.frozen
class Line:
    start: Point
    end: Point
    label: str | None = None


def everything(
    n: int,
    ratio: float,
    name: str,
    flag: bool,
    nothing: None,
    maybe: int | None,
    either: int | str,
    ints: list[int],
    scores: dict[str, float],
    pair: tuple[int, str],
    many: tuple[float, ...],
    unique: set[str],
    mode: Literal["fast", "slow"],
    color: Color,
    level: Level,
    line: Line,
    anything: Any,
    *,
    optional: str = "default",
    ctx: ToolContext,
) -> None:
    return None


BOX = Toolbox([everything])
GOOD: dict[str, Any] = {
    "n": 1,
    "ratio": 0.5,
    "name": "x",
    "flag": True,
    "nothing": None,
    "maybe": None,
    "either": "s",
    "ints": [1, 2],
    "scores": {"a": 1.5},
    "pair": [1, "a"],
    "many": [1, 2.5],
    "unique": ["a", "b"],
    "mode": "fast",
    "color": "green",
    "level": 2,
    "line": {"start": {"x": 1}, "end": {"x": 2, "y": 3}},
    "anything": {"any": ["thing"]},
}


def invalid(arguments: dict[str, Any], box: Toolbox = BOX, name: str = "everything") -> str:
    with pytest.raises(ToolInputError) as info:
        box.validate(name, arguments)
    return str(info.value)


def test_valid_arguments_are_structured() -> None:
    out = BOX.validate("everything", GOOD)
    assert out == {
        "n": 1,
        "ratio": 0.5,
        "name": "x",
        "flag": True,
        "nothing": None,
        "maybe": None,
        "either": "s",
        "ints": [1, 2],
        "scores": {"a": 1.5},
        "pair": (1, "a"),
        "many": (1.0, 2.5),
        "unique": {"a", "b"},
        "mode": "fast",
        "color": Color.GREEN,
        "level": Level.HIGH,
        "line": Line(Point(1, 0), Point(2, 3)),
        "anything": {"any": ["thing"]},
    }
    assert type(out["many"][0]) is float
    assert "ctx" not in out and "optional" not in out


def test_json_schema_integers_accept_integral_floats() -> None:
    out = BOX.validate("everything", {**GOOD, "n": 5.0, "ratio": 3})
    assert out["n"] == 5 and type(out["n"]) is int
    assert out["ratio"] == 3.0 and type(out["ratio"]) is float


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("n", "5", 'parameter n: expected an integer, got the string "5"'),
        ("n", True, "parameter n: expected an integer, got true"),
        ("n", 1.5, "parameter n: expected an integer, got the number 1.5"),
        ("ratio", "0.5", 'parameter ratio: expected a number, got the string "0.5"'),
        ("ratio", False, "parameter ratio: expected a number, got false"),
        ("ratio", math.inf, "parameter ratio: expected a number, got the number inf"),
        ("name", 5, "parameter name: expected a string, got the integer 5"),
        ("flag", 1, "parameter flag: expected a boolean, got the integer 1"),
        ("flag", "true", 'parameter flag: expected a boolean, got the string "true"'),
        ("nothing", 0, "parameter nothing: expected null, got the integer 0"),
        ("maybe", "1", 'parameter maybe: expected an integer or null, got the string "1"'),
        ("either", 1.5, "parameter either: expected an integer or a string, got the number 1.5"),
        ("ints", "12", 'parameter ints: expected an array of integers, got the string "12"'),
        ("ints", [1, "2"], 'parameter ints[1]: expected an integer, got the string "2"'),
        ("scores", [1.0], "parameter scores: expected an object with numbers as values, got an array"),
        ("scores", {"a": "1"}, 'parameter scores["a"]: expected a number, got the string "1"'),
        (
            "pair",
            [1, "a", 2],
            "parameter pair: expected an array of exactly 2 items (an integer, a string), got an array of 3 items",
        ),
        ("pair", ["1", "a"], 'parameter pair[0]: expected an integer, got the string "1"'),
        ("pair", {"0": 1}, "parameter pair: expected an array of exactly 2 items"),
        ("many", "1", 'parameter many: expected an array of numbers, got the string "1"'),
        ("unique", [1], "parameter unique[0]: expected a string, got the integer 1"),
        ("mode", "medium", 'parameter mode: expected one of ["fast", "slow"], got the string "medium"'),
        ("color", "blue", 'parameter color: expected one of ["red", "green"], got the string "blue"'),
        ("color", "RED", 'parameter color: expected one of ["red", "green"], got the string "RED"'),
        ("level", True, "parameter level: expected one of [1, 2], got true"),
        ("level", "1", 'parameter level: expected one of [1, 2], got the string "1"'),
        (
            "line",
            {"start": {"x": "1"}, "end": {"x": 2}},
            'parameter line.start.x: expected an integer, got the string "1"',
        ),
        ("line", {"start": {"x": 1}}, "parameter line.end: required but missing (a Point object)"),
        (
            "line",
            {"start": {"x": 1}, "end": {"x": 1}, "colour": 1},
            "parameter line.colour: unknown key (accepted keys: start, end, label)",
        ),
        (
            "line",
            {"start": {"x": 1}, "end": {"x": 1, "z": 0}},
            "parameter line.end.z: unknown key (accepted keys: x, y)",
        ),
        ("line", [1, 2], "parameter line: expected a Line object, got an array"),
    ],
)
def test_wrong_values_name_the_parameter_and_expectation(key: str, value: Any, message: str) -> None:
    assert message in invalid({**GOOD, key: value})


def test_missing_and_unknown_parameters() -> None:
    arguments = {k: v for k, v in GOOD.items() if k not in ("n", "name")}
    arguments["nme"] = "typo"
    text = invalid(arguments)
    assert "unknown parameter 'nme' (the tool takes: n, ratio, name, " in text
    assert "missing required parameter 'n' (an integer)" in text
    assert "missing required parameter 'name' (a string)" in text
    assert "ctx" not in text  # the ToolContext is not something the model can pass
    assert "context" not in invalid({**GOOD, "ctx": "x"}).split("the tool takes:")[0]


def test_all_problems_are_reported_at_once_up_to_a_limit() -> None:
    text = invalid({f"bad{i}": i for i in range(30)})
    assert text.count(";") == 10 and text.endswith("more")


def test_arguments_must_be_an_object() -> None:
    assert "expected a JSON object of arguments, got list" in invalid([1, 2])  # type: ignore[arg-type]


def test_attrs_validators_become_input_errors() -> None:
    def f(p: Positive) -> int:
        return p.value

    box = Toolbox([f])
    assert box.validate("f", {"p": {"value": 3}}) == {"p": Positive(3)}
    text = invalid({"p": {"value": -1}}, box, "f")
    assert text == "parameter p: 'value' must be > 0: -1"


def test_converter_primitives_are_strict_too() -> None:
    converter = make_converter()
    assert converter.structure(5, int) == 5
    for value, kind in (("5", int), (True, int), ("1.0", float), (1, str), (0, bool), (1.5, int)):
        with pytest.raises(TypeError):
            converter.structure(value, kind)
    assert converter.structure([1, "a"], list[int | str]) == [1, "a"]
    assert converter.structure(["a"], list[str] | str) == ["a"]
    assert converter.structure("ab", list[str] | str) == "ab"  # never split into characters


# ----------------------------------------------------------------------------- properties

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)

_PRIMITIVES: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (int, st.integers()),
    (float, st.floats(allow_nan=False, allow_infinity=False)),
    (str, st.text(max_size=8)),
    (bool, st.booleans()),
    (None, st.none()),
    (Literal["a", "b", 3], st.sampled_from(["a", "b", 3])),
    (Color, st.sampled_from(Color)),
    (Level, st.sampled_from(Level)),
    (Point, st.builds(Point, st.integers(), st.integers())),
]


def _extend(
    children: st.SearchStrategy[tuple[Any, st.SearchStrategy[Any]]],
) -> st.SearchStrategy[tuple[Any, st.SearchStrategy[Any]]]:
    return st.one_of(
        children.map(lambda c: (list[c[0]], st.lists(c[1], max_size=3))),  # type: ignore[misc,valid-type]
        children.map(lambda c: (dict[str, c[0]], st.dictionaries(st.text(max_size=4), c[1], max_size=3))),  # type: ignore[misc,valid-type]
        children.map(lambda c: (tuple[c[0], ...], st.lists(c[1], max_size=3).map(tuple))),  # type: ignore[misc,valid-type]
        children.map(lambda c: (Optional[c[0]], st.none() | c[1])),  # noqa: UP045
        st.tuples(children, children).map(lambda ab: (tuple[ab[0][0], ab[1][0]], st.tuples(ab[0][1], ab[1][1]))),  # type: ignore[misc,valid-type]
    )


TYPES = st.recursive(st.sampled_from(_PRIMITIVES), _extend, max_leaves=4)


def _tool_for(annotation: Any) -> Toolbox:
    def probe(x):  # type: ignore[no-untyped-def]
        return x

    probe.__annotations__ = {"x": annotation}
    return Toolbox([probe])


@settings(max_examples=300, deadline=None)
@given(data=st.data(), typed=TYPES)
def test_encode_then_validate_round_trips(data: st.DataObject, typed: tuple[Any, st.SearchStrategy[Any]]) -> None:
    """What a tool returns (as JSON) validates back to an equal value of the same type."""
    annotation, values = typed
    value = data.draw(values)
    box = _tool_for(annotation)
    encoded = box.tools["probe"].encode({"x": value}).content
    decoded = json.loads(encoded)
    assert box.validate("probe", decoded) == {"x": value}


@settings(max_examples=300, deadline=None)
@given(typed=TYPES, raw=JSON)
def test_any_json_is_either_accepted_consistently_or_refused_cleanly(typed: tuple[Any, Any], raw: Any) -> None:
    """Never a crash: arbitrary JSON gives a value the checker accepts, or a ToolInputError."""
    annotation, _ = typed
    box = _tool_for(annotation)
    node = box.tools["probe"]._node.fields["x"].node
    try:
        out = box.validate("probe", {"x": raw})
    except ToolInputError as exc:
        assert not node.accepts(raw)
        assert str(exc).startswith("parameter x")
    else:
        assert node.accepts(raw)
        assert set(out) == {"x"}
