"""The agent's private cattrs converter and the journal codec (format version 3).

Patches, journal entries, events and decisions are tagged unions keyed by ``type``
(the class name). `StateKey`s serialise by name; `SetData` values are structured
with the key's declared type, so plugin data round-trips once the plugin declared
its key (and, for its own classes, registered hooks in `agent_configure_converter`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cached_property
from types import MappingProxyType, UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from . import events, journal, patches
from ._log import Log
from ._state import Decision, Message, StateKey
from .errors import JournalCorrupt, PluginError

if TYPE_CHECKING:
    from cattrs import Converter

FORMAT_VERSION = 3  # 2 added `Started.tools`, 3 `Started.quiet`
READABLE_VERSIONS = frozenset({1, 2, 3})  # older entries load as they are: the fields added since have defaults


def make_converter(state_keys: Mapping[str, StateKey[Any]]) -> Converter:
    """A converter for the kernel's types that knows the agent's state keys.

    cattrs is imported here, on first use, to keep ``import agent_kernel`` fast.
    """
    from cattrs import Converter
    from cattrs.strategies import configure_tagged_union, include_subclasses

    conv = Converter()

    def is_frozenset(t: Any) -> bool:
        return t is frozenset or get_origin(t) is frozenset

    conv.register_unstructure_hook_func(is_frozenset, sorted)
    conv.register_unstructure_hook(MappingProxyType, lambda m: {k: conv.unstructure(v) for k, v in m.items()})
    conv.register_unstructure_hook(Log, lambda log: [conv.unstructure(m, Message) for m in log])
    conv.register_structure_hook(Log, lambda raw, _: Log(conv.structure(m, Message) for m in raw))

    def is_key(t: Any) -> bool:
        return t is StateKey or get_origin(t) is StateKey

    conv.register_unstructure_hook_func(is_key, lambda key: key.name)

    def structure_key(name: str, _: Any) -> StateKey[Any]:
        try:
            return state_keys[name]
        except KeyError:
            raise JournalCorrupt(
                f"the journal uses state key {name!r}, which no loaded plugin declares; "
                "install and load the plugin that owns it (a plugin declares its keys with "
                "runtime.add_state_key(KEY) in agent_register_runtime)"
            ) from None

    conv.register_structure_hook_func(is_key, structure_key)
    conv.register_unstructure_hook(patches.SetData, lambda p: {"key": p.key.name, "value": conv.unstructure(p.value)})

    def structure_set(raw: Mapping[str, Any], _: Any) -> patches.SetData:
        key = structure_key(raw["key"], None)
        return patches.SetData(key, conv.structure(raw["value"], key.type))

    conv.register_structure_hook(patches.SetData, structure_set)

    def structure_number(raw: Any, _: Any) -> int | float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise TypeError(f"expected a number, got {raw!r}")
        return raw

    conv.register_structure_hook(int | float, structure_number)
    configure_tagged_union(Decision, conv, tag_name="type", tag_generator=lambda cl: cl.__name__)
    for base in (patches.Patch, journal.Entry, events.Event):
        include_subclasses(
            base,
            conv,
            union_strategy=lambda union, c: configure_tagged_union(
                union, c, tag_name="type", tag_generator=lambda cl: cl.__name__
            ),
        )
    return conv


class JsonCodec:
    """Encodes journal entries as one JSON object each, with the format version.

    The converter is built on first use (`make`), so agents that never serialise
    (in-memory journal) do not pay for it.
    """

    def __init__(self, make: Callable[[], Converter]) -> None:
        self._make = make
        self._problems: dict[str, str | None] = {}

    @cached_property
    def converter(self) -> Converter:
        return self._make()

    def type_problem(self, key: StateKey[Any]) -> str | None:
        """Why the converter cannot structure values of `key`'s type, or None if it can.

        Asked once per key, and only once the converter exists: an agent that never
        serialises (the in-memory journal) does not build one for this.
        """
        if "converter" not in self.__dict__:
            return None
        try:
            return self._problems[key.name]
        except KeyError:
            pass
        problem = None
        t = key.type
        union = get_origin(t)
        for member in get_args(t) if union is Union or union is UnionType else (t,):
            if member is type(None) or member is None:
                continue
            try:
                self.converter.get_structure_hook(member)
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
                break
        self._problems[key.name] = problem
        return problem

    def encode(self, entry: journal.Entry) -> str:
        try:
            data = self.converter.unstructure(entry, journal.Entry)
            data["v"] = FORMAT_VERSION
            return json.dumps(data, separators=(",", ":"), sort_keys=True)
        except Exception as exc:
            if isinstance(entry, journal.Committed):
                self._blame(entry, exc)
            raise

    def _blame(self, entry: journal.Committed, exc: Exception) -> None:
        """Raise a `PluginError` naming the plugin whose patch of `entry` does not serialise."""
        for i, patch in enumerate(entry.patches):
            try:
                json.dumps(self.converter.unstructure(patch, patches.Patch))
            except Exception as inner:
                what = f"state key {patch.key.name!r}" if isinstance(patch, patches.SetData) else "its patch"
                raise PluginError(
                    f"returned {type(patch).__name__} on {what} with a value that does not serialise "
                    f"({type(inner).__name__}: {inner}); register (un)structure hooks for its type in "
                    "agent_configure_converter, or store a serialisable value",
                    plugin=entry.sources[i] if i < len(entry.sources) else "?",
                    hook=f"agent_{entry.phase}",
                ) from exc

    def decode(self, text: str) -> journal.Entry:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise JournalCorrupt(f"journal entry is not valid JSON ({exc}): {text[:80]!r}") from exc
        if not isinstance(data, dict) or "type" not in data:
            raise JournalCorrupt(f"journal entry has no type: {text[:80]!r}")
        version = data.pop("v", None)
        if version not in READABLE_VERSIONS:
            raise JournalCorrupt(
                f"journal entry has format version {version!r}; this agent-kernel reads versions "
                f"{', '.join(map(str, sorted(READABLE_VERSIONS)))} (upgrade agent-kernel to read newer journals)"
            )
        try:
            return self.converter.structure(data, journal.Entry)
        except JournalCorrupt:
            raise
        except Exception as exc:
            own = _own_error(exc)  # e.g. an undeclared state key, inside cattrs' error group
            if own is not None:
                raise own from exc
            raise JournalCorrupt(f"journal entry {data.get('type')!r} does not load: {exc}") from exc


def _own_error(exc: BaseException) -> JournalCorrupt | None:
    """The first `JournalCorrupt` raised by one of our hooks inside cattrs' nested error groups."""
    if isinstance(exc, JournalCorrupt):
        return exc
    for inner in exc.exceptions if isinstance(exc, BaseExceptionGroup) else ():
        found = _own_error(inner)
        if found is not None:
            return found
    return None
