"""Fixtures for the Approval tests; `approval_testkit` holds the shared tools, agents and settings.

pytest-trio's own ``autojump_clock`` fixture gives timeouts on a `trio.testing.MockClock`.
Hypothesis settings are applied per test (`approval_testkit.PROPERTY`), never loaded
globally, so running these tests with the rest of the repository changes nothing else.
"""

from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so tests (and the subprocesses they start) can import approval_testkit
