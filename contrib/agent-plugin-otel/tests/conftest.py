"""Fixtures for the Telemetry tests; `otel_testkit` holds the shared helpers."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator

import pytest

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so the tests can import otel_testkit

from otel_testkit import Traces  # noqa: E402


@pytest.fixture
def traces(monkeypatch: pytest.MonkeyPatch) -> Iterator[Traces]:
    """A real SDK tracer provider recording to memory; content recording off unless a test opts in."""
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    recorded = Traces()
    yield recorded
    recorded.close()
