"""Plugin authors' mistakes are caught early, with errors that say what to do (issue 13)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, NewType, Optional, Protocol, TypedDict, TypeVar

import pytest

from agent_kernel import Agent, Context, StateKey, hookimpl, patches
from agent_kernel._plugins import instance_types
from agent_kernel.testing import CodecJournal, ScriptedModel, text

MakeAgent = Callable[..., Agent]


class Opaque:
    """A plain class: the kernel's converter cannot structure it without hooks."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.n == self.n

    __hash__ = None  # type: ignore[assignment]


class Stateful:
    """Declares `declared` (unless None) and returns `found` from agent_step_end."""

    name = "stateful"

    def __init__(self, declared: StateKey[Any] | None, found: list[patches.Patch], journal: Any = None) -> None:
        self.declared, self.found, self.journal = declared, found, journal

    @hookimpl
    def agent_register_runtime(self, runtime: Any) -> None:
        if self.declared is not None:
            runtime.add_state_key(self.declared)
        if self.journal is not None:
            runtime.set_journal(self.journal)

    @hookimpl
    def agent_step_end(self, ctx: Context) -> list[patches.Patch]:
        return self.found


async def _run(make_agent: MakeAgent, plugin: Stateful) -> Any:
    return await make_agent(ScriptedModel([text("done")]), plugin).run("go", run_id="r")


# ===================================================================================== point 12: state


async def test_an_undeclared_state_key_fails_the_run_when_returned_not_on_resume(make_agent: MakeAgent) -> None:
    key = StateKey("stateful.count", int, 0)
    outcome = await _run(make_agent, Stateful(None, [patches.IncrementData(key)], CodecJournal()))
    assert outcome.reason == "error" and outcome.error is not None
    assert (outcome.error.plugin, outcome.error.hook, outcome.error.type) == (
        "stateful",
        "agent_step_end",
        "PluginError",
    )
    assert "'stateful.count', which is not declared" in outcome.error.message
    assert "runtime.add_state_key(KEY)" in outcome.error.message
    assert outcome.state.get(key) == 0, "nothing of the refused patch was folded"


@pytest.mark.parametrize(
    ("key", "patch", "expected", "actual"),
    [
        (StateKey("s.n", int, 0), lambda k: patches.SetData(k, "3"), "int", "str"),
        (StateKey("s.n", int, 0), lambda k: patches.SetData(k, True), "int", "bool"),
        (StateKey("s.n", int, 0), lambda k: patches.IncrementData(k, 0.5), "int", "float"),
        (StateKey("s.n", str, ""), lambda k: patches.IncrementData(k), "str", "int"),
        (StateKey("s.n", tuple[str, ...], ()), lambda k: patches.SetData(k, ["a"]), "tuple[str, ...]", "list"),
        (StateKey("s.n", int | None, None), lambda k: patches.SetData(k, 1.5), "int | None", "float"),
        (StateKey("s.n", Opaque, None), lambda k: patches.SetData(k, {"n": 1}), f"{__name__}.Opaque", "dict"),
    ],
    ids=[
        "str-for-int",
        "bool-for-int",
        "float-increment-of-int",
        "increment-of-str",
        "list-for-tuple",
        "float-for-optional-int",
        "dict-for-class",
    ],
)
async def test_a_value_of_the_wrong_type_fails_the_run_naming_key_and_types(
    make_agent: MakeAgent,
    key: StateKey[Any],
    patch: Callable[[StateKey[Any]], patches.Patch],
    expected: str,
    actual: str,
) -> None:
    outcome = await _run(make_agent, Stateful(key, [patch(key)]))  # caught with the in-memory journal too
    assert outcome.reason == "error" and outcome.error is not None
    assert (outcome.error.plugin, outcome.error.hook) == ("stateful", "agent_step_end")
    message = outcome.error.message
    assert "state key 's.n'" in message and f"of type {actual} " in message, message
    assert message.endswith(f"declared with type {expected}"), message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (StateKey("s.ok", int, 0), 3),
        (StateKey("s.ok", float, 0.0), 3),
        (StateKey("s.ok", int | None, None), None),
        (StateKey("s.ok", Optional[str], None), "x"),  # noqa: UP045
        (StateKey("s.ok", tuple[int, str] | None, None), (1, "a")),
        (StateKey("s.ok", dict[str, list[int]], {}), {"a": [1]}),
        (StateKey("s.ok", Literal["a", "b"], "a"), "b"),
        (StateKey("s.ok", Any, None), {"anything": [1, "x"]}),
    ],
    ids=["int", "int-for-float", "none", "optional", "optional-tuple", "dict", "literal", "any"],
)
async def test_a_value_of_the_declared_type_round_trips(make_agent: MakeAgent, key: StateKey[Any], value: Any) -> None:
    journal = CodecJournal()
    outcome = await _run(make_agent, Stateful(key, [patches.SetData(key, value)], journal))
    assert outcome.reason == "completed", outcome.error
    resumed = await make_agent(ScriptedModel([]), Stateful(key, [], journal)).resume("r")
    assert resumed.reason == "completed" and resumed.state.get(key) == value


async def test_a_type_the_converter_cannot_serialise_names_agent_configure_converter(make_agent: MakeAgent) -> None:
    key: StateKey[Opaque | None] = StateKey("s.opaque", Opaque, None)
    outcome = await _run(make_agent, Stateful(key, [patches.SetData(key, Opaque(1))], CodecJournal()))
    assert outcome.reason == "error" and outcome.error is not None
    assert (outcome.error.plugin, outcome.error.hook) == ("stateful", "agent_step_end")
    assert "'s.opaque'" in outcome.error.message and "agent_configure_converter" in outcome.error.message

    class WithHooks(Stateful):
        @hookimpl
        def agent_configure_converter(self, converter: Any) -> None:
            converter.register_unstructure_hook(Opaque, lambda o: o.n)
            converter.register_structure_hook(Opaque, lambda raw, _: Opaque(raw))

    journal = CodecJournal()
    fixed = await _run(make_agent, WithHooks(key, [patches.SetData(key, Opaque(1))], journal))
    assert fixed.reason == "completed", fixed.error
    resumed = await make_agent(ScriptedModel([]), WithHooks(key, [], journal)).resume("r")
    assert resumed.state.get(key) == Opaque(1)


async def test_a_value_that_does_not_encode_names_the_plugin_and_agent_configure_converter(
    make_agent: MakeAgent,
) -> None:
    key = StateKey("s.any", Any, None)  # Any: the type check accepts everything, encoding does not
    outcome = await _run(make_agent, Stateful(key, [patches.SetData(key, Opaque(1))], CodecJournal()))
    assert outcome.reason == "error" and outcome.error is not None
    message = outcome.error.message
    assert "stateful.agent_step_end" in message and "'s.any'" in message, message
    assert "agent_configure_converter" in message


class _Closed(Protocol):
    def read(self) -> str: ...


class _Dict(TypedDict):
    a: int


_T = TypeVar("_T")
UserId = NewType("UserId", int)


@pytest.mark.parametrize(
    ("t", "accepted"),
    [
        (int, (int,)),
        (float, (int, float)),
        (list[int], (list,)),
        (Mapping[str, int], (Mapping,)),
        (int | None, (int, type(None))),
        (Optional[str], (str, type(None))),  # noqa: UP045
        (Annotated[str, "meta"], (str,)),
        (UserId, (int,)),
        (_Dict, (dict,)),
        (Any, None),
        (object, None),
        (_T, None),
        (_Closed, None),
        (int | Any, None),
    ],
)
def test_instance_types(t: Any, accepted: tuple[type, ...] | None) -> None:
    assert instance_types(t) == accepted


def test_instance_types_of_a_literal() -> None:
    assert set(instance_types(Literal["a", 1]) or ()) == {str, int}
