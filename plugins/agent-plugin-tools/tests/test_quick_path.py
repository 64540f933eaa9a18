"""The quick paths: primitive arguments of their exact type skip structuring, scalar results skip json.dumps.

Whatever a quick path takes, the full check and structuring must give the same: the
same values of the same types in the same order, or the same error text.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Annotated, Any

import pytest
from cattrs import Converter
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_kernel import ToolContext
from agent_kernel.errors import ToolInputError
from agent_plugin_tools import Tool, Toolbox
from agent_plugin_tools._types import make_converter


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Name(str):
    pass


def mixed(
    n: int,
    ratio: float,
    name: str,
    flag: bool,
    nothing: None,
    described: Annotated[int, "an integer with a description"],
    ints: list[int],
    maybe: int | None = None,
    level: Level = Level.LOW,
    *,
    optional: float = 1.0,
    ctx: ToolContext,
) -> None:
    return None


def primitive(
    n: int,
    ratio: float,
    name: str,
    flag: bool,
    nothing: None,
    described: Annotated[int, "an integer with a description"],
    *,
    optional: float = 1.0,
    ctx: ToolContext,
) -> None:
    return None


TOOL = Toolbox([mixed]).tools["mixed"]
PRIMITIVE = Toolbox([primitive]).tools["primitive"]
QUICK = {"n", "ratio", "name", "flag", "nothing", "described", "optional"}
GOOD: dict[str, Any] = {
    "n": 1,
    "ratio": 0.5,
    "name": "x",
    "flag": True,
    "nothing": None,
    "described": 7,
    "ints": [1, 2],
    "maybe": 3,
    "level": 2,
    "optional": 2.5,
}


class Arguments(Mapping[str, Any]):
    """A mapping that is neither a dict nor a read-only proxy of one."""

    def __init__(self, items: dict[Any, Any]) -> None:
        self._items = items

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def outcome(validate: Any, arguments: Any) -> tuple[str, Any]:
    """What `validate` made of `arguments`: the items with their exact types, or the error text."""
    try:
        out = validate(arguments)
    except ToolInputError as exc:
        return "error", str(exc)
    return "ok", [(key, type(value), repr(value)) for key, value in out.items()]


def agree(tool: Tool, arguments: Any) -> tuple[str, Any]:
    quick = outcome(tool.validate, arguments)
    assert quick == outcome(tool._check_and_structure, arguments)
    return quick


def test_primitive_parameters_have_a_quick_test_and_others_do_not() -> None:
    assert set(TOOL._unchanged_tests) == QUICK
    assert set(PRIMITIVE._unchanged_tests) == QUICK


def test_arguments_of_exactly_their_types_skip_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: Tool, arguments: Any) -> dict[str, Any]:
        raise AssertionError("took the full path")

    monkeypatch.setattr(Tool, "_check_and_structure", full)
    quick = {key: GOOD[key] for key in GOOD if key in QUICK}
    for arguments in (quick, MappingProxyType(quick), {k: v for k, v in quick.items() if k != "optional"}):
        out = PRIMITIVE.validate(arguments)
        assert out == dict(arguments) and list(out) == list(arguments)
        assert out is not arguments  # the caller adds the context to it


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("n", True, "parameter n: expected an integer, got true"),  # a bool is not an integer
        ("n", 5.0, 5),  # an integral float is the integer, as int
        ("n", 1.5, "parameter n: expected an integer, got the number 1.5"),
        ("n", Level.HIGH, 2),  # an int subclass: structured to a plain int
        ("ratio", 3, 3.0),  # an integer is a number, as float
        ("ratio", False, "parameter ratio: expected a number, got false"),
        ("ratio", math.inf, "parameter ratio: expected a number, got the number inf"),
        ("ratio", -math.inf, "parameter ratio: expected a number, got the number -inf"),
        ("ratio", math.nan, "parameter ratio: expected a number, got the number nan"),
        ("ratio", -0.0, -0.0),
        ("name", 5, "parameter name: expected a string, got the integer 5"),
        ("name", Name("sub"), Name("sub")),  # a str subclass: kept as it is
        ("flag", 1, "parameter flag: expected a boolean, got the integer 1"),
        ("nothing", 0, "parameter nothing: expected null, got the integer 0"),
        ("nothing", False, "parameter nothing: expected null, got false"),
        ("described", "7", 'parameter described: expected an integer, got the string "7"'),
        ("described", True, "parameter described: expected an integer, got true"),
        ("optional", 2, 2.0),
        ("optional", "2", 'parameter optional: expected a number, got the string "2"'),
        ("maybe", None, None),
        ("maybe", True, "parameter maybe: expected an integer or null, got true"),
        ("level", True, "parameter level: expected one of [1, 2], got true"),
        ("ints", [1, True], "parameter ints[1]: expected an integer, got true"),
    ],
)
def test_edge_values_are_handled_as_by_the_full_path(key: str, value: Any, expected: Any) -> None:
    kind, result = agree(TOOL, {**GOOD, key: value})
    if isinstance(expected, str) and expected.startswith("parameter "):
        assert (kind, result) == ("error", expected)
    else:
        assert kind == "ok"
        assert (key, type(expected), repr(expected)) in result


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({k: v for k, v in GOOD.items() if k != "n"}, "missing required parameter 'n' (an integer)"),
        ({**GOOD, "extra": 1}, "unknown parameter 'extra' (the tool takes: n, ratio, name, "),
        ({**GOOD, 1: 1}, "unknown parameter 1 (the tool takes: n, ratio, name, "),
        ({**GOOD, "ctx": None}, "unknown parameter 'ctx'"),
        ({}, "missing required parameter 'n' (an integer); missing required parameter 'ratio' (a number)"),
    ],
)
def test_missing_and_unknown_parameters_take_the_full_path(arguments: dict[Any, Any], message: str) -> None:
    kind, text = agree(TOOL, arguments)
    assert kind == "error" and message in text
    assert agree(TOOL, MappingProxyType(arguments)) == (kind, text)


def test_other_mappings_and_non_mappings_take_the_full_path() -> None:
    assert agree(TOOL, Arguments(GOOD)) == agree(TOOL, GOOD)
    assert agree(TOOL, [("n", 1)]) == ("error", "expected a JSON object of arguments, got list")


def test_a_tool_without_parameters() -> None:
    def ping() -> str:
        return "pong"

    ping_tool = Toolbox([ping]).tools["ping"]
    assert agree(ping_tool, {}) == ("ok", [])
    assert agree(ping_tool, {"x": 1}) == ("error", "unknown parameter 'x' (the tool takes: none)")


async def test_positional_only_parameters_and_the_context_still_reach_the_function() -> None:
    seen: list[Any] = []

    async def f(a: int, /, b: str, *, ctx: ToolContext) -> int:
        seen.append((a, b, ctx))
        return a

    result = await Toolbox([f]).tools["f"](MappingProxyType({"a": 4, "b": "x"}), "the context")  # type: ignore[arg-type]
    assert seen == [(4, "x", "the context")] and result.content == "4"


def test_another_converter_turns_the_quick_paths_off() -> None:
    def twice(value: Any, _: Any) -> int:
        return 2 * value

    converter = make_converter()
    converter.register_structure_hook(int, twice)

    def f(n: int) -> int:
        return n

    custom = Tool(f, converter=converter)
    assert custom._unchanged_tests == {}
    assert custom.validate({"n": 2}) == {"n": 4}

    plain = Converter()
    plain.register_unstructure_hook(int, str)
    assert Tool(f, converter=plain).encode(5).content == '"5"'
    assert Tool(f).encode(5).content == "5"


# ----------------------------------------------------------------------------- properties

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.sampled_from([Level.HIGH, Name("sub"), -0.0]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)
GOOD_VALUES = {
    "n": st.integers(),
    "ratio": st.floats(allow_nan=False, allow_infinity=False),
    "name": st.text(max_size=5),
    "flag": st.booleans(),
    "nothing": st.none(),
    "described": st.integers(),
    "ints": st.lists(st.integers(), max_size=3),
    "maybe": st.none() | st.integers(),
    "level": st.sampled_from([1, 2]),
    "optional": st.floats(allow_nan=False, allow_infinity=False),
}


def arguments_for(tool: Tool) -> st.SearchStrategy[dict[Any, Any]]:
    """Argument dicts for `tool`: all good (the quick path), one value arbitrary, some missing, some unknown."""
    good = st.fixed_dictionaries({key: GOOD_VALUES[key] for key in tool._node.fields})
    return st.one_of(
        st.builds(
            lambda given, extra: {**given, **extra},
            good,
            st.dictionaries(st.sampled_from(["extra", "ctx", "N"]) | st.integers(), VALUES, max_size=2),
        ),
        st.builds(
            lambda given, key, value: {**given, key: value}, good, st.sampled_from(list(tool._node.fields)), VALUES
        ),
        st.fixed_dictionaries({}, optional={key: GOOD_VALUES[key] | VALUES for key in tool._node.fields}),
    )


@pytest.mark.parametrize("tool", [PRIMITIVE, TOOL], ids=["primitive", "mixed"])
@settings(max_examples=300, deadline=None)
@given(data=st.data(), proxy=st.booleans())
def test_the_quick_path_agrees_with_the_full_path(tool: Tool, data: st.DataObject, proxy: bool) -> None:
    """Same values of the same types in the same order, or the same error text."""
    arguments = data.draw(arguments_for(tool))
    agree(tool, MappingProxyType(arguments) if proxy else arguments)


@settings(max_examples=300, deadline=None)
@given(value=st.none() | st.booleans() | st.integers() | st.floats())
def test_scalar_results_are_written_as_json_dumps_writes_them(value: Any) -> None:
    assert TOOL.encode(value).content == json.dumps(value)


@pytest.mark.parametrize(("value", "content"), [(Level.HIGH, "2"), (1e300, "1e+300"), (math.nan, "NaN")])
def test_results_of_subclasses_and_special_floats(value: Any, content: str) -> None:
    assert TOOL.encode(value).content == content


def test_an_integer_too_long_for_json_is_still_refused_as_before() -> None:
    with pytest.raises(TypeError, match="returned a int that cannot be encoded as JSON: Exceeds the limit"):
        TOOL.encode(10**5000)
