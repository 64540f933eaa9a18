"""Fixtures for the Limits tests; `limits_testkit` holds the shared helpers."""

from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so the tests can import limits_testkit
