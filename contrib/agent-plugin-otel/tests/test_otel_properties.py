"""Properties: whatever a run goes through, its spans are well formed.

Random scripts, random other plugins (legal and illegal patches, raising hooks, sync
and async, approvals), random faults (inference errors with and without retries,
tool exceptions and retries, tools that suspend the run, timeouts, cancellation from
outside), sequential and concurrent tools, resumed until the run finishes (the kit's
`exercise`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from otel_testkit import Traces, attr, check_lifetimes, check_nesting

from agent_kernel.journal import Ended
from agent_kernel.testing import check_plugin_phase_grammar
from agent_kernel.testing.grammar import Transcript, check_transcript, exercise, run_sync
from agent_kernel.testing.strategies import faults, plugin_behaviours, scripts

# deadline off: an example is a whole run (or several); the example count comes from the loaded profile
PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def check_spans(traces: Traces, t: Transcript) -> None:
    """The span guarantees, for one exercised run and its resumes."""
    check_lifetimes(traces)  # every span started is ended once; OpenTelemetry warned about nothing
    spans = traces.spans
    check_nesting(spans)  # every chat / execute_tool span is inside an invoke_agent span of its run
    invokes = traces.operation("invoke_agent", spans)
    assert len(invokes) == len(t.outcomes), f"{len(t.outcomes)} invocations, {len(invokes)} invoke_agent spans"
    ended = [e for e in t.entries if isinstance(e, Ended)]
    for n, (span, outcome, end) in enumerate(zip(invokes, t.outcomes, ended, strict=True), 1):
        assert attr(span, "agent_kernel.run.attempt") == n
        assert attr(span, "agent_kernel.run.resumed") is (n > 1)
        if end.error is not None and end.error.hook == "agent_run_end":
            continue  # a RunEnd hook failed after the span ended (see the README's limits)
        assert attr(span, "agent_kernel.outcome.reason") == end.reason
        assert outcome is None or outcome.reason == end.reason
        assert (span.status.status_code.name == "ERROR") is (end.reason in ("error", "cancelled"))
    # one chat span per request the model received, one execute_tool span per start of a tool
    assert len(traces.operation("chat", spans)) == len(t.requests)
    ran = [s for s in traces.operation("execute_tool", spans) if attr(s, "agent_kernel.tool.executed") is None]
    assert len(ran) == len(t.tool_starts)


def exercised(backend: str, script: list[Any], behaviours: list[Any], drawn: Any, concurrent: bool) -> None:
    traces = Traces()
    try:
        time_scale = 1.0 if backend == "trio" else 0.01
        run = partial(
            exercise,
            script,
            [traces.plugin(record_content=True), *behaviours],
            drawn,
            concurrent=concurrent,
            time_scale=time_scale,
        )
        transcript = run_sync(run, backend)
        check_transcript(transcript)
        check_spans(traces, transcript)
    finally:
        traces.close()


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_every_span_ends_once_under_its_invocation(backend: str) -> None:
    @PROPERTY
    @given(
        script=scripts(),
        behaviours=plugin_behaviours(max_plugins=2),
        drawn=faults(suspends=True),
        concurrent=st.booleans(),
    )
    def check(script: list[Any], behaviours: list[Any], drawn: Any, concurrent: bool) -> None:
        exercised(backend, script, behaviours, drawn, concurrent)

    check()


def test_the_kernel_guarantees_hold_with_the_plugin() -> None:
    traces = Traces()
    try:
        check_plugin_phase_grammar(lambda: traces.plugin())
    finally:
        traces.close()
