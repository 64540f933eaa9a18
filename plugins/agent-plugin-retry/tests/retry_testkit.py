"""Helpers for the Retry tests: a model that fails on demand, an event log, a runner."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import trio

from agent_kernel import Agent, Message, ModelRegistrar, Outcome, Request, Response, Usage, hookimpl
from agent_kernel import events as ev
from agent_kernel.errors import InferenceError
from agent_kernel.testing import RunRecorder


class FlakyModel:
    """Registers model `model`: raises the errors of `failures` in turn, then answers.

    `failures` is consumed across the whole run; `calls` counts every request made.
    """

    def __init__(self, model: str, failures: Iterable[BaseException] = (), answer: str | None = None) -> None:
        self.name = f"flaky-{model}"
        self.model = model
        self.failures = list(failures)
        self.answer = answer if answer is not None else f"answer from {model}"
        self.requests: list[Request] = []

    @hookimpl
    def agent_register_models(self, models: ModelRegistrar) -> None:
        models.add(self.model, self)

    async def infer(self, request: Request, deltas: Any) -> Response:
        self.requests.append(request)
        if self.failures:
            raise self.failures.pop(0)
        return Response(Message("assistant", self.answer), Usage(1, 1, 1), "end_turn", self.model)


def unavailable(n: int = 1, retry_after: float | None = None) -> list[InferenceError]:
    """`n` retryable 503 errors."""
    return [
        InferenceError("503 service unavailable", retryable=True, retry_after=retry_after, status=503) for _ in range(n)
    ]


def bad_request() -> InferenceError:
    return InferenceError("400 bad request", retryable=False, status=400)


class Events:
    """An observer plugin keeping every event of the agent's runs."""

    name = "event-log"

    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    @hookimpl
    def agent_on_event(self, event: ev.Event) -> None:
        self.events.append(event)

    def retries(self) -> list[ev.RetryScheduled]:
        return [e for e in self.events if isinstance(e, ev.RetryScheduled)]

    def delays(self) -> list[float]:
        return [e.delay for e in self.retries()]


async def run(model: str, plugins: Sequence[object], input: str = "go") -> tuple[Outcome, float]:
    """Run a fresh agent (no autoload); return the outcome and the (mock) seconds it took."""
    agent = Agent(model=model, plugins=list(plugins), autoload=False)
    started = trio.current_time()
    outcome = await agent.run(input)
    return outcome, trio.current_time() - started


def assert_grammar(recorder: RunRecorder) -> None:
    """RunStart first, RunEnd last and exactly once, every step bracketed."""
    phases = recorder.phases
    assert phases[0] == "run_start" and phases[-1] == "run_end", phases
    assert phases.count("run_start") == 1 and phases.count("run_end") == 1, phases
    assert phases.count("step_start") in (phases.count("step_end"), phases.count("step_end") + 1), phases
