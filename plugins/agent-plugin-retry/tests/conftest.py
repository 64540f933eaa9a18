"""Fixtures for the Retry tests; `retry_testkit` holds the shared helpers."""

from __future__ import annotations

import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so the tests can import retry_testkit


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the environment from changing which plugins load or tracing hooks."""
    for var in ("AGENT_KERNEL_PLUGINS", "AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", "AGENT_KERNEL_TRACE_HOOKS"):
        monkeypatch.delenv(var, raising=False)
