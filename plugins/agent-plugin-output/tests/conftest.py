"""Fixtures and helpers for the TypedOutput tests."""

from __future__ import annotations

import attrs


@attrs.frozen
class City:
    """A city and how many people live there."""

    name: str
    population: int = attrs.field(validator=attrs.validators.gt(0), metadata={"description": "inhabitants"})
    country: str | None = None
