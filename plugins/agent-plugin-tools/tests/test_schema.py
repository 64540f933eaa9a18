"""JSON schema generation from signatures and docstrings, and definition errors."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, Optional, Union

import attrs
import pytest

from agent_kernel import ToolContext
from agent_kernel.errors import ConfigurationError
from agent_plugin_tools import Toolbox, ToolDefinitionError, function_schema, tool


def schema_of(annotation: Any, **extra: Any) -> dict[str, Any]:
    """The property schema of a single parameter `x` annotated `annotation`."""

    def f(x):  # type: ignore[no-untyped-def]
        return x

    f.__annotations__ = {"x": annotation}
    schema = function_schema(f)
    assert schema["required"] == ["x"]
    return schema["properties"]["x"]


class Color(enum.Enum):
    """A colour."""

    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Ratio(enum.Enum):
    HALF = 0.5
    FULL = 1.0


@attrs.frozen
class Point:
    """A point on the plane.

    Attributes:
        x: horizontal position.
        y: vertical position.
    """

    x: int
    y: int = 0


@attrs.define
class Shape:
    name: str
    points: list[Point]
    color: Color = Color.RED
    tags: list[str] = attrs.Factory(list)
    weight: float = attrs.field(default=1.0, metadata={"description": "how heavy"})
    _secret: str = "s"


@attrs.define
class Tree:
    children: list[Tree]


# ----------------------------------------------------------------------------- primitives


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (type(None), {"type": "null"}),
        (Any, {}),
    ],
)
def test_primitive_schemas(annotation: Any, expected: dict[str, Any]) -> None:
    assert schema_of(annotation) == expected


def test_optional_and_unions() -> None:
    optional = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert schema_of(Optional[int]) == optional  # noqa: UP045 - the typing spelling must work too
    assert schema_of(int | None) == optional
    assert schema_of(Union[int, str]) == {"anyOf": [{"type": "integer"}, {"type": "string"}]}  # noqa: UP007
    assert schema_of(Point | str)["anyOf"][1] == {"type": "string"}


def test_lists_sets_and_sequences() -> None:
    assert schema_of(list[int]) == {"type": "array", "items": {"type": "integer"}}
    assert schema_of(Sequence[str]) == {"type": "array", "items": {"type": "string"}}
    assert schema_of(list) == {"type": "array", "items": {}}
    assert schema_of(set[str]) == {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    assert schema_of(frozenset[int]) == {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    assert schema_of(list[list[float]]) == {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}


def test_tuples() -> None:
    assert schema_of(tuple[int, ...]) == {"type": "array", "items": {"type": "integer"}}
    assert schema_of(tuple[int, str]) == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "items": False,
        "minItems": 2,
        "maxItems": 2,
    }


def test_dicts() -> None:
    assert schema_of(dict[str, int]) == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert schema_of(Mapping[str, list[str]]) == {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
    }
    assert schema_of(dict) == {"type": "object", "additionalProperties": {}}


def test_literals() -> None:
    assert schema_of(Literal["a", "b"]) == {"type": "string", "enum": ["a", "b"]}
    assert schema_of(Literal[1, 2, 3]) == {"type": "integer", "enum": [1, 2, 3]}
    assert schema_of(Literal["x", 1, None]) == {"enum": ["x", 1, None]}


def test_enums() -> None:
    assert schema_of(Color) == {"type": "string", "enum": ["red", "green"], "description": "A colour."}
    assert schema_of(Level) == {"type": "integer", "enum": [1, 2]}
    assert schema_of(Ratio) == {"type": "number", "enum": [0.5, 1.0]}


def test_attrs_class_is_a_nested_object() -> None:
    point = {
        "type": "object",
        "description": "A point on the plane.",
        "properties": {
            "x": {"type": "integer", "description": "horizontal position."},
            "y": {"type": "integer", "description": "vertical position.", "default": 0},
        },
        "required": ["x"],
        "additionalProperties": False,
    }
    assert schema_of(Point) == point
    assert schema_of(Shape) == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "points": {"type": "array", "items": point},
            "color": {"type": "string", "enum": ["red", "green"], "description": "A colour.", "default": "red"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "weight": {"type": "number", "description": "how heavy", "default": 1.0},
            "secret": {"type": "string", "default": "s"},
        },
        "required": ["name", "points"],
        "additionalProperties": False,
    }


def test_annotated_adds_a_description() -> None:
    assert schema_of(Annotated[int, "how many"]) == {"type": "integer", "description": "how many"}
    assert schema_of(Annotated[int, 42]) == {"type": "integer"}


# ----------------------------------------------------------------------------- functions


def search(query: str, limit: int = 10, *, exact: bool = False, ctx: ToolContext) -> list[str]:
    """Search the catalogue.

    Matches product names.

    Args:
        query: words to look for.
        limit: how many results
            to return at most.
        exact: match whole words only.
        ctx: not shown to the model.
    """
    return []


def test_function_schema_from_signature_and_docstring() -> None:
    assert function_schema(search) == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "words to look for."},
            "limit": {"type": "integer", "description": "how many results to return at most.", "default": 10},
            "exact": {"type": "boolean", "description": "match whole words only.", "default": False},
        },
        "required": ["query"],
        "additionalProperties": False,
    }


def test_tool_spec_name_description_and_options() -> None:
    [spec] = Toolbox([search], name="shop").specs
    assert spec.name == "search"
    assert spec.description == "Search the catalogue.\n\nMatches product names."
    assert spec.idempotent is False
    assert spec.plugin == "shop"
    assert dict(spec.parameters) == function_schema(search)

    @tool(name="find", description="Find things.", idempotent=True, timeout=2.5)
    def other(q: str) -> str:
        """Ignored docstring."""
        return q

    box = Toolbox([other])
    [spec] = box.specs
    assert (spec.name, spec.description, spec.idempotent) == ("find", "Find things.", True)
    assert box.tools["find"].timeout == 2.5
    assert tool(other) is other  # the decorator returns the function itself


def test_no_parameters_and_no_docstring() -> None:
    def ping() -> str:
        return "pong"

    assert function_schema(ping) == {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
    assert Toolbox([ping]).specs[0].description == ""


def test_defaults_that_are_not_json_are_left_out_but_stay_optional() -> None:
    def f(a: Optional[list[int]] = None, b: int = None, c: Point = Point(1, 2)) -> None:  # type: ignore[assignment]  # noqa: RUF013, UP045
        return None

    schema = function_schema(f)
    assert schema["required"] == []
    assert schema["properties"]["a"]["default"] is None
    assert "default" not in schema["properties"]["b"]  # None is not an integer
    assert schema["properties"]["c"]["default"] == {"x": 1, "y": 2}


def test_methods_and_callable_objects() -> None:
    class Counter:
        def bump(self, by: int) -> int:
            """Bump the counter."""
            return by

        async def __call__(self, text: str) -> str:
            return text

    counter = Counter()
    assert function_schema(counter.bump)["properties"] == {"by": {"type": "integer"}}
    box = Toolbox([counter.bump, tool(name="echo")(counter)])
    assert [s.name for s in box.specs] == ["bump", "echo"]
    assert box.tools["echo"].is_async and not box.tools["bump"].is_async


def test_schema_is_a_fresh_copy() -> None:
    first = function_schema(search)
    first["properties"]["query"]["type"] = "changed"
    assert function_schema(search)["properties"]["query"]["type"] == "string"


# ----------------------------------------------------------------------------- errors


def _annotated(annotation: Any) -> Callable[..., Any]:
    def broken(x):  # type: ignore[no-untyped-def]
        return x

    broken.__annotations__ = {"x": annotation}
    return broken


class Plain:
    pass


class Weird(enum.Enum):
    A = (1, 2)


@pytest.mark.parametrize(
    ("annotation", "words"),
    [
        (bytes, "bytes is not supported"),
        (Plain, "Plain is not supported"),
        (complex, "complex is not supported"),
        (dict[int, str], "key type must be str"),
        (list[dict[int, str]], "key type must be str"),
        (Literal[1.5], "Literal values"),
        (Weird, "member values must be"),
        (Tree, "recursive"),
        (Callable[[int], int], "not supported"),
        (Optional[Plain], "Plain is not supported"),  # noqa: UP045
    ],
)
def test_unsupported_annotations_fail_at_construction(annotation: Any, words: str) -> None:
    with pytest.raises(ToolDefinitionError) as info:
        Toolbox([_annotated(annotation)])
    message = str(info.value)
    assert "broken" in message and "parameter 'x'" in message and words in message
    assert isinstance(info.value, ConfigurationError) and isinstance(info.value, TypeError)


def test_nested_attrs_field_errors_name_the_field() -> None:
    @attrs.define
    class Holder:
        blob: bytes

    with pytest.raises(
        ToolDefinitionError, match=r"parameter 'x': attrs class Holder, field 'blob': bytes is not supported"
    ):
        Toolbox([_annotated(Holder)])


def test_missing_annotation_and_star_parameters() -> None:
    def untyped(a, b: int) -> int:  # type: ignore[no-untyped-def]
        return b

    def star(*args: int) -> int:
        return 0

    def kwargs(**options: int) -> int:
        return 0

    with pytest.raises(ToolDefinitionError, match=r"untyped.*parameter 'a' has no type annotation"):
        Toolbox([untyped])
    with pytest.raises(ToolDefinitionError, match=r"star.*\*args is not supported"):
        Toolbox([star])
    with pytest.raises(ToolDefinitionError, match=r"kwargs.*\*\*options is not supported"):
        Toolbox([kwargs])


def test_unresolvable_annotation() -> None:
    def f(x: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    with pytest.raises(
        ToolDefinitionError, match=r"test_unresolvable_annotation.<locals>.f: cannot resolve its type annotations"
    ):
        Toolbox([f])


def test_bad_names_duplicates_and_options() -> None:
    with pytest.raises(ToolDefinitionError, match="not a valid tool name"):
        Toolbox([lambda: "x"])
    with pytest.raises(ToolDefinitionError, match="not a valid tool name"):
        Toolbox([tool(name="has space")(search)])

    def a() -> str:
        return "a"

    with pytest.raises(ToolDefinitionError, match="both named 'a'"):
        Toolbox([a, tool(name="a")(search)])
    with pytest.raises(ToolDefinitionError, match="both ask for the ToolContext"):

        def two(c1: ToolContext, c2: ToolContext) -> None:
            return None

        Toolbox([two])
    with pytest.raises(ValueError, match="timeout"):
        tool(timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        Toolbox([a], timeout=-1)
    with pytest.raises(ValueError, match="parallel=True"):
        Toolbox([a], max_concurrency=2)
    with pytest.raises(ValueError, match="positive int"):
        Toolbox([a], parallel=True, max_concurrency=0)
    with pytest.raises(TypeError, match=r"list of functions, e.g. Toolbox\(\[a\]\)"):
        Toolbox(a)  # type: ignore[arg-type]
    with pytest.raises(ToolDefinitionError, match="generator"):

        async def stream() -> Any:
            yield 1

        Toolbox([stream])
