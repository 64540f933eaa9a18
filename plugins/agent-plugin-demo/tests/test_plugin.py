"""The distribution: entry point, what autoloading does, the `agent-kernel demo` command, public imports only."""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

from importlib_metadata import distribution, entry_points

import agent_plugin_demo
from agent_kernel import Agent
from agent_kernel.testing import ScriptedModel, text

PACKAGE = Path(agent_plugin_demo.__file__).parent


def test_the_entry_point_names_the_module():
    (ep,) = entry_points(group="agent_kernel.plugins", name="demo")
    assert ep.value == "agent_plugin_demo"
    assert ep.dist is not None and ep.dist.name == "agent-plugin-demo"
    assert ep.load() is agent_plugin_demo
    requires = distribution("agent-plugin-demo").requires or []
    names = sorted(r.split(">")[0].split("[")[0].strip() for r in requires if "extra ==" not in r)
    assert names == ["agent-kernel", "agent-plugin-sqlite", "agent-plugin-tools"]


def test_autoloading_adds_only_the_command(monkeypatch):
    monkeypatch.delenv("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "demo")  # only this entry point
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("hi")])])
    info = agent.plugins["demo"]
    assert (info.distribution, info.version) == ("agent-plugin-demo", agent_plugin_demo.__version__)
    assert info.hooks == ("agent_register_commands",)


def test_agent_kernel_plugins_lists_it():
    cli = Path(sys.executable).with_name("agent-kernel")
    done = subprocess.run([str(cli), "plugins", "--hook", "agent_register_commands"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["demo"]["distribution"] == "agent-plugin-demo"


def test_the_module_adds_the_demo_command():
    class Registrar:  # the part of CommandRegistrar the hook uses
        def __init__(self):
            self.commands = {}

        def add(self, name, configure, run, help=""):
            self.commands[name] = (configure, run, help)

    registrar = Registrar()
    agent_plugin_demo.agent_register_commands(registrar)
    assert list(registrar.commands) == ["demo"]
    configure, run, help_text = registrar.commands["demo"]
    assert "no network, no key" in help_text and callable(run)
    parser = argparse.ArgumentParser()
    configure(parser)
    assert parser.parse_args(["--fast"]).fast is True
    assert parser.parse_args([]).fast is False


def test_loading_the_plugin_does_not_import_the_demo():
    code = "import sys, agent_plugin_demo; print(sorted(m for m in sys.modules if m.startswith('agent_plugin')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['agent_plugin_demo']"]


def runtime_imports(source: str) -> list[str]:
    """The absolute imports of `source`, leaving out those under ``if TYPE_CHECKING:``."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def test_the_plugin_imports_only_public_kernel_modules():
    sources = sorted(PACKAGE.glob("*.py"))
    assert {p.name for p in sources} >= {"__init__.py", "_demo.py"}
    private = {
        p.name: [m for m in runtime_imports(p.read_text()) if m.split(".")[0] == "agent_kernel" and "._" in m]
        for p in sources
    }
    assert {name: mods for name, mods in private.items() if mods} == {}


def test_private_kernel_imports_are_found():
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agent_kernel._registry import X\n"
        "else:\n    import agent_kernel._b\nfrom agent_kernel._console import Console\n"
        "def f():\n    from agent_kernel.console import Console\n"
    )
    assert runtime_imports(source) == ["typing", "agent_kernel._b", "agent_kernel._console", "agent_kernel.console"]
