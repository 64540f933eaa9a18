"""Helpers for the Telemetry tests: a real SDK tracer provider that checks every span's life."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.context import Context as OtelContext
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agent_plugin_otel import Telemetry

CHILD_OPERATIONS = ("chat", "execute_tool")


class _Ledger(SpanProcessor):
    """Counts every start and every end the SDK reports, by span id."""

    def __init__(self) -> None:
        self.started: Counter[int] = Counter()
        self.ended: Counter[int] = Counter()
        self.names: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: OtelContext | None = None) -> None:
        span_id = span.get_span_context().span_id
        self.started[span_id] += 1
        self.names[span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.ended[span.context.span_id] += 1


class _Warnings(logging.Handler):
    """Keeps what OpenTelemetry logs at WARNING or above (a span ended twice, a detach that failed...)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


class Traces:
    """A `TracerProvider` of the real SDK, exporting to memory, that checks span lifetimes.

    `check()` asserts that every span started was ended exactly once, that
    OpenTelemetry logged no warning (ending an ended span, setting an attribute on
    one, detaching a context in the wrong task all log one), and that every chat
    and execute_tool span is a child of an invoke_agent span of the same run,
    inside its time.
    """

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.ledger = _Ledger()
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.ledger)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")
        self.warnings = _Warnings()
        logging.getLogger("opentelemetry").addHandler(self.warnings)

    def close(self) -> None:
        logging.getLogger("opentelemetry").removeHandler(self.warnings)

    def plugin(self, **kwargs: Any) -> Telemetry:
        """A `Telemetry` on this provider."""
        return Telemetry(tracer_provider=self.provider, **kwargs)

    @property
    def spans(self) -> list[ReadableSpan]:
        """Finished spans, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def operation(self, name: str, spans: Iterable[ReadableSpan] | None = None) -> list[ReadableSpan]:
        """Spans whose ``gen_ai.operation.name`` is `name`, by start time."""
        found = [s for s in (self.spans if spans is None else spans) if attr(s, "gen_ai.operation.name") == name]
        return sorted(found, key=start)

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """The spans whose parent is `parent`, by start time (ties: by name)."""
        assert parent.context is not None
        found = [s for s in self.spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
        return sorted(found, key=lambda s: (start(s), s.name))

    def clear(self) -> None:
        self.exporter.clear()

    def check(self) -> None:
        check_lifetimes(self)
        check_nesting(self.spans)


def attr(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


def start(span: ReadableSpan) -> int:
    assert span.start_time is not None
    return span.start_time


def end(span: ReadableSpan) -> int:
    assert span.end_time is not None
    return span.end_time


def is_error(span: ReadableSpan) -> bool:
    return span.status.status_code is StatusCode.ERROR


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def check_lifetimes(traces: Traces) -> None:
    """Every span started was ended exactly once, and OpenTelemetry complained about nothing."""
    ledger = traces.ledger
    twice = {ledger.names[i]: n for i, n in ledger.started.items() if n != 1}
    assert not twice, f"spans started more than once: {twice}"
    open_spans = sorted(ledger.names[i] for i in ledger.started if ledger.ended[i] == 0)
    assert not open_spans, f"spans never ended: {open_spans}"
    ended_twice = {ledger.names.get(i, i): n for i, n in ledger.ended.items() if n != 1}
    assert not ended_twice, f"spans ended more than once: {ended_twice}"
    assert not traces.warnings.messages, f"OpenTelemetry warned: {traces.warnings.messages}"


def check_nesting(spans: Sequence[ReadableSpan]) -> None:
    """Each chat / execute_tool span is a child of an invoke_agent span of its run, within its time."""
    by_id = {span_id(s): s for s in spans}
    for span in spans:
        operation = attr(span, "gen_ai.operation.name")
        if operation not in CHILD_OPERATIONS:
            continue
        assert span.parent is not None, f"{span.name} has no parent"
        parent = by_id.get(span.parent.span_id)
        assert parent is not None, f"the parent of {span.name} is not one of this test's spans"
        assert attr(parent, "gen_ai.operation.name") == "invoke_agent", f"{span.name} is a child of {parent.name}"
        assert span.context is not None and parent.context is not None
        assert span.context.trace_id == parent.context.trace_id
        assert attr(span, "gen_ai.conversation.id") == attr(parent, "gen_ai.conversation.id"), (
            f"{span.name} of run {attr(span, 'gen_ai.conversation.id')} is under run {attr(parent, 'agent_kernel.run.id')}"
        )
        assert start(parent) <= start(span) <= end(span) <= end(parent), (
            f"{span.name} [{start(span)}, {end(span)}] is not inside {parent.name} [{start(parent)}, {end(parent)}]"
        )


def shape(traces: Traces, parent: ReadableSpan) -> list[str]:
    """The names of `parent`'s children, by start time."""
    return [s.name for s in traces.children(parent)]
