"""Fixtures for the Handoff tests; `handoff_testkit` holds the shared helpers."""

from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so the tests can import handoff_testkit
