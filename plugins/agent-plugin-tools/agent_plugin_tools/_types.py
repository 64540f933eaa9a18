"""Type annotations compiled into checkers with a JSON schema, plus the strict converter.

`compile_type(annotation)` turns a supported annotation into a `Node`: its `schema`
is what the model is told, and `check` validates a decoded JSON value against it,
collecting messages that name the path and what was expected. Values that pass are
then structured into Python objects (attrs instances, enums, tuples, sets) by the
private cattrs converter from `make_converter`, whose primitive hooks are strict too:
nothing is coerced ("5" is never the integer 5).

Supported: str, int, float, bool, None, Any, list[X], Sequence[X], set[X],
frozenset[X], tuple[X, ...], tuple[X, Y], dict[str, X], Mapping[str, X], unions (and
Optional), Literal of str/int/bool/None, Enum with str/int/float values, attrs classes
(nested objects, not recursive), and Annotated[X, "description"].
"""

from __future__ import annotations

import enum
import json
import math
import types
import typing
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, MutableSet, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal, Union

import attrs
from cattrs import Converter
from cattrs.fns import identity

from ._docstring import parse_docstring


class UnsupportedType(TypeError):
    """An annotation this package cannot describe to a model or check."""


_JSON_TYPE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def describe_value(value: Any) -> str:
    """A short description of a decoded JSON value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {json.dumps(shown)}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def _join(path: str, key: str | int) -> str:
    """The path of an array item (int) or an object's field (str)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _entry(path: str, key: str) -> str:
    """The path of a value in a dict (always bracketed, so keys read as data)."""
    return f"{path}[{json.dumps(key)}]"


class Node:
    """A compiled annotation: a JSON schema and a checker."""

    __slots__ = ("annotation", "label", "schema")

    annotation: Any
    label: str
    schema: dict[str, Any]

    def check(self, value: Any, path: str, errors: list[str]) -> None:
        """Append to `errors` one message per problem found in `value` (at `path`)."""
        raise NotImplementedError

    def accepts(self, value: Any) -> bool:
        errors: list[str] = []
        self.check(value, "", errors)
        return not errors

    def unchanged_test(self) -> Callable[[Any], bool] | None:
        """A quick test for values that `check` accepts and that structure to themselves, or None.

        Only valid with a converter whose primitives are `plain_primitives`. The test
        may refuse valid values (they take the full check and structuring); it never
        passes one that `check` refuses or that structuring would change.
        """
        return None

    def _fail(self, value: Any, path: str, errors: list[str]) -> None:
        where = f"{path}: " if path else ""
        errors.append(f"{where}expected {self.label}, got {describe_value(value)}")


class AnyNode(Node):
    __slots__ = ()

    def __init__(self, annotation: Any) -> None:
        self.annotation, self.label, self.schema = annotation, "any value", {}

    def check(self, value: Any, path: str, errors: list[str]) -> None:
        return


class PrimitiveNode(Node):
    """str, int, float, bool or None."""

    __slots__ = ("kind",)

    def __init__(self, kind: type) -> None:
        self.annotation = kind
        self.kind = kind
        self.label = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}.get(kind, "null")
        self.schema = {"type": _JSON_TYPE[kind]}

    def check(self, value: Any, path: str, errors: list[str]) -> None:
        if not _is_primitive(value, self.kind):
            self._fail(value, path, errors)

    def unchanged_test(self) -> Callable[[Any], bool]:
        # Exactly of the kind (not 5 for a number, 5.0 for an integer, True for an
        # integer or a subclass): the strict hook then returns the value itself.
        kind = self.kind
        if kind is float:
            return lambda value: type(value) is float and math.isfinite(value)
        return lambda value: type(value) is kind


def _is_primitive(value: Any, kind: type) -> bool:
    if kind is bool or kind is str:
        return isinstance(value, kind)
    if kind is type(None):
        return value is None
    if isinstance(value, bool):
        return False
    if kind is int:  # JSON Schema counts 5.0 as an integer; it is structured to 5
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, (int, float)) and math.isfinite(value)  # float


class ArrayNode(Node):
    """list[X], Sequence[X], set[X], frozenset[X], tuple[X, ...]."""

    __slots__ = ("item", "unique")

    def __init__(self, annotation: Any, item: Node, *, unique: bool = False) -> None:
        self.annotation, self.item, self.unique = annotation, item, unique
        self.label = f"an array of {_plural(item.label)}"
        self.schema = {"type": "array", "items": item.schema}
        if unique:
            self.schema["uniqueItems"] = True

    def check(self, value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, (list, tuple)):
            self._fail(value, path, errors)
            return
        for i, item in enumerate(value):
            self.item.check(item, _join(path, i), errors)


class TupleNode(Node):
    """tuple[X, Y, ...] of a fixed length."""

    __slots__ = ("items",)

    def __init__(self, annotation: Any, items: list[Node]) -> None:
        self.annotation, self.items = annotation, items
        self.label = f"an array of exactly {len(items)} items ({', '.join(n.label for n in items)})"
        self.schema = {
            "type": "array",
            "prefixItems": [n.schema for n in items],
            "items": False,
            "minItems": len(items),
            "maxItems": len(items),
        }

    def check(self, value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, (list, tuple)):
            self._fail(value, path, errors)
            return
        if len(value) != len(self.items):
            where = f"{path}: " if path else ""
            items = "item" if len(value) == 1 else "items"
            errors.append(f"{where}expected {self.label}, got an array of {len(value)} {items}")
            return
        for i, (node, item) in enumerate(zip(self.items, value, strict=True)):
            node.check(item, _join(path, i), errors)


class MappingNode(Node):
    """dict[str, X] and Mapping[str, X]."""

    __slots__ = ("value",)

    def __init__(self, annotation: Any, value: Node) -> None:
        self.annotation, self.value = annotation, value
        self.label = f"an object with {_plural(value.label)} as values"
        self.schema = {"type": "object", "additionalProperties": value.schema}

    def check(self, value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            self._fail(value, path, errors)
            return
        for key, item in value.items():
            self.value.check(item, _entry(path, key), errors)


class LiteralNode(Node):
    """Literal["a", "b"] and Enum classes: one of a fixed set of JSON values."""

    __slots__ = ("values",)

    def __init__(self, annotation: Any, values: list[Any], schema: dict[str, Any] | None = None) -> None:
        self.annotation, self.values = annotation, values
        self.label = "one of " + json.dumps(values)
        kinds = {_JSON_TYPE[type(v)] for v in values}
        self.schema = {"type": kinds.pop()} if len(kinds) == 1 else {}
        self.schema["enum"] = list(values)
        self.schema.update(schema or {})

    def check(self, value: Any, path: str, errors: list[str]) -> None:
        for allowed in self.values:
            if value == allowed and _same_json_type(value, allowed):
                return
        self._fail(value, path, errors)


def _same_json_type(value: Any, allowed: Any) -> bool:
    if isinstance(allowed, bool) or isinstance(value, bool):
        return type(value) is type(allowed)
    if isinstance(allowed, float):
        return isinstance(value, (int, float))
    return type(value) is type(allowed)


class UnionNode(Node):
    """X | Y | ...: the first arm that accepts the value is the one it is structured as."""

    __slots__ = ("arms",)

    def __init__(self, annotation: Any, arms: list[Node]) -> None:
        self.annotation, self.arms = annotation, arms
        self.label = " or ".join(n.label for n in arms)
        self.schema = {"anyOf": [n.schema for n in arms]}

    def check(self, value: Any, path: str, errors: list[str]) -> None:
        if any(arm.accepts(value) for arm in self.arms):
            return
        # Report the arm of the value's own JSON kind when there is one (an object for
        # the object arm), else say what was expected in general.
        for arm in self.arms:
            if isinstance(arm, (ObjectNode, MappingNode)) and isinstance(value, Mapping):
                arm.check(value, path, errors)
                return
            if isinstance(arm, (ArrayNode, TupleNode)) and isinstance(value, (list, tuple)):
                arm.check(value, path, errors)
                return
        self._fail(value, path, errors)


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


#: A field or parameter without a JSON default to show.
NO_DEFAULT: Any = _NoDefault()


@attrs.frozen
class Field:
    """One property of an object: its JSON key, node, whether required, its description."""

    key: str
    node: Node
    required: bool
    description: str = ""
    default: Any = NO_DEFAULT


class ObjectNode(Node):
    """An attrs class (or the parameters of a function): an object with known keys."""

    __slots__ = ("fields",)

    def __init__(self, annotation: Any, fields: list[Field], description: str = "", label: str = "an object") -> None:
        self.annotation, self.fields, self.label = annotation, {f.key: f for f in fields}, label
        self.schema = {"type": "object"}
        if description:
            self.schema["description"] = description
        self.schema["properties"] = {f.key: property_schema(f) for f in fields}
        self.schema["required"] = [f.key for f in fields if f.required]
        self.schema["additionalProperties"] = False

    def check(self, value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, Mapping):
            self._fail(value, path, errors)
            return
        for key, item in value.items():
            f = self.fields.get(key) if isinstance(key, str) else None
            if f is None:
                accepted = ", ".join(self.fields) or "none"
                errors.append(f"{_join(path, str(key))}: unknown key (accepted keys: {accepted})")
            else:
                f.node.check(item, _join(path, key), errors)
        for key, f in self.fields.items():
            if f.required and key not in value:
                errors.append(f"{_join(path, key)}: required but missing ({f.node.label})")


def property_schema(f: Field) -> dict[str, Any]:
    """The schema of one property: the node's, plus description and default."""
    schema = dict(f.node.schema)
    if f.description:
        schema["description"] = f.description
    if f.default is not NO_DEFAULT:
        schema["default"] = f.default
    return schema


def _plural(label: str) -> str:
    for article in ("an ", "a "):
        if label.startswith(article):
            label = label[len(article) :]
            return label if label.endswith("s") else label + "s"
    return label


def json_default(node: Node, default: Any, converter: Converter) -> Any:
    """`default` as JSON for a schema's ``default``, or NO_DEFAULT if it is not JSON or not valid."""
    if default is None or isinstance(default, (str, int, float, bool)):
        value = default
    else:
        try:
            value = converter.unstructure(default)
            json.dumps(value)
        except Exception:
            return NO_DEFAULT
    return value if node.accepts(value) else NO_DEFAULT


# ----------------------------------------------------------------------------- compiling


def compile_type(annotation: Any, converter: Converter, _seen: tuple[type, ...] = ()) -> Node:
    """Compile `annotation` into a `Node`.

    Args:
        annotation: a resolved type annotation (no strings).
        converter: the converter that will structure values of this type (it
            unstructures defaults for the schema).

    Raises:
        UnsupportedType: the annotation (or a part of it) is not supported; the
            message says which part and why.
    """
    return _compile(annotation, converter, _seen)


def _compile(tp: Any, converter: Converter, seen: tuple[type, ...]) -> Node:
    if tp is Any:
        return AnyNode(tp)
    if tp is None or tp is type(None):
        return PrimitiveNode(type(None))
    if tp in (str, int, float, bool):
        return PrimitiveNode(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        inner = _compile(args[0], converter, seen)
        texts = [a for a in tp.__metadata__ if isinstance(a, str)]
        if texts:
            return _Described(inner, " ".join(texts))
        return inner
    if origin is Union or origin is types.UnionType:
        return UnionNode(tp, [_compile(a, converter, seen) for a in args])
    if origin is Literal:
        for value in args:
            if value is not None and type(value) not in (str, int, bool):
                raise UnsupportedType(f"Literal values must be str, int, bool or None, not {value!r}")
        return LiteralNode(tp, list(args))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _compile_enum(tp)
    if isinstance(tp, type) and attrs.has(tp):
        return _compile_attrs(tp, converter, seen)
    container = origin if origin is not None else tp
    if container in (list, Sequence, MutableSequence):
        return ArrayNode(tp, _compile(_one(tp, args), converter, seen))
    if container in (set, frozenset, AbstractSet, MutableSet):
        return ArrayNode(tp, _compile(_one(tp, args), converter, seen), unique=True)
    if container is tuple:
        if not args:
            return ArrayNode(tp, AnyNode(Any))
        if len(args) == 2 and args[1] is Ellipsis:
            return ArrayNode(tp, _compile(args[0], converter, seen))
        return TupleNode(tp, [_compile(a, converter, seen) for a in args])
    if container in (dict, Mapping, MutableMapping):
        if args and args[0] is not str:
            raise UnsupportedType(f"{_name(tp)}: JSON object keys are strings, so the key type must be str")
        return MappingNode(tp, _compile(args[1], converter, seen) if args else AnyNode(Any))
    if isinstance(tp, (str, typing.ForwardRef)):
        raise UnsupportedType(f"unresolved forward reference {tp!r}")
    raise UnsupportedType(
        f"{_name(tp)} is not supported (use str, int, float, bool, None, list, tuple, dict[str, ...], "
        "Literal, an Enum, an attrs class, or unions of these)"
    )


def _one(tp: Any, args: tuple[Any, ...]) -> Any:
    return args[0] if args else Any


class _Described(Node):
    """A node with a description from ``Annotated[X, "text"]``."""

    __slots__ = ("inner",)

    def __init__(self, inner: Node, description: str) -> None:
        self.inner, self.annotation, self.label = inner, inner.annotation, inner.label
        self.schema = {**inner.schema, "description": description}

    def check(self, value: Any, path: str, errors: list[str]) -> None:
        self.inner.check(value, path, errors)

    def unchanged_test(self) -> Callable[[Any], bool] | None:
        return self.inner.unchanged_test()


def _compile_enum(tp: type[enum.Enum]) -> Node:
    values = [member.value for member in tp]
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise UnsupportedType(f"enum {tp.__name__}: member values must be str, int or float, not {value!r}")
    plain = [_plain(v) for v in values]
    doc = parse_docstring(tp.__dict__.get("__doc__")).description
    return LiteralNode(tp, plain, {"description": doc} if doc else None)


def _plain(value: Any) -> Any:
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _compile_attrs(tp: type, converter: Converter, seen: tuple[type, ...]) -> Node:
    if tp in seen:
        raise UnsupportedType(f"attrs class {tp.__name__} refers to itself; recursive types are not supported")
    try:
        attrs.resolve_types(tp)
    except Exception as exc:
        raise UnsupportedType(f"attrs class {tp.__name__}: cannot resolve its field types ({exc})") from exc
    docs = parse_docstring(tp.__dict__.get("__doc__"))
    fields: list[Field] = []
    for a in attrs.fields(tp):
        if not a.init:
            continue
        if a.type is None:
            raise UnsupportedType(f"attrs class {tp.__name__}: field {a.name!r} has no type annotation")
        try:
            node = _compile(a.type, converter, (*seen, tp))
        except UnsupportedType as exc:
            raise UnsupportedType(f"attrs class {tp.__name__}, field {a.name!r}: {exc}") from None
        key = a.alias or a.name
        description = a.metadata.get("description") or docs.parameters.get(a.name) or docs.parameters.get(key, "")
        default: Any = NO_DEFAULT
        if a.default is not attrs.NOTHING and not isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
            default = json_default(node, a.default, converter)
        fields.append(Field(key, node, a.default is attrs.NOTHING, description, default))
    return ObjectNode(tp, fields, docs.description, label=f"a {tp.__name__} object")


def _name(tp: Any) -> str:
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


# ----------------------------------------------------------------------------- converter


def _strict(kind: type) -> Any:
    def structure(value: Any, _: Any) -> Any:
        if not _is_primitive(value, kind):
            raise TypeError(f"expected {PrimitiveNode(kind).label}, got {describe_value(value)}")
        return kind(value) if kind is int or kind is float else value

    return structure


_STRICT = {kind: _strict(kind) for kind in (str, int, float, bool, type(None))}


def plain_primitives(converter: Converter) -> bool:
    """Whether `converter` treats JSON primitives as `make_converter`'s does.

    That is: the strict structure hooks, and no unstructure hooks (values are written
    as they are). Only then may a `Node.unchanged_test` skip structuring and may a
    result's primitive value be written without unstructuring.
    """
    return all(
        converter.get_structure_hook(kind) is hook and converter.get_unstructure_hook(kind) is identity
        for kind, hook in _STRICT.items()
    )


def make_converter() -> Converter:
    """A private cattrs converter: strict primitives, unions by first accepting arm.

    Attrs classes use their ``__init__`` aliases as keys and refuse unknown keys.
    """
    converter = Converter(forbid_extra_keys=True, use_alias=True)
    for kind, hook in _STRICT.items():
        converter.register_structure_hook(kind, hook)

    def is_union(tp: Any) -> bool:
        return typing.get_origin(tp) in (Union, types.UnionType)

    def union_hook(tp: Any) -> Any:
        arms = [(compile_type(arm, converter), arm) for arm in typing.get_args(tp)]

        def structure(value: Any, _: Any) -> Any:
            for node, arm in arms:
                if node.accepts(value):
                    return None if arm is type(None) else converter.structure(value, arm)
            raise TypeError(f"expected {' or '.join(n.label for n, _ in arms)}, got {describe_value(value)}")

        return structure

    converter.register_structure_hook_factory(is_union, union_hook)
    return converter
