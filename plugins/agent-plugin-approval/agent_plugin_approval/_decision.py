"""The `Decision` value and the helpers every policy shares (private; see `policies`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from numbers import Real
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

import attrs
from attrs import field, frozen

from agent_kernel import RunState, ToolCall

Action = Literal["allow", "ask", "deny"]
ACTIONS: frozenset[str] = frozenset({"allow", "ask", "deny"})


def _action(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in ACTIONS:
        raise ValueError(f"{attribute.name} must be 'allow', 'ask' or 'deny', got {value!r}")


def _strict_action(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in ("ask", "deny"):
        raise ValueError(f"{attribute.name} must be 'ask' or 'deny', got {value!r}")


@frozen
class Decision:
    """What a policy decided for one call.

    Attributes:
        action: ``"allow"``, ``"ask"`` or ``"deny"``.
        reason: shown to the approver (ask) or to the model (deny).
        failure_key: only for allow: once a call with this key has failed in the
            run, later calls with the same key are asked about instead.

    .. versionadded:: 0.1
    """

    action: Action = field(validator=_action)
    reason: str = ""
    failure_key: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.failure_key is not None and self.action != "allow":
            raise ValueError("failure_key only makes sense on an allow decision")

    @property
    def strictness(self) -> int:
        """0 allow, 1 allow asking after a failure, 2 ask, 3 deny (how composites rank)."""
        if self.action == "allow":
            return 0 if self.failure_key is None else 1
        return 2 if self.action == "ask" else 3


def allow(reason: str = "", *, failure_key: str | None = None) -> Decision:
    """An allow decision (with `failure_key`: ask before re-running after a failure)."""
    return Decision("allow", reason, failure_key)


def ask(reason: str = "") -> Decision:
    """An ask decision; `reason` is shown to whoever approves."""
    return Decision("ask", reason)


def deny(reason: str = "") -> Decision:
    """A deny decision; `reason` goes to the model as ``"Denied: <reason>"``."""
    return Decision("deny", reason)


@runtime_checkable
class Policy(Protocol):
    """Anything with ``decide(call, state) -> Decision | None``."""

    def decide(self, call: ToolCall, state: RunState) -> Decision | None: ...


# ----------------------------------------------------------------------------- helpers


def _globs(value: str | Iterable[str]) -> tuple[str, ...]:
    globs = (value,) if isinstance(value, str) else tuple(value)
    for glob in globs:
        if not isinstance(glob, str) or not glob:
            raise TypeError(f"tool globs must be non-empty strings, got {glob!r}")
    return globs


def _matches_tool(globs: tuple[str, ...], name: str) -> bool:
    return any(fnmatchcase(name, glob) for glob in globs)


def _policy(value: Any) -> Policy:
    if not callable(getattr(value, "decide", None)):
        raise TypeError(f"expected a policy (an object with decide(call, state)), got {value!r}")
    return value  # type: ignore[no-any-return]


def _policies(values: Iterable[Any]) -> tuple[Policy, ...]:
    return tuple(_policy(v) for v in values)


def _check_result(policy: Policy, result: Any) -> Decision | None:
    if result is not None and not isinstance(result, Decision):
        raise TypeError(f"{policy!r}.decide returned {result!r}; expected a Decision or None")
    return result


def _number(value: Any) -> float | None:
    """`value` as a float when it is a real, finite-or-infinite, non-NaN number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def canonical_json(value: Any) -> str:
    """The canonical JSON text of `value` (sorted keys, no spaces; read-only mappings as objects)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            return dict(obj)
        if isinstance(obj, (set, frozenset)):
            return sorted(obj, key=repr)
        return repr(obj)

    if isinstance(value, MappingProxyType):
        value = dict(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default)
