"""JSON schemas for output types, a small JSON-schema checker, and the strict converter.

`schema_for(cls)` describes an attrs class as a JSON schema (what the model is told).
`check(value, schema)` validates a decoded JSON value against a schema and returns one
message per problem, each naming the path (``items[2].price: expected a number, got
the string "x"``): the model reads these messages, so they must be precise. Values
that pass are structured into attrs instances by the converter from `make_converter`.

The checker implements the part of JSON Schema (2020-12) that output schemas use:
``type`` (also a list), ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``minProperties``, ``maxProperties``, ``items``,
``prefixItems``, ``minItems``, ``maxItems``, ``uniqueItems``, ``minLength``,
``maxLength``, ``pattern``, ``minimum``, ``maximum``, ``exclusiveMinimum``,
``exclusiveMaximum``, ``multipleOf``, ``anyOf``, ``oneOf``, ``allOf``, ``not``,
local ``$ref`` (``#/$defs/...``, ``#/definitions/...``), boolean schemas and OpenAPI's
``nullable``. Other keywords (``format``, ``title``, ``description``...) are ignored.
"""

from __future__ import annotations

import enum
import json
import math
import operator
import re
import types
import typing
from collections.abc import Mapping, MutableMapping, MutableSequence, MutableSet, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal, Union

import attrs
from cattrs import Converter

__all__ = ["UnsupportedSchema", "check", "describe", "make_converter", "schema_for"]


class UnsupportedSchema(TypeError):
    """A type or schema `TypedOutput` cannot describe to a model or check.

    Raised when the `TypedOutput` is built; the message names the class and field.

    .. versionadded:: 0.1
    """


# ----------------------------------------------------------------------------- attrs class -> schema

_PRIMITIVE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def schema_for(tp: Any) -> dict[str, Any]:
    """The JSON schema of an attrs class (fields by attribute name, as cattrs uses them).

    Supported field types: str, int, float, bool, None, Any, unions and Optional,
    Literal, Enum (str/int/float values), list / Sequence / tuple[X, ...] /
    tuple[X, Y] / set / frozenset, dict[str, X] / Mapping[str, X], and nested attrs
    classes (not recursive). A field's description comes from
    ``attrs.field(metadata={"description": ...})``; a field with a default is optional.

    Raises:
        UnsupportedSchema: naming the class, field and type that cannot be described.
    """
    if not (isinstance(tp, type) and attrs.has(tp)):
        raise UnsupportedSchema(f"expected an attrs class or a JSON schema dict, got {tp!r}")
    return _schema(tp, ())


def _schema(tp: Any, seen: tuple[type, ...]) -> dict[str, Any]:
    if tp is Any:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp in _PRIMITIVE:
        return {"type": _PRIMITIVE[tp]}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        inner = _schema(args[0], seen)
        texts = [a for a in tp.__metadata__ if isinstance(a, str)]
        return {**inner, "description": " ".join(texts)} if texts else inner
    if origin is Union or origin is types.UnionType:
        return {"anyOf": [_schema(a, seen) for a in args]}
    if origin is Literal:
        for value in args:
            if value is not None and type(value) not in (str, int, bool):
                raise UnsupportedSchema(f"Literal values must be str, int, bool or None, not {value!r}")
        return _enum(list(args))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [member.value for member in tp]
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise UnsupportedSchema(f"enum {tp.__name__}: member values must be str, int or float, not {value!r}")
        return _enum(values)
    if isinstance(tp, type) and attrs.has(tp):
        return _object(tp, seen)
    container = origin if origin is not None else tp
    if container in (list, Sequence, MutableSequence):
        return {"type": "array", "items": _schema(args[0] if args else Any, seen)}
    if container in (set, frozenset, AbstractSet, MutableSet):
        return {"type": "array", "items": _schema(args[0] if args else Any, seen), "uniqueItems": True}
    if container is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return {"type": "array", "items": _schema(args[0] if args else Any, seen)}
        items = [_schema(a, seen) for a in args]
        return {"type": "array", "prefixItems": items, "items": False, "minItems": len(items), "maxItems": len(items)}
    if container in (dict, Mapping, MutableMapping):
        if args and args[0] is not str:
            raise UnsupportedSchema(f"{tp!r}: JSON object keys are strings, so the key type must be str")
        return {"type": "object", "additionalProperties": _schema(args[1] if args else Any, seen)}
    raise UnsupportedSchema(
        f"{tp!r} is not supported (use str, int, float, bool, None, list, tuple, set, dict[str, ...], "
        "Literal, an Enum, an attrs class, or unions of these)"
    )


def _enum(values: list[Any]) -> dict[str, Any]:
    kinds = {_PRIMITIVE[type(v)] for v in values}
    schema: dict[str, Any] = {"type": kinds.pop()} if len(kinds) == 1 else {}
    schema["enum"] = values
    return schema


def _object(tp: type, seen: tuple[type, ...]) -> dict[str, Any]:
    if tp in seen:
        raise UnsupportedSchema(f"attrs class {tp.__name__} refers to itself; recursive types are not supported")
    try:
        attrs.resolve_types(tp)
    except Exception as exc:
        raise UnsupportedSchema(f"attrs class {tp.__name__}: cannot resolve its field types ({exc})") from exc
    properties: dict[str, Any] = {}
    required: list[str] = []
    for a in attrs.fields(tp):
        if not a.init:
            continue
        if a.type is None:
            raise UnsupportedSchema(f"attrs class {tp.__name__}: field {a.name!r} has no type annotation")
        try:
            prop = _schema(a.type, (*seen, tp))
        except UnsupportedSchema as exc:
            raise UnsupportedSchema(f"attrs class {tp.__name__}, field {a.name!r}: {exc}") from None
        description = a.metadata.get("description")
        if description:
            prop = {**prop, "description": str(description)}
        properties[a.name] = prop
        if a.default is attrs.NOTHING:
            required.append(a.name)
    schema: dict[str, Any] = {"type": "object"}
    doc = _summary(tp.__dict__.get("__doc__"))
    if doc:
        schema["description"] = doc
    schema.update(properties=properties, required=required, additionalProperties=False)
    return schema


def _summary(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    if not doc:
        return ""
    paragraph = doc.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


# ----------------------------------------------------------------------------- checking values


def describe(value: Any) -> str:
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


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "array":
        return isinstance(value, (list, tuple))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == "integer":  # JSON Schema counts 5.0 as an integer
        return isinstance(value, int) or (math.isfinite(value) and value.is_integer())
    return kind == "number" and (isinstance(value, int) or math.isfinite(value))


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 equals 1.0, objects and arrays compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


_ARTICLE = {"object": "an object", "array": "an array", "integer": "an integer"}


def _label(kinds: Sequence[str]) -> str:
    return " or ".join(_ARTICLE.get(k, "null" if k == "null" else f"a {k}") for k in kinds)


class _Checker:
    __slots__ = ("errors", "root")

    def __init__(self, root: Any) -> None:
        self.root = root
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path or '(the value)'}: {message}")

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise UnsupportedSchema(f"only local $ref (#/...) is supported, not {ref!r}")
        node = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else ():
            part = part.replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise UnsupportedSchema(f"$ref {ref!r} does not resolve") from None
        return node

    def accepts(self, value: Any, schema: Any) -> bool:
        probe = _Checker(self.root)
        probe.check(value, schema, "")
        return not probe.errors

    def check(self, value: Any, schema: Any, path: str) -> None:
        if schema is True or schema == {}:
            return
        if schema is False:
            self.fail(path, "no value is allowed here")
            return
        if not isinstance(schema, Mapping):
            raise UnsupportedSchema(f"a schema must be an object or a boolean, got {schema!r}")
        if "$ref" in schema:
            self.check(value, self.resolve(schema["$ref"]), path)
        if schema.get("nullable") is True and value is None:
            return
        kinds = schema.get("type")
        if kinds is not None:
            kinds = [kinds] if isinstance(kinds, str) else list(kinds)
            if not any(_is(value, k) for k in kinds):
                self.fail(path, f"expected {_label(kinds)}, got {describe(value)}")
                return
        if "const" in schema and not _same(value, schema["const"]):
            self.fail(path, f"expected {json.dumps(schema['const'])}, got {describe(value)}")
        if "enum" in schema and not any(_same(value, v) for v in schema["enum"]):
            self.fail(path, f"expected one of {json.dumps(list(schema['enum']))}, got {describe(value)}")
        if isinstance(value, str):
            self._string(value, schema, path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._number(value, schema, path)
        elif isinstance(value, Mapping):
            self._object(value, schema, path)
        elif isinstance(value, (list, tuple)):
            self._array(value, schema, path)
        for sub in schema.get("allOf", ()):
            self.check(value, sub, path)
        if "anyOf" in schema:
            self._any(value, schema["anyOf"], path)
        if "oneOf" in schema:
            matching = sum(self.accepts(value, sub) for sub in schema["oneOf"])
            if matching != 1:
                if matching == 0:
                    self._any(value, schema["oneOf"], path)
                else:
                    self.fail(path, f"matches {matching} of the oneOf alternatives; it must match exactly one")
        if "not" in schema and self.accepts(value, schema["not"]):
            self.fail(path, "matches a schema it must not match")

    def _any(self, value: Any, alternatives: Sequence[Any], path: str) -> None:
        if any(self.accepts(value, sub) for sub in alternatives):
            return
        # Explain with the alternative of the value's own JSON kind, when there is exactly one.
        own = [s for s in alternatives if isinstance(s, Mapping) and _kind_matches(value, s)]
        if len(own) == 1:
            self.check(value, own[0], path)
            return
        kinds: list[str] = [
            s["type"] for s in alternatives if isinstance(s, Mapping) and isinstance(s.get("type"), str)
        ]
        expected = _label(kinds) if len(kinds) == len(alternatives) else "a value matching one of the alternatives"
        self.fail(path, f"expected {expected}, got {describe(value)}")

    def _string(self, value: str, schema: Mapping[str, Any], path: str) -> None:
        if "minLength" in schema and len(value) < schema["minLength"]:
            self.fail(path, f"must be at least {schema['minLength']} characters long, got {len(value)}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            self.fail(path, f"must be at most {schema['maxLength']} characters long, got {len(value)}")
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            self.fail(path, f"must match the pattern {schema['pattern']!r}, got {describe(value)}")

    def _number(self, value: float, schema: Mapping[str, Any], path: str) -> None:
        for key, ok, words in (
            ("minimum", operator.ge, "at least"),
            ("maximum", operator.le, "at most"),
            ("exclusiveMinimum", operator.gt, "greater than"),
            ("exclusiveMaximum", operator.lt, "less than"),
        ):
            bound = schema.get(key)
            if isinstance(bound, (int, float)) and not isinstance(bound, bool) and not ok(value, bound):
                self.fail(path, f"must be {words} {bound}, got {value!r}")
        step = schema.get("multipleOf")
        if isinstance(step, (int, float)) and step > 0:
            quotient = value / step
            if not math.isclose(quotient, round(quotient), rel_tol=0, abs_tol=1e-9):
                self.fail(path, f"must be a multiple of {step}, got {value!r}")

    def _object(self, value: Mapping[str, Any], schema: Mapping[str, Any], path: str) -> None:
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                self.fail(_join(path, key), "required but missing")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                self.check(item, properties[key], _join(path, key))
            elif extra is False:
                accepted = ", ".join(properties) or "none"
                self.fail(_join(path, str(key)), f"unknown key (accepted keys: {accepted})")
            elif extra is not True:
                self.check(item, extra, _join(path, str(key)))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            self.fail(path, f"must have at least {schema['minProperties']} keys, got {len(value)}")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            self.fail(path, f"must have at most {schema['maxProperties']} keys, got {len(value)}")

    def _array(self, value: Sequence[Any], schema: Mapping[str, Any], path: str) -> None:
        prefix = schema.get("prefixItems", ())
        for i, (item, sub) in enumerate(zip(value, prefix, strict=False)):
            self.check(item, sub, _join(path, i))
        rest = schema.get("items", True)
        if rest is False and len(value) > len(prefix):
            self.fail(path, f"must have at most {len(prefix)} items, got {len(value)}")
        elif rest is not True:
            for i in range(len(prefix), len(value)):
                self.check(value[i], rest, _join(path, i))
        if "minItems" in schema and len(value) < schema["minItems"]:
            self.fail(path, f"must have at least {schema['minItems']} items, got {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"] and rest is not False:
            self.fail(path, f"must have at most {schema['maxItems']} items, got {len(value)}")
        if schema.get("uniqueItems"):
            for i in range(len(value)):
                if any(_same(value[i], value[j]) for j in range(i)):
                    self.fail(_join(path, i), f"repeats an earlier item ({describe(value[i])}); items must be unique")
                    break


def _kind_matches(value: Any, schema: Mapping[str, Any]) -> bool:
    kinds = schema.get("type")
    if kinds is None:
        return False
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    return any(_is(value, k) for k in kinds)


def check(value: Any, schema: Any) -> list[str]:
    """Validate `value` (decoded JSON) against `schema`; return the problems, [] when valid.

    Raises:
        UnsupportedSchema: the schema itself is malformed (not an object, a bad ``$ref``).
    """
    checker = _Checker(schema)
    checker.check(value, schema, "")
    return checker.errors


# ----------------------------------------------------------------------------- the converter


def make_converter() -> Converter:
    """A private cattrs converter for output values.

    Values reaching it already passed `check` against the class's schema, so it only
    builds objects: unions take the first arm whose schema accepts the value, sets
    unstructure to (sorted, when possible) lists, so every value is JSON again.
    """
    converter = Converter(forbid_extra_keys=True)

    def is_union(tp: Any) -> bool:
        return typing.get_origin(tp) in (Union, types.UnionType)

    def union_hook(tp: Any) -> Any:
        arms = [(_schema(arm, ()), arm) for arm in typing.get_args(tp)]

        def structure(value: Any, _: Any) -> Any:
            for schema, arm in arms:
                if not check(value, schema):
                    return None if arm is type(None) else converter.structure(value, arm)
            raise TypeError(f"{describe(value)} matches none of {tp!r}")

        return structure

    converter.register_structure_hook_factory(is_union, union_hook)

    def is_set(tp: Any) -> bool:
        return (typing.get_origin(tp) or tp) in (set, frozenset, AbstractSet, MutableSet)

    def as_list(value: Any) -> list[Any]:
        items = [converter.unstructure(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items

    converter.register_unstructure_hook_func(is_set, as_list)
    return converter
