"""Plugin loading: entry points, autoload switches, strict validation, the plugins command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Generator
from pathlib import Path

import pytest

from agent_kernel import Agent, ToolRegistrar, ToolResult, ToolSpec, hookimpl, patches
from agent_kernel.errors import PluginLoadError
from agent_kernel.testing import RunRecorder, ScriptedModel, text


def install_distribution(site: Path, dist: str, entry: str, module: str, source: str, version: str = "1.0") -> None:
    """Install a distribution into `site` the way an installer lays it out.

    A module, and a ``.dist-info`` with METADATA, entry_points.txt and RECORD:
    importlib-metadata finds it like any installed package.
    """
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[agent_kernel.plugins]\n{entry} = {module}\n")
    (info / "RECORD").write_text(
        f"{module}.py,,\n{info.name}/METADATA,,\n{info.name}/entry_points.txt,,\n{info.name}/RECORD,,\n"
    )


GREETER = """
from agent_kernel import hookimpl, patches

@hookimpl
def agent_run_start(ctx):
    return [patches.InjectContext("greetings from an installed plugin")]
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site directory on sys.path holding a real installed test distribution."""
    site = tmp_path / "site"
    install_distribution(site, "agent-plugin-greeter", "greeter", "agent_plugin_greeter", GREETER, "2.5")
    monkeypatch.syspath_prepend(str(site))
    for var in ("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", "AGENT_KERNEL_PLUGINS", "AGENT_KERNEL_TRACE_HOOKS"):
        monkeypatch.delenv(var, raising=False)
    return site


def run_cli(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(site), **env}
    return subprocess.run(
        [sys.executable, "-m", "agent_kernel._cli", *args], capture_output=True, text=True, env=environment, check=False
    )


async def test_entry_point_plugin_is_discovered_and_its_hooks_run(site: Path) -> None:
    model = ScriptedModel([text("hi")])
    agent = Agent(model="scripted", plugins=[model])
    info = agent.plugins["greeter"]
    assert (info.distribution, info.version, info.hooks) == ("agent-plugin-greeter", "2.5", ("agent_run_start",))
    outcome = await agent.run("hello")
    assert outcome.reason == "completed"
    assert model.requests[0].messages[0].content == "greetings from an installed plugin"


def test_autoload_off_block_and_allow_list(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "greeter" not in Agent(model="scripted", autoload=False).plugins
    assert "greeter" not in Agent(model="scripted", block=["greeter"]).plugins
    monkeypatch.setenv("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "greeter" not in Agent(model="scripted").plugins
    monkeypatch.delenv("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "")
    assert "greeter" not in Agent(model="scripted").plugins
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "other,greeter")
    assert "greeter" in Agent(model="scripted").plugins


def test_each_agent_has_its_own_plugin_manager(site: Path) -> None:
    a, b = Agent(model="scripted", plugins=[RunRecorder()]), Agent(model="scripted")
    assert a.plugin_manager is not b.plugin_manager
    assert "run-recorder" in a.plugins and "run-recorder" not in b.plugins


def test_duplicate_entry_point_names_fail_loudly(site: Path) -> None:
    install_distribution(site, "agent-plugin-greeter2", "greeter", "agent_plugin_greeter2", GREETER)
    with pytest.raises(PluginLoadError, match=r"'greeter'.*agent-plugin-greeter.*agent-plugin-greeter2"):
        Agent(model="scripted")


def test_duplicate_plugin_names_in_code_fail_loudly() -> None:
    with pytest.raises(PluginLoadError, match=r"two plugins are named 'run-recorder'"):
        Agent(model="scripted", plugins=[RunRecorder(), RunRecorder()], autoload=False)


def test_unknown_hook_name_fails_at_load_time() -> None:
    class Typo:
        name = "typo"

        def agent_step_strat(self, ctx: object) -> None:  # no @hookimpl: still caught
            pass

    with pytest.raises(PluginLoadError, match=r"typo.*agent_step_strat"):
        Agent(model="scripted", plugins=[Typo()], autoload=False)


def test_old_style_hookwrapper_is_refused() -> None:
    class Old:
        name = "old"

        @hookimpl(hookwrapper=True)
        def agent_step_start(self, ctx: object):  # type: ignore[no-untyped-def]
            yield

    with pytest.raises(PluginLoadError, match="old-style hookwrapper"):
        Agent(model="scripted", plugins=[Old()], autoload=False)


def test_a_wrapper_of_a_registration_hook_is_refused() -> None:
    class Wraps:
        name = "wraps"

        @hookimpl(wrapper=True)
        def agent_register_tools(self, tools: object) -> Generator[None, object, object]:
            return (yield)

    with pytest.raises(PluginLoadError, match="agent_register_tools is marked wrapper=True, but registration hooks"):
        Agent(model="scripted", plugins=[Wraps()], autoload=False)


def test_registrations_are_attributed_to_the_instance_that_made_them() -> None:
    """Two instances of one class share their hook's code: each registration is still its own."""

    class Offers:
        def __init__(self, name: str) -> None:
            self.name = name

        @hookimpl
        def agent_register_tools(self, tools: ToolRegistrar) -> None:
            tools.add(ToolSpec(f"{self.name}_tool", "", {"type": "object"}), _never_called)

    agent = Agent(model="scripted", plugins=[Offers("one"), Offers("two")], autoload=False)
    assert {spec.name: spec.plugin for spec in agent.tools} == {"one_tool": "one", "two_tool": "two"}


async def _never_called(arguments: object, context: object) -> ToolResult:
    raise AssertionError("not called")


def test_broken_entry_point_names_the_distribution(site: Path) -> None:
    install_distribution(site, "agent-plugin-broken", "broken", "agent_plugin_broken", "raise RuntimeError('boom')\n")
    with pytest.raises(PluginLoadError, match=r"'broken'.*agent-plugin-broken.*boom"):
        Agent(model="scripted")


def test_plugins_command_prints_json(site: Path) -> None:
    result = run_cli(site, "plugins")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["greeter"] == {
        "name": "greeter",
        "distribution": "agent-plugin-greeter",
        "version": "2.5",
        "hooks": ["agent_run_start"],
    }
    blocked = json.loads(run_cli(site, "plugins", "--block", "greeter").stdout)
    assert "greeter" not in {row["name"] for row in blocked}


async def test_trace_hooks_prints_every_call(
    site: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_KERNEL_TRACE_HOOKS", "1")
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("hi")])])
    outcome = await agent.run("hello")
    assert outcome.reason == "completed"
    err = capfd.readouterr().err
    assert "agent_run_start" in err and "agent_step_end" in err and "greetings from an installed plugin" in err


async def test_trace_keeps_patch_order_and_effect(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Traced calls go through pluggy's caller; the result must be the same."""

    class Second:
        name = "second"

        @hookimpl
        def agent_run_start(self) -> list[patches.Patch]:
            return [patches.InjectContext("from code")]

    monkeypatch.setenv("AGENT_KERNEL_TRACE_HOOKS", "1")
    model = ScriptedModel([text("hi")])
    await Agent(model="scripted", plugins=[model, Second()]).run("x")
    contexts = [m.content for m in model.requests[0].messages if m.role == "system"]
    assert contexts == ["from code", "greetings from an installed plugin"]


async def test_plugins_with_identical_source_are_told_apart() -> None:
    """Code objects of identical source compare equal: registrations must not be attributed by equality."""
    source = (
        "from agent_kernel import hookimpl\n"
        "@hookimpl\n"
        "def agent_register_models(models):\n"
        "    models.add_prefix(PREFIX, serve)\n"
        "def serve(name):\n"
        "    raise RuntimeError('no server for ' + name)\n"
    )
    modules = []
    for name, prefix in (("plugin_a", "a:"), ("plugin_b", "b:")):
        module = types.ModuleType(name)
        module.PREFIX = prefix  # type: ignore[attr-defined]
        exec(compile(source, "plugin.py", "exec"), module.__dict__)
        modules.append(module)
    for owner, model in (("plugin_a", "a:model"), ("plugin_b", "b:model")):
        outcome = await Agent(model=model, plugins=modules, autoload=False).run("hi")
        assert outcome.error is not None
        assert f"plugin {owner!r} could not serve model {model!r}" in outcome.error.message, outcome.error


@pytest.mark.parametrize("through_pluggy", [False, True])
async def test_two_instances_of_one_plugin_class_are_told_apart_in_blame(through_pluggy: bool) -> None:
    """They share code objects: the failing one is known by the instance, with or without a wrapper."""

    class Check:
        def __init__(self, name: str, fail: bool) -> None:
            self.name, self.fail = name, fail

        @hookimpl
        def agent_run_start(self) -> None:
            if self.fail:
                raise RuntimeError(f"{self.name} refuses")

    class Wrapper:
        name = "wrapper"

        @hookimpl(wrapper=True)
        def agent_run_start(self) -> Generator[None, object, object]:
            return (yield)

    for failing in ("first", "second"):
        checks = [Check("first", failing == "first"), Check("second", failing == "second")]
        plugins = [ScriptedModel([text("hi")]), *checks, *([Wrapper()] if through_pluggy else [])]
        outcome = await Agent(model="scripted", plugins=plugins, autoload=False).run("x")
        assert outcome.error is not None and outcome.error.plugin == failing, outcome.error
