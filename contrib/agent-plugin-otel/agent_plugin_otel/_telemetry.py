"""`Telemetry`: OpenTelemetry spans (and optional metrics) for agent-kernel runs.

The span tree of one invocation (`Agent.run` or `Agent.resume`)::

    invoke_agent [{agent_name}]      INTERNAL  RunStart .. RunEnd
    ├── chat {model}                  CLIENT    one per inference attempt
    └── execute_tool {tool}           INTERNAL  one per tool attempt, or per call answered without running

How the plugin hooks in (every hook is a plain function; only the managers the
wrap hooks return are async, because they surround awaited work):

- ``agent_run_start`` (``tryfirst``) starts the ``invoke_agent`` span as a child of
  the caller's current span; ``agent_run_end`` (``tryfirst``, so that another
  plugin's failing implementation does not keep it from running) ends it, and every
  span of the invocation still open, exactly once. They are plain implementations,
  not pluggy wrappers: a wrapper would move the whole phase off the kernel's exact
  per-implementation call path.
- ``agent_wrap_run`` makes the ``invoke_agent`` span the current span while the run's
  phases advance; ``agent_wrap_inference`` and ``agent_wrap_tool_call`` (``trylast``:
  the innermost managers, so the span times the work itself) start the ``chat`` and
  ``execute_tool`` spans with the ``invoke_agent`` span as their explicit parent, and
  make them current while the executor or the tool function runs.
- The response (usage, finish reason) and the tool result reach the plugin in
  ``agent_after_inference`` / ``agent_after_tool_execute``, after the manager has
  exited: the span is ended there, at the time the manager exited.
- Wrappers around ``agent_on_inference_error`` / ``agent_on_tool_error`` see the
  decision the kernel is about to carry out and record it on the failed attempt's
  span (retries are visible as one span per attempt).

An invocation whose ``invoke_agent`` span is not recording (the no-op provider, or
sampled out) makes no other span; with no meter provider either, every hook returns
at once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Generator, Mapping, Sequence
from typing import Any

import anyio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanContext, SpanKind, Status, StatusCode, TracerProvider

from agent_kernel import Context, Fallback, Message, Outcome, Request, Response, Retry, ToolCall, ToolResult, hookimpl
from agent_kernel.errors import ToolSuspended

__all__ = ["CONTENT_ENV", "FINISH_REASONS", "Telemetry"]

_log = logging.getLogger("agent_plugin_otel")

INSTRUMENTATION = "agent_plugin_otel"
VERSION = "0.1.0"

#: The environment variable OpenTelemetry's GenAI instrumentations read to record
#: message content; `Telemetry(record_content=None)` follows it.
CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CONTENT_ON = frozenset({"true", "span_only", "span_and_event"})

#: The kernel's `Response.stop_reason` as a GenAI finish reason.
FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "tool_use": "tool_call",
    "max_tokens": "length",
    "refusal": "content_filter",
    "error": "error",
}

#: Provider settings (`Request.settings`) recorded as ``gen_ai.request.*`` attributes.
_SETTINGS: Mapping[str, tuple[str, type]] = {
    "temperature": ("gen_ai.request.temperature", float),
    "top_p": ("gen_ai.request.top_p", float),
    "top_k": ("gen_ai.request.top_k", int),
    "max_tokens": ("gen_ai.request.max_tokens", int),
    "max_completion_tokens": ("gen_ai.request.max_tokens", int),
    "frequency_penalty": ("gen_ai.request.frequency_penalty", float),
    "presence_penalty": ("gen_ai.request.presence_penalty", float),
    "seed": ("gen_ai.request.seed", int),
    "stop": ("gen_ai.request.stop_sequences", list),
}

# Bucket boundaries the GenAI metric conventions advise.
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKEN_BUCKETS = tuple(float(4**n) for n in range(14))  # 1, 4, 16, ... 67108864

#: Resumable invocations remembered for linking their resume (in this process).
_REMEMBERED = 1024


def _split_model(model: str) -> tuple[str | None, str]:
    """``"openai:gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``; ``"scripted"`` -> ``(None, "scripted")``."""
    provider, sep, name = model.partition(":")
    if sep and provider and name:
        return provider, name
    return None, model


def _settings_attributes(settings: Mapping[str, Any], into: dict[str, Any]) -> None:
    for key, value in settings.items():
        known = _SETTINGS.get(key)
        if known is None or value is None or isinstance(value, bool):
            continue
        attribute, kind = known
        if kind is list:
            stops = [value] if isinstance(value, str) else value
            if isinstance(stops, (list, tuple)) and all(isinstance(s, str) for s in stops):
                into[attribute] = list(stops)
        elif kind is float and isinstance(value, (int, float)):
            into[attribute] = float(value)
        elif kind is int and isinstance(value, int):
            into[attribute] = value


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _parts(message: Message) -> list[dict[str, Any]]:
    """A kernel message as GenAI message parts."""
    if message.role == "tool":
        return [{"type": "tool_call_response", "id": message.tool_call_id, "response": message.content}]
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "content": message.content})
    for call in message.tool_calls:
        parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": dict(call.arguments)})
    return parts


def _input_messages(messages: Sequence[Message]) -> str:
    return _json([{"role": m.role, "parts": _parts(m)} for m in messages])


def _output_messages(response: Response) -> str:
    finish = FINISH_REASONS.get(response.stop_reason, response.stop_reason)
    return _json([{"role": "assistant", "parts": _parts(response.message), "finish_reason": finish}])


def _error_type(exc: BaseException) -> str:
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "cancelled"
    return type(exc).__name__


def _decision_attributes(decision: Any) -> dict[str, Any]:
    if isinstance(decision, Retry):
        return {"agent_kernel.decision": "retry", "agent_kernel.retry.delay": float(decision.delay)}
    if isinstance(decision, Fallback):
        return {"agent_kernel.decision": "fallback", "agent_kernel.fallback.model": decision.model}
    return {"agent_kernel.decision": "fail"}


def _mark_failed(pending: _Pending, error_type: str) -> None:
    pending.error = error_type
    pending.span.set_attribute("error.type", error_type)
    pending.span.set_status(Status(StatusCode.ERROR, error_type))


class _Pending:
    """A span whose work is over, waiting for what completes it (result, response, decision)."""

    __slots__ = ("end", "error", "metric", "span", "start")

    def __init__(self, span: Span, start: int, end: int, error: str | None, metric: dict[str, Any] | None) -> None:
        self.span = span
        self.start = start
        self.end = end
        self.error = error
        self.metric = metric  # attributes for gen_ai.client.operation.duration (chat spans)


class _Invocation:
    """What the plugin keeps about one live invocation, keyed by ``(run_id, attempt)``."""

    __slots__ = (
        "attempts",
        "chat",
        "chat_attempt",
        "chat_step",
        "context",
        "retries",
        "run_id",
        "span",
        "tool_step",
        "tools",
        "tracing",
        "usage",
    )

    def __init__(self, run_id: str, span: Span, tracing: bool, usage: tuple[int, int]) -> None:
        self.run_id = run_id
        self.span = span
        self.tracing = tracing  # the invoke_agent span records: children are made
        self.context = trace.set_span_in_context(span)
        self.usage = usage  # input and output tokens when the invocation began
        self.chat: _Pending | None = None
        self.chat_step = -1
        self.chat_attempt = 0
        self.tools: dict[tuple[int, str], _Pending] = {}
        self.attempts: dict[tuple[int, str], int] = {}  # tool attempts in the current step
        self.tool_step = -1
        self.retries = 0


class _Current:
    """``agent_wrap_run``'s manager: the invoke_agent span is current while the run advances."""

    __slots__ = ("context", "token")

    def __init__(self, context: otel_context.Context) -> None:
        self.context = context
        self.token: Any = None

    async def __aenter__(self) -> None:
        self.token = otel_context.attach(self.context)

    async def __aexit__(self, *exc_info: object) -> None:
        otel_context.detach(self.token)


class _Scope:
    """The managers of the wrap hooks: the attempt's span is current while the work runs.

    Entered and exited by the kernel in the task that runs the work (the tool's own
    task under a concurrent strategy), so attach and detach pair up in one context.
    """

    __slots__ = ("inv", "plugin", "span", "start", "token")

    def __init__(self, plugin: Telemetry, inv: _Invocation) -> None:
        self.plugin = plugin
        self.inv = inv
        self.token: Any = None
        self.span: Span = INVALID_SPAN
        self.start = 0

    async def __aenter__(self) -> None:
        self.span, self.start = self._started()
        if self.inv.tracing:
            self.token = otel_context.attach(trace.set_span_in_context(self.span))

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self.token is not None:
            otel_context.detach(self.token)
        self._exited(exc)

    def _started(self) -> tuple[Span, int]:
        raise NotImplementedError

    def _exited(self, exc: BaseException | None) -> None:
        raise NotImplementedError


class _ChatScope(_Scope):
    """``agent_wrap_inference``'s manager: one ``chat`` span per attempt."""

    __slots__ = ("metric", "request", "step")

    def __init__(self, plugin: Telemetry, inv: _Invocation, step: int, request: Request) -> None:
        super().__init__(plugin, inv)
        self.step = step
        self.request = request
        self.metric: dict[str, Any] = {}

    def _started(self) -> tuple[Span, int]:
        span, start, self.metric = self.plugin._chat_started(self.inv, self.step, self.request)
        return span, start

    def _exited(self, exc: BaseException | None) -> None:
        self.plugin._chat_exited(self.inv, self.span, self.start, self.metric, exc)


class _ToolScope(_Scope):
    """``agent_wrap_tool_call``'s manager: one ``execute_tool`` span per attempt."""

    __slots__ = ("call", "ctx")

    def __init__(self, plugin: Telemetry, inv: _Invocation, ctx: Context, call: ToolCall) -> None:
        super().__init__(plugin, inv)
        self.ctx = ctx
        self.call = call

    def _started(self) -> tuple[Span, int]:
        return self.plugin._tool_started(self.inv, self.ctx, self.call)

    def _exited(self, exc: BaseException | None) -> None:
        self.plugin._tool_exited(self.inv, self.ctx.step, self.call, self.span, self.start, exc)


class Telemetry:
    """OpenTelemetry spans, following the GenAI semantic conventions, for every run.

    Args:
        tracer_provider: where spans go; the global tracer provider when None (set
            it before or after building the plugin: the global proxy forwards).
        meter_provider: when given, the GenAI client metrics
            ``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage``
            are recorded through it (pass `opentelemetry.metrics.get_meter_provider()`
            for the global one); None records no metric.
        record_content: record messages, tool arguments and tool results on the
            spans (``gen_ai.input.messages``, ``gen_ai.output.messages``,
            ``gen_ai.tool.call.arguments``, ``gen_ai.tool.call.result``), as the
            kernel committed them, that is after every redactor. None (the default)
            follows ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (``true``,
            ``span_only`` or ``span_and_event`` turn it on); content is off otherwise.
        agent_name: ``gen_ai.agent.name``, also in the span name
            (``invoke_agent {agent_name}``).
        name: the plugin's name (one per agent; blocking and errors use it).

    One `Telemetry` may serve several agents; live invocations are told apart by run
    id and attempt, so agents sharing one must not run the same run id at once.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        record_content: bool | None = None,
        agent_name: str | None = None,
        name: str = "otel",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if agent_name is not None and (not isinstance(agent_name, str) or not agent_name):
            raise ValueError(f"agent_name must be a non-empty string or None, got {agent_name!r}")
        self.name = name
        self.agent_name = agent_name
        if record_content is None:
            record_content = os.environ.get(CONTENT_ENV, "").strip().lower() in _CONTENT_ON
        self.record_content = bool(record_content)
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self._tracer = provider.get_tracer(INSTRUMENTATION, VERSION)
        self._metrics = meter_provider is not None
        if meter_provider is not None:
            meter = meter_provider.get_meter(INSTRUMENTATION, VERSION)
            self._duration = meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration",
                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            )
            self._tokens = meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used",
                explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
            )
        self._live: dict[tuple[str, int], _Invocation] = {}
        self._untraced: set[tuple[str, int]] = set()  # invocations begun with nothing to record
        # span contexts of invocations that ended resumable, for the link from their resume
        self._resumable: OrderedDict[str, SpanContext] = OrderedDict()

    def __repr__(self) -> str:
        return f"Telemetry(name={self.name!r}, record_content={self.record_content})"

    # ------------------------------------------------------------------ invocation

    @hookimpl(tryfirst=True)
    def agent_run_start(self, ctx: Context) -> None:
        self._begin(ctx, None)

    @hookimpl(tryfirst=True)
    def agent_wrap_run(self, ctx: Context) -> _Current | None:
        inv = self._live.get((ctx.run_id, ctx.attempt)) if self._live else None
        if inv is None or not inv.tracing:
            return None
        return _Current(inv.context)

    @hookimpl(tryfirst=True)
    def agent_run_end(self, ctx: Context, outcome: Outcome) -> None:
        self._end(ctx, outcome)

    def _begin(self, ctx: Context, start_time: int | None) -> _Invocation | None:
        key = (ctx.run_id, ctx.attempt)
        if key in self._live:  # two agents sharing this plugin run the same run id at once
            _log.warning("run %r attempt %d is already traced by %r; not tracing it twice", *key, self.name)
            return None
        provider, model = _split_model(ctx.state.model)
        attributes: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent"}
        if provider is not None:
            attributes["gen_ai.provider.name"] = provider
        if model:
            attributes["gen_ai.request.model"] = model
        if self.agent_name is not None:
            attributes["gen_ai.agent.name"] = self.agent_name
        attributes["gen_ai.conversation.id"] = ctx.run_id
        attributes["agent_kernel.run.id"] = ctx.run_id
        attributes["agent_kernel.run.attempt"] = ctx.attempt
        attributes["agent_kernel.run.resumed"] = ctx.resumed
        previous = self._resumable.pop(ctx.run_id, None) if ctx.resumed else None
        links = [Link(previous, {"agent_kernel.link": "resumes"})] if previous is not None else None
        name = "invoke_agent" if self.agent_name is None else f"invoke_agent {self.agent_name}"
        span = self._tracer.start_span(
            name, kind=SpanKind.INTERNAL, attributes=attributes, links=links, start_time=start_time
        )
        tracing = span.is_recording()
        if not tracing and not self._metrics:
            self._untraced.add(key)  # nothing to record: every other hook returns at once
            return None
        usage = ctx.state.usage
        inv = _Invocation(ctx.run_id, span, tracing, (usage.input_tokens, usage.output_tokens))
        self._live[key] = inv
        return inv

    def _end(self, ctx: Context, outcome: Outcome) -> None:
        key = (ctx.run_id, ctx.attempt)
        inv = self._live.pop(key, None)
        if inv is None:
            if key in self._untraced:
                self._untraced.discard(key)
                return
            # RunEnd without RunStart (the invocation failed before RunStart): a span all the same
            inv = self._begin(ctx, time.time_ns() - int(outcome.stats.duration * 1e9))
            self._untraced.discard(key)
            if inv is None:
                return
            del self._live[key]
        self._sweep(inv)
        span = inv.span
        reason = outcome.reason
        error = outcome.error
        usage = outcome.usage
        attributes: dict[str, Any] = {
            "agent_kernel.outcome.reason": reason,
            "gen_ai.usage.input_tokens": usage.input_tokens - inv.usage[0],
            "gen_ai.usage.output_tokens": usage.output_tokens - inv.usage[1],
            "agent_kernel.retries": inv.retries,
        }
        if outcome.stop is not None:
            attributes["agent_kernel.stop.code"] = outcome.stop.code
        if reason == "suspended":
            attributes["agent_kernel.outcome.pending"] = len(outcome.pending)
        if reason in ("error", "cancelled"):
            if error is None:
                attributes["error.type"] = "cancelled" if reason == "cancelled" else "_OTHER"
            else:
                attributes["error.type"] = error.type or "_OTHER"
                if error.plugin:
                    attributes["agent_kernel.error.plugin"] = error.plugin
                if error.hook:
                    attributes["agent_kernel.error.hook"] = error.hook
            span.set_status(Status(StatusCode.ERROR, error.message if error is not None else reason))
        span.set_attributes(attributes)
        if reason in ("suspended", "cancelled", "error") and inv.tracing:
            self._resumable[ctx.run_id] = span.get_span_context()
            while len(self._resumable) > _REMEMBERED:
                self._resumable.popitem(last=False)
        span.end()

    def _sweep(self, inv: _Invocation) -> None:
        """End every span of the invocation still waiting (the run ended before it completed)."""
        if inv.chat is not None:
            pending, inv.chat = inv.chat, None
            self._close_chat(pending, None)
        self._close_tools(inv)

    def _invocation(self, ctx: Context) -> _Invocation | None:
        if not self._live:
            return None
        return self._live.get((ctx.run_id, ctx.attempt))

    # ------------------------------------------------------------------ inference

    @hookimpl(trylast=True)
    def agent_wrap_inference(self, ctx: Context, request: Request) -> _ChatScope | None:
        inv = self._invocation(ctx)
        if inv is None:
            return None
        return _ChatScope(self, inv, ctx.step, request)

    def _chat_started(self, inv: _Invocation, step: int, request: Request) -> tuple[Span, int, dict[str, Any]]:
        if inv.chat is not None:  # an earlier attempt nobody completed
            pending, inv.chat = inv.chat, None
            self._close_chat(pending, None)
        if step != inv.chat_step:
            inv.chat_step, inv.chat_attempt = step, 0
        inv.chat_attempt += 1
        provider, model = _split_model(request.model)
        metric: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
        if provider is not None:
            metric["gen_ai.provider.name"] = provider
        start = time.time_ns()
        if not inv.tracing:
            return INVALID_SPAN, start, metric
        attributes = dict(metric)
        attributes["gen_ai.conversation.id"] = inv.run_id
        attributes["agent_kernel.step"] = step
        attributes["agent_kernel.attempt"] = inv.chat_attempt
        if request.settings:
            _settings_attributes(request.settings, attributes)
        if self.record_content:
            attributes["gen_ai.input.messages"] = _input_messages(request.messages)
        span = self._tracer.start_span(
            f"chat {model}", context=inv.context, kind=SpanKind.CLIENT, attributes=attributes, start_time=start
        )
        return span, start, metric

    def _chat_exited(
        self, inv: _Invocation, span: Span, start: int, metric: dict[str, Any], exc: BaseException | None
    ) -> None:
        pending = _Pending(span, start, time.time_ns(), None, metric)
        if exc is not None:
            _mark_failed(pending, _error_type(exc))
        # completed by agent_after_inference, or by the decision about the failure (which an
        # outer manager may still make of a cancellation: a deadline), else with the invocation
        inv.chat = pending

    def _close_chat(self, pending: _Pending, response_model: str | None) -> None:
        pending.span.end(end_time=pending.end)
        if self._metrics and pending.metric is not None:
            attributes = pending.metric
            if response_model:
                attributes = {**attributes, "gen_ai.response.model": response_model}
            if pending.error is not None:
                attributes = {**attributes, "error.type": pending.error}
            self._duration.record((pending.end - pending.start) / 1e9, attributes)

    @hookimpl(tryfirst=True)
    def agent_after_inference(self, ctx: Context, response: Response) -> None:
        inv = self._invocation(ctx)
        if inv is None or inv.chat is None:
            return  # not traced, or the response was recorded by an earlier invocation
        pending, inv.chat = inv.chat, None
        span, usage = pending.span, response.usage
        if inv.tracing:
            attributes: dict[str, Any] = {
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "gen_ai.response.finish_reasons": [FINISH_REASONS.get(response.stop_reason, response.stop_reason)],
            }
            if response.model:
                attributes["gen_ai.response.model"] = response.model
            if self.record_content:
                attributes["gen_ai.output.messages"] = _output_messages(response)
            span.set_attributes(attributes)
        self._close_chat(pending, response.model)
        if self._metrics and pending.metric is not None:
            base = pending.metric
            if response.model:
                base = {**base, "gen_ai.response.model": response.model}
            self._tokens.record(usage.input_tokens, {**base, "gen_ai.token.type": "input"})
            self._tokens.record(usage.output_tokens, {**base, "gen_ai.token.type": "output"})

    @hookimpl(wrapper=True)
    def agent_on_inference_error(
        self, ctx: Context, request: Request, error: Exception, attempt: int
    ) -> Generator[None, Any, Any]:
        decision = yield
        inv = self._invocation(ctx)
        if inv is not None:
            pending, inv.chat = inv.chat, None
            self._decided(inv, pending, decision, error)
            if pending is not None:
                self._close_chat(pending, None)
        return decision

    def _decided(self, inv: _Invocation, pending: _Pending | None, decision: Any, error: Exception) -> None:
        """Record the decision about a failure on the failed attempt's span (or on the invocation's)."""
        attributes = _decision_attributes(decision)
        if attributes["agent_kernel.decision"] != "fail":
            inv.retries += 1
        if pending is not None and pending.error in (None, "cancelled"):
            # the work succeeded, or was cancelled, and an outer manager made this error of it (a deadline)
            _mark_failed(pending, type(error).__name__)
        if not inv.tracing:
            return
        if pending is not None:
            pending.span.set_attributes(attributes)
        else:  # the failure came before the attempt's span began (in an outer manager)
            attributes["error.type"] = type(error).__name__
            inv.span.add_event("agent_kernel.failure", attributes)

    # ------------------------------------------------------------------ tools

    @hookimpl(trylast=True)
    def agent_wrap_tool_call(self, ctx: Context, call: ToolCall) -> _ToolScope | None:
        inv = self._invocation(ctx)
        if inv is None:
            return None
        return _ToolScope(self, inv, ctx, call)

    def _tool_attributes(self, ctx: Context, call: ToolCall) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.id,
            "gen_ai.tool.type": "function",
            "gen_ai.conversation.id": ctx.run_id,
            "agent_kernel.step": ctx.step,
        }
        spec = ctx.tools.get(call.name)
        if spec is not None and spec.description:
            attributes["gen_ai.tool.description"] = spec.description
        return attributes

    def _tool_started(self, inv: _Invocation, ctx: Context, call: ToolCall) -> tuple[Span, int]:
        key = (ctx.step, call.id)
        if ctx.step != inv.tool_step:  # a new step: what the last one left is over
            inv.tool_step = ctx.step
            inv.attempts.clear()
            self._close_tools(inv)
        leftover = inv.tools.pop(key, None)
        if leftover is not None:  # an earlier attempt nobody completed
            leftover.span.end(end_time=leftover.end)
        attempt = inv.attempts[key] = inv.attempts.get(key, 0) + 1
        start = time.time_ns()
        if not inv.tracing:
            return INVALID_SPAN, start
        attributes = self._tool_attributes(ctx, call)
        attributes["agent_kernel.attempt"] = attempt
        span = self._tracer.start_span(
            f"execute_tool {call.name}",
            context=inv.context,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=start,
        )
        return span, start

    def _close_tools(self, inv: _Invocation) -> None:
        tools, inv.tools = inv.tools, {}
        for pending in tools.values():
            pending.span.end(end_time=pending.end)

    def _tool_exited(
        self, inv: _Invocation, step: int, call: ToolCall, span: Span, start: int, exc: BaseException | None
    ) -> None:
        end = time.time_ns()
        if not inv.tracing:
            return
        if isinstance(exc, ToolSuspended):  # not a failure: the tool waits for decisions
            span.set_attribute("agent_kernel.tool.suspended", True)  # called again on resume, in a new span
            span.end(end_time=end)
            return
        pending = _Pending(span, start, end, None, None)
        if exc is not None:
            _mark_failed(pending, _error_type(exc))
        # completed by agent_after_tool_execute or by the decision about the failure, else with the invocation
        inv.tools[step, call.id] = pending

    @hookimpl(wrapper=True)
    def agent_on_tool_error(
        self, ctx: Context, call: ToolCall, error: Exception, attempt: int
    ) -> Generator[None, Any, Any]:
        decision = yield
        inv = self._invocation(ctx)
        if inv is not None:
            pending = inv.tools.pop((ctx.step, call.id), None)
            self._decided(inv, pending, decision, error)
            if pending is not None:
                pending.span.end(end_time=pending.end)
        return decision

    @hookimpl(tryfirst=True)
    def agent_after_tool_execute(self, ctx: Context, call: ToolCall, result: ToolResult) -> None:
        inv = self._invocation(ctx)
        if inv is None or not inv.tracing:
            return
        key = (ctx.step, call.id)
        pending = inv.tools.pop(key, None)
        if pending is not None:
            span = pending.span
        elif key in inv.attempts:
            return  # every attempt ended failed (and decided): the kernel made the error result
        else:  # answered without running in this invocation: blocked, provided, denied, unknown...
            attributes = self._tool_attributes(ctx, call)
            attributes["agent_kernel.tool.executed"] = False
            span = self._tracer.start_span(
                f"execute_tool {call.name}", context=inv.context, kind=SpanKind.INTERNAL, attributes=attributes
            )
        if result.is_error and (pending is None or pending.error is None):
            span.set_attribute("error.type", "tool_error")
            span.set_status(Status(StatusCode.ERROR, "tool_error"))
        if self.record_content:
            span.set_attribute("gen_ai.tool.call.arguments", _json(dict(call.arguments)))
            span.set_attribute("gen_ai.tool.call.result", result.content)
        span.end(end_time=pending.end if pending is not None else None)
