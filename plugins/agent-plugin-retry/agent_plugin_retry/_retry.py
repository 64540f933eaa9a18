"""`Retry`: decides what the kernel does when an inference or a tool call fails."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, final

import attrs
import trio
from attrs import field, frozen

from agent_kernel import Context, Fail, Fallback, Request, ToolCall, hookimpl
from agent_kernel import Retry as _Again
from agent_kernel.errors import InferenceError, ToolInputError

__all__ = ["Backoff", "Retry", "is_retryable"]

_log = logging.getLogger("agent_plugin_retry")

Jitter = Literal["full", "equal", "none"]
Classifier = Callable[[BaseException], bool]


def _attempts(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1 (tries in all, the first included), got {value!r}")


def _seconds(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise ValueError(f"{attribute.name} must be a number of seconds >= 0, got {value!r}")


def _jitter(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in ("full", "equal", "none"):
        raise ValueError(f"jitter must be 'full', 'equal' or 'none', got {value!r}")


@frozen
class Backoff:
    """How often, and how patiently, one failing thing is tried again.

    The delay before retry ``n`` (1 for the first retry) is drawn below the cap
    ``min(max_delay, base_delay * 2 ** (n - 1))``: uniformly in ``[0, cap]`` with
    ``"full"`` jitter (the default, AWS's "full jitter"), in ``[cap / 2, cap]`` with
    ``"equal"``, exactly ``cap`` with ``"none"``.

    Attributes:
        max_attempts: tries in all, the first included (1 never retries).
        base_delay: the cap of the first retry's delay, in seconds.
        max_delay: no single delay is longer, whatever the server's ``retry_after``.
        max_total: the delays spent on one request (or one tool call) add up to at
            most this many seconds; a retry whose delay does not fit is not made.
        jitter: ``"full"``, ``"equal"`` or ``"none"``.

    .. versionadded:: 0.1
    """

    max_attempts: int = field(default=3, validator=_attempts)
    base_delay: float = field(default=0.5, validator=_seconds)
    max_delay: float = field(default=30.0, validator=_seconds)
    max_total: float = field(default=120.0, validator=_seconds)
    jitter: Jitter = field(default="full", validator=_jitter)

    def cap(self, retry: int) -> float:
        """The longest delay before retry number `retry` (1 for the first retry)."""
        exponent = max(0, retry - 1)
        if exponent >= 1000:  # 2.0 ** 1024 overflows; the cap was reached long before
            return self.max_delay
        return min(self.max_delay, self.base_delay * 2.0**exponent)

    def delay(self, retry: int, rng: random.Random) -> float:
        """A delay for retry number `retry`, drawn with this backoff's jitter."""
        cap = self.cap(retry)
        if self.jitter == "full":
            value = rng.uniform(0.0, cap)
        elif self.jitter == "equal":
            value = cap / 2 + rng.uniform(0.0, cap / 2)
        else:
            value = cap
        return min(max(value, 0.0), cap)  # uniform() may round a hair past its bounds


def is_retryable(error: BaseException) -> bool:
    """The default classification: may trying again succeed?

    * `InferenceError`: its ``retryable`` flag (the executor knows: rate limits, 5xx
      and timeouts are, a bad request is not).
    * `ToolInputError`: never (the kernel already sends it to the model).
    * any other exception with a boolean ``retryable`` attribute: that attribute.
    * `TimeoutError` (which ``anyio.fail_after`` raises), `trio.TooSlowError` and
      `ConnectionError` (refused, reset, aborted, broken pipe): yes.
    * everything else: no. A bug does not go away by trying again.

    .. versionadded:: 0.1
    """
    if isinstance(error, InferenceError):
        return bool(error.retryable)
    if isinstance(error, ToolInputError):
        return False
    flag = getattr(error, "retryable", None)
    if isinstance(flag, bool):
        return flag
    return isinstance(error, (TimeoutError, trio.TooSlowError, ConnectionError))


def _retry_after(error: BaseException) -> float | None:
    """Seconds the server asked us to wait (`InferenceError.retry_after`, or any such attribute)."""
    value = getattr(error, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return max(0.0, float(value))


class _Progress:
    """What one failing request (or tool call) has used so far."""

    __slots__ = ("chain", "index", "spent", "tries")

    def __init__(self, chain: tuple[str, ...]) -> None:
        self.chain = chain  # models in the order they are tried; the first is the run's
        self.index = 0  # position in `chain` of the model now being tried
        self.tries = 0  # failures on that model
        self.spent = 0.0  # seconds of delay decided so far, over the whole chain


@final
class Retry:
    """A decision plugin: retries failed inferences (and, opted in, idempotent tools).

    It answers `agent_on_inference_error` and `agent_on_tool_error`; the kernel
    carries the decisions out (sleeps, re-sends, journals a ``Retried`` entry, emits a
    `RetryScheduled` event and counts ``outcome.stats.retries``).

    Inference: a failure whose error `classify` calls retryable is retried after an
    exponential backoff with jitter, up to `max_attempts` tries in all. When the
    tries are used up, or the next delay would not fit in the `max_total` window,
    or the server's ``retry_after`` is longer than `max_delay`, the request goes to
    the next model of `fallback` (at once), which has `fallback_attempts` tries of
    its own; after the last model the decision is `Fail`. A non-retryable error fails
    at once: it is neither retried nor sent to a fallback model. The `max_total`
    window covers the whole chain of one request. A fallback applies to that one
    request: the next step asks the run's own model first again.

    ``retry_after``: the decision's delay is ``max(backoff delay, retry_after)``. The
    kernel also waits at least ``retry_after`` whatever delay a plugin decides, so
    this changes nothing about the wait, but it keeps the plugin's own accounting
    (`max_delay`, `max_total`) true to the time actually waited.

    Tools: nothing is retried unless asked for. ``tools=True`` retries every tool
    declared idempotent (`ToolSpec.idempotent`, read from ``ctx.tools``); an iterable of
    names retries those of them that are idempotent; a name in `per_tool` opts that
    tool in with its own `Backoff` (or an int: its ``max_attempts``). A tool that is
    not declared idempotent is never retried (a warning is logged once if it was
    named). The default tool backoff is `tool_backoff`, or the inference one.

    Budgets are counted per request and per tool call: the kernel's ``attempt``
    argument restarts at 1 for each, and so do the tries and the window. Across a
    ``resume`` they restart too (the kernel's ``attempt`` does).

    Args:
        max_attempts: tries per request to the run's model, the first included.
        base_delay: the first retry's delay cap, in seconds; it doubles per retry.
        max_delay: the longest single delay.
        max_total: the most seconds of delay for one request, all models together.
        jitter: ``"full"`` (default), ``"equal"`` or ``"none"``; see `Backoff`.
        fallback: model strings to try in order once the run's model gives up.
        fallback_attempts: tries per fallback model (default: `max_attempts`).
        tools: opt tool retries in: False (default), True (every idempotent tool)
            or an iterable of tool names.
        tool_backoff: the backoff for tools (default: the inference settings).
        per_tool: tool name to `Backoff` or max_attempts; opts those tools in.
        classify: ``classify(error) -> bool``, whether an error is worth retrying
            (default `is_retryable`).
        name: the plugin name.
        rng: the `random.Random` drawing the jitter (pass a seeded one for
            reproducible delays).

    Raises:
        ValueError: a count or a number of seconds is out of range.
        TypeError: `fallback` or `tools` is a single string.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        max_attempts: int = 3,
        *,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        max_total: float = 120.0,
        jitter: Jitter = "full",
        fallback: Sequence[str] = (),
        fallback_attempts: int | None = None,
        tools: bool | Iterable[str] = False,
        tool_backoff: Backoff | None = None,
        per_tool: Mapping[str, Backoff | int] | None = None,
        classify: Classifier | None = None,
        name: str = "retry",
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        self.backoff = Backoff(max_attempts, base_delay, max_delay, max_total, jitter)
        if isinstance(fallback, str) or not all(isinstance(m, str) and m for m in fallback):
            raise TypeError(f"fallback is a list of model strings, e.g. fallback=[{fallback!r}]")
        self.fallback: tuple[str, ...] = tuple(dict.fromkeys(fallback))
        self.fallback_backoff = attrs.evolve(
            self.backoff, max_attempts=max_attempts if fallback_attempts is None else fallback_attempts
        )
        self.tool_backoff = tool_backoff if tool_backoff is not None else self.backoff
        if isinstance(tools, str):
            raise TypeError(f"tools is True, False or a collection of tool names, e.g. tools={{{tools!r}}}")
        self.tools: bool | frozenset[str] = tools if isinstance(tools, bool) else frozenset(tools)
        self.per_tool: dict[str, Backoff] = {}
        for tool_name, policy in (per_tool or {}).items():
            if isinstance(policy, Backoff):
                self.per_tool[tool_name] = policy
            else:
                self.per_tool[tool_name] = attrs.evolve(self.tool_backoff, max_attempts=policy)
        self.classify: Classifier = classify if classify is not None else is_retryable
        self.rng = rng if rng is not None else random.Random()
        # run id -> (step, progress by what is failing); only the current step is kept
        self._runs: dict[str, tuple[int, dict[tuple[int, str], _Progress]]] = {}
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"Retry(backoff={self.backoff!r}, fallback={list(self.fallback)!r}, tools={self.tools!r}, "
            f"per_tool={self.per_tool!r}, name={self.name!r})"
        )

    # ------------------------------------------------------------------ policy

    def tool_policy(self, tool: str) -> Backoff | None:
        """The backoff tool `tool` is retried with, or None when it is not opted in.

        Whether it is retried also needs it to be declared idempotent.
        """
        if tool in self.per_tool:
            return self.per_tool[tool]
        if self.tools is True or (isinstance(self.tools, frozenset) and tool in self.tools):
            return self.tool_backoff
        return None

    def _progress(self, ctx: Context, what: str, attempt: int, chain: tuple[str, ...]) -> _Progress:
        """The progress record of `what` in this step, fresh when `attempt` is 1."""
        step, table = self._runs.get(ctx.run_id, (None, None))
        if table is None or step != ctx.step:
            table = {}
            self._runs[ctx.run_id] = (ctx.step, table)
        key = (ctx.attempt, what)
        progress = table.get(key)
        if progress is None or attempt <= 1:
            progress = table[key] = _Progress(chain)
        return progress

    def _delay(self, backoff: Backoff, progress: _Progress, error: BaseException, window: float) -> float | None:
        """The delay of the next retry, or None when this backoff has given up."""
        if progress.tries >= backoff.max_attempts:
            return None
        delay = backoff.delay(progress.tries, self.rng)
        after = _retry_after(error)
        if after is not None:
            if after > backoff.max_delay:
                return None  # the server wants a longer wait than we may take
            delay = max(delay, after)
        if progress.spent + delay > window:
            return None
        return delay

    # ------------------------------------------------------------------ hooks

    @hookimpl
    def agent_on_inference_error(
        self, ctx: Context, request: Request, error: Exception, attempt: int
    ) -> _Again | Fallback | Fail:
        primary = ctx.state.model or request.model
        chain = (primary, *(m for m in self.fallback if m != primary))
        progress = self._progress(ctx, "inference", attempt, chain)
        if progress.chain[progress.index] != request.model:
            # Another plugin chose the model: continue the chain after it, if it is in it
            # (a model outside the chain counts against the current model's budget).
            later = [i for i in range(progress.index + 1, len(progress.chain)) if progress.chain[i] == request.model]
            if later:
                progress.index, progress.tries = later[0], 0
        progress.tries += 1
        if not self.classify(error):
            return Fail()
        backoff = self.backoff if progress.index == 0 else self.fallback_backoff
        delay = self._delay(backoff, progress, error, self.backoff.max_total)
        if delay is not None:
            progress.spent += delay
            return _Again(delay)
        if progress.index + 1 < len(progress.chain):
            progress.index += 1
            progress.tries = 0
            return Fallback(progress.chain[progress.index])
        return Fail()

    @hookimpl
    def agent_on_tool_error(self, ctx: Context, call: ToolCall, error: Exception, attempt: int) -> _Again | Fail | None:
        backoff = self.tool_policy(call.name)
        if backoff is None:
            return None
        spec = ctx.tools.get(call.name)
        if spec is None or not spec.idempotent:
            if call.name not in self._warned:
                self._warned.add(call.name)
                _log.warning(
                    "%s: tool %r is not declared idempotent, so it is never retried "
                    "(declare it idempotent where it is defined, e.g. @tool(idempotent=True))",
                    self.name,
                    call.name,
                )
            return None
        progress = self._progress(ctx, "tool:" + call.id, attempt, ())
        progress.tries = attempt
        if not self.classify(error):
            return Fail()
        delay = self._delay(backoff, progress, error, backoff.max_total)
        if delay is None:
            return Fail()
        progress.spent += delay
        return _Again(delay)

    @hookimpl
    def agent_run_end(self, ctx: Context) -> None:
        self._runs.pop(ctx.run_id, None)
