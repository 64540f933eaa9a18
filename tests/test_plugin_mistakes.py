"""Plugin authors' mistakes are caught early, with errors that say what to do (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NewType, Optional, Protocol, TypedDict, TypeVar

import pytest

from agent_kernel import Agent, Context, StateKey, hookimpl, patches
from agent_kernel._fold import merge_concurrent
from agent_kernel._state import instance_types
from agent_kernel.errors import PatchConflict, PluginLoadError
from agent_kernel.testing import CodecJournal, ScriptedModel, install_distribution, text

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


# ===================================================================================== point 16: messages


def _load_error(*plugins: object) -> str:
    with pytest.raises(PluginLoadError) as info:
        Agent(model="scripted", plugins=plugins, autoload=False)
    return str(info.value)


def test_an_unknown_hook_name_suggests_the_closest() -> None:
    class Typo:
        name = "typo"

        def agent_after_inferense(self, ctx: object) -> None:  # no @hookimpl: still caught
            pass

    message = _load_error(Typo())
    assert "plugin 'typo' implements 'agent_after_inferense'" in message
    assert "did you mean 'agent_after_inference'?" in message


def test_an_unknown_hook_name_far_from_every_hook_suggests_nothing() -> None:
    class Odd:
        name = "odd"

        @hookimpl
        def agent_zzzzzzzzzzzz(self) -> None:
            pass

    message = _load_error(Odd())
    assert "'agent_zzzzzzzzzzzz'" in message and "did you mean" not in message


def test_an_unknown_hook_argument_lists_the_valid_ones() -> None:
    class Arguments:
        name = "arguments"

        @hookimpl
        def agent_after_tool_execute(self, ctx: object, tool_call: object) -> None:
            pass

    message = _load_error(Arguments())
    assert message.startswith("plugin 'arguments': agent_after_tool_execute(ctx, tool_call) takes 'tool_call'")
    assert "its arguments are ctx, call, result" in message


def test_a_plugin_class_instead_of_an_instance_says_so() -> None:
    class MyPlugin:
        @hookimpl
        def agent_step_start(self, ctx: object) -> None:
            pass

    message = _load_error(MyPlugin)
    assert "plugin 'MyPlugin' is the class" in message and "pass an instance: MyPlugin()" in message
    assert "MyPlugin" in Agent(model="scripted", plugins=[MyPlugin()], autoload=False).plugins


def test_a_class_of_static_hooks_is_still_a_plugin() -> None:
    class Namespace:
        name = "namespace"

        @staticmethod
        @hookimpl
        def agent_step_start(ctx: object) -> None:
            pass

    assert "namespace" in Agent(model="scripted", plugins=[Namespace], autoload=False).plugins


def test_an_async_wrapper_points_to_the_wrap_hooks() -> None:
    class AsyncWrapper:
        name = "async-wrapper"

        @hookimpl(wrapper=True)
        async def agent_before_inference(self, ctx: object, request: object) -> Any:
            return None

    message = _load_error(AsyncWrapper())
    assert message.startswith(
        "plugin 'async-wrapper': agent_before_inference is marked wrapper=True but is an async def"
    )
    assert "async context manager" in message and "agent_wrap_inference" in message


def test_patch_conflict_names_the_plugins() -> None:
    key = StateKey("conflict.k", int, 0)
    batches = [[patches.Remind("x"), patches.SetData(key, 1)], [patches.SetData(key, 2)]]
    with pytest.raises(PatchConflict) as info:
        merge_concurrent(batches, ["call_1", "call_2"], [["reminder", "first"], ["second"]])
    assert "'call_1' (SetData by plugin 'first') and 'call_2' (SetData by plugin 'second')" in str(info.value)
    assert (info.value.key, info.value.calls, info.value.plugins) == (
        "conflict.k",
        ("call_1", "call_2"),
        ("first", "second"),
    )


# ------------------------------------------------------------------------- a broken installed plugin

GOOD = """
from agent_kernel import hookimpl

@hookimpl
def agent_run_start(ctx):
    return None
"""


@pytest.fixture
def broken_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site directory on sys.path with a good and a broken installed distribution."""
    site = tmp_path / "site"
    install_distribution(site, "agent-plugin-good", "good", "agent_plugin_good", GOOD, "1.5")
    install_distribution(site, "agent-plugin-broken", "broken", "agent_plugin_broken", "raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(site))
    for var in ("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", "AGENT_KERNEL_PLUGINS", "AGENT_KERNEL_TRACE_HOOKS"):
        monkeypatch.delenv(var, raising=False)
    return site


def _cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_KERNEL")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "agent_kernel._cli", *args], capture_output=True, text=True, env=env, check=False
    )


def test_a_broken_installed_plugin_says_how_to_block_it(broken_site: Path) -> None:
    with pytest.raises(PluginLoadError) as info:
        Agent(model="scripted")
    message = str(info.value)
    assert "'broken'" in message and "agent-plugin-broken" in message and "boom" in message
    assert "Agent(block=['broken'])" in message and "AGENT_KERNEL_PLUGINS" in message
    assert "block = ['broken']" in message and "--block broken" in message
    agent = Agent(model="scripted", block=["broken"])  # the advice works
    assert "good" in agent.plugins and "broken" not in agent.plugins


def test_a_plugin_that_registers_badly_is_blamed_with_the_same_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    source = "from agent_kernel import hookimpl\n\n@hookimpl\ndef agent_step_strat(ctx):\n    return None\n"
    install_distribution(site, "agent-plugin-typo", "typo", "agent_plugin_typo", source)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("AGENT_KERNEL_PLUGINS", raising=False)
    monkeypatch.delenv("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    with pytest.raises(PluginLoadError, match=r"did you mean 'agent_step_start'.*Agent\(block=\['typo'\]\)"):
        Agent(model="scripted")


def test_the_plugins_command_lists_the_others_and_marks_the_broken_one(broken_site: Path) -> None:
    result = _cli(broken_site, "plugins")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["good"]["hooks"] == ["agent_run_start"] and "error" not in rows["good"]
    assert rows["broken"]["distribution"] == "agent-plugin-broken" and "boom" in rows["broken"]["error"]
    assert "hooks" not in rows["broken"]
    assert "plugin 'broken' is broken" in result.stderr
    strict = _cli(broken_site, "plugins", "--strict")
    assert strict.returncode == 1 and json.loads(strict.stdout) == json.loads(result.stdout)
    blocked = _cli(broken_site, "plugins", "--strict", "--block", "broken")
    assert blocked.returncode == 0 and "broken" not in {row["name"] for row in json.loads(blocked.stdout)}
