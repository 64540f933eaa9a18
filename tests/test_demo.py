"""``agent-kernel demo`` (agent-plugin-demo): it tells the whole story, in real processes, quickly.

The kernel itself imports none of its plugins: the demo is a plugin like any other.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent_kernel.console import Console


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_kernel", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard only: a fast demo takes a few seconds
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


def test_the_demo_runs_pauses_crashes_resumes_and_sums_up() -> None:
    done = demo("--fast")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    expected_in_order = [
        "① The run starts in this process.",
        "model asks for 2 tool call(s): get_weather, convert",
        "← get_weather: sunny, 24°C",
        "⏸ approval needed [demo-trip/2/call_2_1] book_hotel",
        "── RunEnd: suspended",
        "② A human approves the booking",
        "✔ approved demo-trip/2/call_2_1",
        "── RunStart (attempt 2, resumed)",
        "← book_hotel: Booked Hotel Avenida, Lisbon, 2 nights",
        "→ local_events(city='Lisbon')",
        "💥 the second process died (exit code 137)",
        "③ This process reopens",
        "The last one is the intent of call call_3_1 (local_events)",
        "── RunStart (attempt 3, resumed)",
        "← local_events: Fado night in Alfama",
        "assistant: Lisbon is sunny at 24°C",
        "── RunEnd: completed",
        "What the kernel did",
        "invocations: 3",
        "phases passed:    run_start ×3, step_start ×4",
        "plugin patches:   Suspend ×1",
        "model requests:   4 for 4 recorded turns",
        "tool runs:        get_weather ×1, convert ×1, book_hotel ×1, local_events ×2",
    ]
    position = 0
    for line in expected_in_order:
        found = out.find(line, position)
        assert found >= 0, f"{line!r} missing after position {position} in:\n{out}"
        position = found + len(line)
    assert "\x1b[" not in out  # NO_COLOR


def test_the_demo_explains_a_missing_sqlite_plugin(tmp_path: Path) -> None:
    blocker = tmp_path / "agent_plugin_sqlite"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    # as if not installed: the module does not import, and only the demo's entry point is loaded
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "AGENT_KERNEL_PLUGINS": "demo",
    }
    done = demo("--fast", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the demo needs agent-plugin-sqlite: install it" in done.stderr


def test_the_demo_command_comes_from_its_plugin() -> None:
    from agent_kernel._cli import BUILTIN_COMMANDS, build_parser

    assert "demo" not in BUILTIN_COMMANDS
    _, registrar = build_parser()
    assert registrar.commands["demo"].plugin == "demo"
    # without its plugin there is no demo command (argparse: invalid choice, exit 2)
    done = demo("--fast", env={"AGENT_KERNEL_PLUGINS": ""})
    assert done.returncode == 2 and "invalid choice: 'demo'" in done.stderr, done.stderr


KERNEL = Path(__file__).parent.parent / "core" / "agent_kernel"


def plugin_imports(source: str) -> list[str]:
    """The modules named ``agent_plugin*`` that `source` imports (at any depth, guarded or not)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
            "__import__",
            "import_module",
        ):
            found += [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return [name for name in found if name.split(".")[0].startswith("agent_plugin")]


def test_the_kernel_imports_no_plugin() -> None:
    sources = sorted(KERNEL.rglob("*.py"))
    assert len(sources) > 10, sources
    found = {str(p.relative_to(KERNEL)): plugin_imports(p.read_text()) for p in sources}
    assert {path: names for path, names in found.items() if names} == {}


def test_plugin_imports_are_found() -> None:
    source = (
        "import os\nfrom agent_plugin_tools import Toolbox\ndef f():\n    import agent_plugin_sqlite.x\n"
        "    __import__('agent_plugin_mcp')\n    importlib.import_module('agent_plugin_x')\nfrom . import _y\n"
    )
    assert sorted(plugin_imports(source)) == [
        "agent_plugin_mcp",
        "agent_plugin_sqlite.x",
        "agent_plugin_tools",
        "agent_plugin_x",
    ]


@pytest.mark.parametrize("fast", [False, True], ids=["watchable", "fast"])
def test_the_demo_pauses_only_when_watched_and_briefly(
    fast: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its pauses are counted, not timed: a loaded machine cannot make this flaky."""
    from agent_plugin_demo import _demo

    pauses: list[float] = []
    monkeypatch.setattr(_demo, "time", SimpleNamespace(sleep=pauses.append))
    monkeypatch.setattr(_demo, "_out", Console(sys.stdout, use_rich=False))  # this test's captured stdout
    monkeypatch.delenv("AGENT_KERNEL_DEMO_FAST", raising=False)  # main(fast=True) sets it: undone after
    assert _demo.main(fast=fast) == 0, capsys.readouterr()
    assert "What the kernel did" in capsys.readouterr().out
    if fast:
        assert pauses == []
    else:
        typing = [p for p in pauses if p == 0.03]
        assert len(typing) >= 10, pauses  # the answer streams at a typing pace
        assert 3 < sum(pauses) < 7, f"the watchable demo pauses {sum(pauses):.2f} s in all: {pauses}"
