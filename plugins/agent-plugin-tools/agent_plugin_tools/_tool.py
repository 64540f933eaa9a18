"""One tool: a Python function compiled into a schema, an argument checker and a runner."""

from __future__ import annotations

import copy
import functools
import inspect
import json
import math
import re
import typing
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, overload

import anyio
import anyio.to_thread
from attrs import frozen
from cattrs import Converter
from cattrs.v import transform_error

from agent_kernel import ToolContext, ToolResult, ToolSpec
from agent_kernel.errors import ConfigurationError, ToolInputError

from ._docstring import parse_docstring
from ._types import (
    NO_DEFAULT,
    Field,
    ObjectNode,
    UnsupportedType,
    compile_type,
    json_default,
    make_converter,
    plain_primitives,
)

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = "__agent_tool_options__"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_ERRORS = 10

#: The argument mappings `Tool.validate`'s quick path reads (the kernel's are read-only
#: proxies); any other value takes the full path, which also refuses non-mappings.
_PLAIN_MAPPINGS = (MappingProxyType, dict)

#: Results written as JSON without json.dumps, by exact type (subclasses such as IntEnum
#: are unstructured first): the text json.dumps gives for them.
_JSON_SCALARS: dict[type, Callable[[Any], str]] = {
    int: int.__repr__,
    float: lambda value: float.__repr__(value) if math.isfinite(value) else json.dumps(value),
    bool: lambda value: "true" if value else "false",
    type(None): lambda _: "null",
}


class ToolDefinitionError(ConfigurationError, TypeError):
    """A function cannot be made into a tool: unsupported annotation, bad name or option.

    Raised when the `Toolbox` is built; the message names the function and parameter.

    .. versionadded:: 0.1
    """


@frozen
class ToolOptions:
    """Per-tool options set with `tool`."""

    name: str | None = None
    description: str | None = None
    idempotent: bool = False
    timeout: float | None = None


@overload
def tool(function: F, /) -> F: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
    timeout: float | None = None,
) -> Callable[[F], F]: ...


def tool(
    function: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
    timeout: float | None = None,
) -> Any:
    """Set a tool's options; use bare (``@tool``) or with arguments (``@tool(timeout=5)``).

    The function itself is returned unchanged (it only gains an attribute), so it can
    still be called directly.

    Args:
        name: the name the model calls (default: the function's ``__name__``);
            1 to 64 letters, digits, ``_`` or ``-``.
        description: what the model is told (default: the docstring's description).
        idempotent: running the call twice has the same effect as once, so after a
            crash left its outcome unknown the kernel may run it again.
        timeout: seconds the call may take (overrides the `Toolbox` timeout).

    .. versionadded:: 0.1
    """
    _check_timeout(timeout, "tool(timeout=...)")
    options = ToolOptions(name, description, idempotent, timeout)

    def apply(f: F) -> F:
        if not callable(f):
            raise TypeError(f"@tool decorates a function, not {f!r}")
        setattr(f, _OPTIONS, options)
        return f

    return apply if function is None else apply(function)


def _check_timeout(timeout: float | None, where: str) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
        raise ValueError(f"{where} must be a positive number of seconds or None, got {timeout!r}")


def _qualname(function: Any) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None) or repr(function)
    return f"{module}.{name}" if module else name


def _hints(function: Any, where: str) -> dict[str, Any]:
    target = function
    if not (inspect.isfunction(function) or inspect.ismethod(function)) and callable(function):
        target = type(function).__call__ if not isinstance(function, functools.partial) else function.func
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(f"{where}: cannot resolve its type annotations: {type(exc).__name__}: {exc}") from exc


@frozen
class _Param:
    name: str
    positional: bool  # positional-only: passed by position
    default: Any  # inspect.Parameter.empty when required


def _is_async(function: Any) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    if inspect.isroutine(function) or isinstance(function, functools.partial):
        return False
    return inspect.iscoroutinefunction(type(function).__call__)  # a callable object


class Tool:
    """A tool compiled from a function; the kernel calls it as ``await tool(arguments, ctx)``.

    Attributes:
        spec: what the model is told (name, description, JSON schema, idempotent).
        function: the Python function.
        timeout: seconds a call may take, or None.
    """

    __slots__ = (
        "_context",
        "_converter",
        "_node",
        "_params",
        "_required",
        "_scalars",
        "_unchanged_tests",
        "function",
        "is_async",
        "spec",
        "timeout",
    )

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        plugin: str = "",
        timeout: float | None = None,
        converter: Converter | None = None,
    ) -> None:
        if not callable(function):
            raise ToolDefinitionError(f"a tool must be a function, not {function!r}")
        where = f"tool function {_qualname(function)}"
        options: ToolOptions = getattr(function, _OPTIONS, None) or ToolOptions()
        name: str = options.name or str(getattr(function, "__name__", ""))
        if not _NAME.match(name):
            raise ToolDefinitionError(
                f"{where}: {name!r} is not a valid tool name (1-64 letters, digits, '_' or '-'); "
                "set one with @tool(name=...)"
            )
        if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
            raise ToolDefinitionError(f"{where}: generator functions cannot be tools; return the value instead")
        self._converter = converter or make_converter()
        self._node, self._params, self._context = _compile_parameters(function, where, self._converter)
        # For `validate`'s quick path: the required parameters, and each parameter's test
        # for values that need no structuring (primitives of exactly their type).
        self._required = frozenset(key for key, f in self._node.fields.items() if f.required)
        # (Both quick paths skip the converter, so only one that treats primitives as
        # make_converter's does allows them.)
        plain = plain_primitives(self._converter)
        tests = {key: f.node.unchanged_test() for key, f in self._node.fields.items()} if plain else {}
        self._unchanged_tests = {key: test for key, test in tests.items() if test is not None}
        self._scalars = _JSON_SCALARS if plain else {}
        docs = parse_docstring(inspect.getdoc(function))
        description = options.description if options.description is not None else docs.description
        self.spec = ToolSpec(name, description, self._node.schema, options.idempotent, plugin)
        self.function = function
        self.is_async = _is_async(function)
        self.timeout = options.timeout if options.timeout is not None else timeout

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"<Tool {self.spec.name!r} of {_qualname(self.function)}>"

    # ------------------------------------------------------------------ arguments

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Check the model's `arguments` and structure them into the function's types.

        Returns:
            The keyword arguments by parameter name (the `ToolContext` not included).

        Raises:
            ToolInputError: naming each wrong parameter and what it expected, each
                missing required parameter and each unknown one.
        """
        # Quick path: every required parameter given and every argument one that needs
        # no structuring; anything else (an error included) takes the full path.
        if type(arguments) in _PLAIN_MAPPINGS and arguments.keys() >= self._required:
            tests = self._unchanged_tests
            out: dict[str, Any] = {}
            for key, value in arguments.items():
                test = tests.get(key)
                if test is None or type(key) is not str or not test(value):
                    break
                out[key] = value
            else:
                return out
        return self._check_and_structure(arguments)

    def _check_and_structure(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(arguments, Mapping):
            raise ToolInputError(f"expected a JSON object of arguments, got {type(arguments).__name__}")
        errors: list[str] = []
        for key, value in arguments.items():
            f = self._node.fields.get(key) if isinstance(key, str) else None
            if f is None:
                accepted = ", ".join(self._node.fields) or "none"
                errors.append(f"unknown parameter {key!r} (the tool takes: {accepted})")
            else:
                before = len(errors)
                f.node.check(value, key, errors)
                errors[before:] = [f"parameter {text}" for text in errors[before:]]
        for key, f in self._node.fields.items():
            if f.required and key not in arguments:
                errors.append(f"missing required parameter {key!r} ({f.node.label})")
        if errors:
            more = len(errors) - _MAX_ERRORS
            text = "; ".join(errors[:_MAX_ERRORS]) + (f"; and {more} more" if more > 0 else "")
            raise ToolInputError(text)
        out: dict[str, Any] = {}
        for key, value in arguments.items():
            node = self._node.fields[key].node
            try:
                out[key] = self._converter.structure(value, _bare(node.annotation))
            except Exception as exc:  # attrs validators, enum lookups: say which argument
                raise ToolInputError("; ".join(f"parameter {text}" for text in _messages(exc, key))) from exc
        return out

    def _call_args(self, kwargs: dict[str, Any], ctx: ToolContext) -> tuple[list[Any], dict[str, Any]]:
        if self._context is not None:
            kwargs[self._context] = ctx
        args: list[Any] = []
        for p in self._params:
            if not p.positional:
                break
            args.append(kwargs.pop(p.name) if p.name in kwargs else p.default)
        return args, kwargs

    # ------------------------------------------------------------------ running

    async def __call__(self, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        """Validate, call the function (sync ones in a worker thread) and encode its result.

        Raises:
            ToolInputError: the arguments are invalid (the model sees why).
            Exception: whatever the function raised (the kernel asks
                ``agent_on_tool_error`` and, by default, tells the model it failed).
        """
        args, kwargs = self._call_args(self.validate(arguments), ctx)
        timeout = self.timeout
        if timeout is None:
            value = await self._invoke(args, kwargs, abandon=False)
        else:
            with anyio.move_on_after(timeout) as scope:
                value = await self._invoke(args, kwargs, abandon=True)
            if scope.cancelled_caught:
                return ToolResult(self._timed_out(timeout), is_error=True)
        return self.encode(value)

    def _invoke(self, args: list[Any], kwargs: dict[str, Any], *, abandon: bool) -> Awaitable[Any]:
        if self.is_async:
            return self.function(*args, **kwargs)  # type: ignore[no-any-return]
        call = functools.partial(self.function, *args, **kwargs)
        # A thread cannot be interrupted: without a timeout, cancelling the run waits for
        # the call to return (no thread outlives its run); with one, the thread is
        # abandoned when the time is up, finishes in the background, and its result is
        # dropped.
        return anyio.to_thread.run_sync(call, abandon_on_cancel=abandon)

    def _timed_out(self, timeout: float) -> str:
        text = f"Tool {self.spec.name!r} timed out after {timeout:g} s"
        if self.is_async:
            return text + " and was cancelled."
        return text + "; it may still complete in the background, so check before calling it again."

    def encode(self, value: Any) -> ToolResult:
        """Turn a return value into the result the model sees.

        A `ToolResult` is used as is, a str is the content, anything else is JSON
        (attrs classes through the converter, sets as arrays).

        Raises:
            TypeError: the value cannot be encoded as JSON.
        """
        if isinstance(value, ToolResult):
            return value
        if isinstance(value, str):
            return ToolResult(value)
        scalar = self._scalars.get(type(value))
        if scalar is None and inspect.isawaitable(value):
            raise TypeError(f"tool {self.spec.name!r} returned an awaitable; define it with `async def`")
        try:
            if scalar is not None:
                return ToolResult(scalar(value))
            return ToolResult(json.dumps(self._converter.unstructure(value), ensure_ascii=False, default=_json_default))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"tool {self.spec.name!r} returned a {type(value).__name__} that cannot be encoded as JSON: {exc}"
            ) from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _bare(annotation: Any) -> Any:
    """`annotation` without an outer ``Annotated``."""
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _messages(exc: BaseException, key: str) -> list[str]:
    def fmt(error: BaseException, _type: Any) -> str:
        return str(error) or type(error).__name__

    try:
        found = transform_error(exc, path=key, format_exception=fmt)
    except Exception:
        return [f"{key}: {exc}"]
    out = []
    for text in found:  # cattrs writes "what @ where"
        what, _, where = text.rpartition(" @ ")
        out.append(f"{where}: {what}" if what else text)
    return out


def _compile_parameters(function: Any, where: str, converter: Converter) -> tuple[ObjectNode, list[_Param], str | None]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"{where}: cannot read its signature ({exc})") from exc
    hints = _hints(function, where)
    docs = parse_docstring(inspect.getdoc(function))
    fields: list[Field] = []
    params: list[_Param] = []
    context: str | None = None
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            star = "*" if p.kind is p.VAR_POSITIONAL else "**"
            raise ToolDefinitionError(
                f"{where}: parameter {star}{p.name} is not supported; list the parameters explicitly"
            )
        params.append(_Param(p.name, p.kind is p.POSITIONAL_ONLY, p.default))
        if p.name not in hints:
            raise ToolDefinitionError(f"{where}: parameter {p.name!r} has no type annotation")
        annotation = hints[p.name]
        if _bare(annotation) is ToolContext:
            if context is not None:
                raise ToolDefinitionError(
                    f"{where}: parameters {context!r} and {p.name!r} both ask for the ToolContext"
                )
            context = p.name
            continue
        try:
            node = compile_type(annotation, converter)
        except UnsupportedType as exc:
            raise ToolDefinitionError(f"{where}: parameter {p.name!r}: {exc}") from None
        required = p.default is p.empty
        default = NO_DEFAULT if required else json_default(node, p.default, converter)
        fields.append(Field(p.name, node, required, docs.parameters.get(p.name, ""), default))
    return ObjectNode(function, fields), params, context


def function_schema(function: Callable[..., Any]) -> dict[str, Any]:
    """The JSON schema of `function`'s parameters, as a `Toolbox` tells the model.

    Built from the type hints and the Google-style docstring (``Args:`` entries give
    the descriptions). A `ToolContext` parameter is left out.

    Raises:
        ToolDefinitionError: an annotation is missing or unsupported (the message
            names the function and the parameter).

    .. versionadded:: 0.1
    """
    return copy.deepcopy(dict(Tool(function).spec.parameters))
