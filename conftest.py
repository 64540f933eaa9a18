"""Shared test configuration for the kernel and every plugin (one pytest run covers all).

Hypothesis profiles, chosen with ``HYPOTHESIS_PROFILE`` (default ``ci``):

- ``ci``: 30 examples per property, derandomized (a CI failure reproduces exactly);
- ``thorough``: 500 random examples per property, for long local runs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["agent_kernel.testing.pytest_plugin"]

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "ci", max_examples=30, deadline=None, derandomize=True, suppress_health_check=_SUPPRESS, print_blob=True
)
settings.register_profile("thorough", max_examples=500, deadline=None, suppress_health_check=_SUPPRESS, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
