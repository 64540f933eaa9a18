"""What input processors and output checks return, and how processors are named."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any, Union

from attrs import frozen

from agent_kernel import RunState

__all__ = ["PASS", "Block", "InputCheck", "Pass", "Processor", "Retry", "Rewrite"]


@frozen
class Pass:
    """Verdict: the text is fine (returning None means the same).

    .. versionadded:: 0.1
    """


#: The `Pass` verdict.
PASS = Pass()


@frozen
class Block:
    """Verdict: refuse the text; the run ends ``stopped`` with `code` and `reason` as detail.

    `code` defaults to ``"<plugin name>.input.<processor>"`` or
    ``"<plugin name>.output.<check>"``.

    .. versionadded:: 0.1
    """

    reason: str
    code: str | None = None


@frozen
class Rewrite:
    """Verdict of an input processor: use `text` as the user's input instead.

    Later processors see `text`; the user's message is replaced once all have passed.

    .. versionadded:: 0.1
    """

    text: str


@frozen
class Retry:
    """Verdict of an output check: ask the model again; `feedback` is sent as a user message.

    .. versionadded:: 0.1
    """

    feedback: str


InputVerdict = Union[Pass, Block, Rewrite, None]  # noqa: UP007 - a runtime alias
OutputVerdict = Union[Pass, Block, Retry, None]  # noqa: UP007
ProcessorFunction = Callable[[str, RunState], Any]


@frozen
class InputCheck:
    """What the input processors decided, kept in run state (journaled, so checked once).

    `action` is "passed", "blocked" or "rewritten"; `processor` names the processor
    that blocked or (last) rewrote the input, `code` the stop code of a block.
    """

    action: str
    processor: str = ""
    code: str = ""


_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@frozen
class Processor:
    """A named input processor or output check; `is_async` when it must be awaited."""

    name: str
    function: ProcessorFunction
    is_async: bool


def _is_async(function: Any) -> bool:
    while isinstance(function, functools.partial):
        function = function.func
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(type(function), "__call__", None)  # noqa: B004 - a callable object's own __call__
    return not inspect.isfunction(function) and call is not None and inspect.iscoroutinefunction(call)


def _default_name(function: Any) -> str | None:
    name = getattr(function, "guardrail_name", None)
    if isinstance(name, str):
        return name
    target = function
    while isinstance(target, functools.partial):
        target = target.func
    name = getattr(target, "__name__", None)
    if isinstance(name, str) and _NAME.match(name):
        return name
    return None


def processors(items: Iterable[Any], kind: str) -> tuple[Processor, ...]:
    """Name and classify `items`: functions, or ``(name, function)`` pairs.

    A function's name is its ``guardrail_name`` attribute or ``__name__``; a lambda
    gets ``<kind><index>`` (``input1``...). Names must be unique within `kind`.

    Raises:
        TypeError: an item is not callable.
        ValueError: a bad or repeated name.
    """
    out: list[Processor] = []
    for index, item in enumerate(items, 1):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            name, function = item
        else:
            function, name = item, _default_name(item) or f"{kind}{index}"
        if not callable(function):
            raise TypeError(f"{kind} processor {name!r} is not callable: {function!r}")
        if not _NAME.match(name):
            raise ValueError(f"{kind} processor name must be letters, digits, '_' or '-', got {name!r}")
        if any(p.name == name for p in out):
            raise ValueError(
                f"two {kind} processors are named {name!r}; pass (name, function) pairs to tell them apart"
            )
        out.append(Processor(name, function, _is_async(function)))
    return tuple(out)


def input_verdict(processor: Processor, verdict: Any) -> Pass | Block | Rewrite:
    """Check an input processor's return value."""
    if verdict is None:
        return PASS
    if isinstance(verdict, (Pass, Block)) or (isinstance(verdict, Rewrite) and isinstance(verdict.text, str)):
        return verdict
    raise TypeError(_bad(processor, "input processor", verdict, "Pass(), Block(reason) or Rewrite(text)"))


def output_verdict(processor: Processor, verdict: Any) -> Pass | Block | Retry:
    """Check an output check's return value."""
    if verdict is None:
        return PASS
    if isinstance(verdict, (Pass, Block, Retry)):
        return verdict
    if isinstance(verdict, Rewrite):
        raise TypeError(
            f"output check {processor.name!r} returned Rewrite: an answer cannot be rewritten (the kernel has no "
            "patch that replaces a message); return Retry(feedback) or Block(reason)"
        )
    raise TypeError(_bad(processor, "output check", verdict, "Pass(), Block(reason) or Retry(feedback)"))


def _bad(processor: Processor, what: str, verdict: Any, expected: str) -> str:
    if inspect.isawaitable(verdict):
        if inspect.iscoroutine(verdict):
            verdict.close()  # never awaited: do not warn about it
        return f"{what} {processor.name!r} returned an awaitable from a plain function; declare it with async def"
    return f"{what} {processor.name!r} returned {verdict!r}; expected {expected} (or None)"


#: What a flow asks its driver to call: the processor, the text and the state.
Ask = tuple[Processor, str, RunState]
