"""The ``agent-kernel`` CLI, run as a real process: streaming, JSON lines, approvals, Ctrl-C, exit codes."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import types
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_kernel import events as ev
from agent_kernel._cli import EXIT, main
from agent_kernel._console import Console, EventPrinter
from agent_kernel.testing import ScriptedModel, text, tool_call

AGENT_MODULE = '''
import os
import sys
import anyio
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_tools import Toolbox, tool

def book(city: str) -> str:
    """Book a hotel.

    Args:
        city: where.
    """
    with open("bookings.txt", "a") as f:
        f.write(city + "\\n")
    return f"booked in {city}"

@tool(idempotent=True)
async def slow(seconds: float) -> str:
    """Wait a while.

    Args:
        seconds: how long.
    """
    print("slow tool started", file=sys.stderr, flush=True)
    await anyio.sleep(float(os.environ.get("SLOW_SECONDS", seconds)))
    return "waited"

def boom() -> str:
    """Fail."""
    raise RuntimeError("boom")

booking = ScriptedModel([tool_call("book", city="Lisbon"), text("Your room in Lisbon is booked.")])
waiting = ScriptedModel([tool_call("slow", seconds=60), text("Done waiting.")])
looping = ScriptedModel([tool_call("boom")] * 5 + [text("gave up")])
toolbox = Toolbox([book, slow, boom])

class Explodes:
    name = "explodes"

    def agent_step_start(self, ctx):
        raise ValueError("this plugin is broken")
'''

CONFIG = """
[agent]
model = "scripted"
autoload = false
plugins = ["cli_agent:booking", "cli_agent:toolbox"]

[plugins.approval]
require = ["book"]

[plugins.sqlite]
path = "runs.db"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "cli_agent.py").write_text(AGENT_MODULE)
    (tmp_path / "agent.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in list(os.environ):
        if name.startswith("AGENT_KERNEL__") or name in ("NO_COLOR", "FORCE_COLOR"):
            monkeypatch.delenv(name)
    return tmp_path


def cli_env(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_KERNEL")}
    env["PYTHONPATH"] = os.pathsep.join([str(project), env.get("PYTHONPATH", "")])
    env["XDG_CONFIG_HOME"] = str(project / "xdg")
    env.pop("FORCE_COLOR", None)
    env.update(extra)
    return env


def cli(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_kernel", *args],
        cwd=project,
        env=cli_env(project, **env),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


# ---------------------------------------------------------------------- run, resume, approval


def test_a_run_streams_its_answer_and_tool_calls(project: Path) -> None:
    done = cli(project, "run", "Book me Lisbon", "--run-id", "r1", "--block", "approval")
    assert done.returncode == EXIT["completed"], done.stderr
    assert done.stdout == "Your room in Lisbon is booked.\n"
    assert "→ book(city='Lisbon')" in done.stderr
    assert "← book: booked in Lisbon" in done.stderr
    assert "[completed] run r1" in done.stderr


def test_without_a_terminal_a_run_stays_suspended_and_says_how_to_resume(project: Path) -> None:
    done = cli(project, "run", "Book me Lisbon", "--run-id", "trip")
    assert done.returncode == EXIT["suspended"] == 4, done.stderr
    assert "[suspended] run trip" in done.stderr
    request_id = "trip/1/call_1_1"
    assert f"pending {request_id}: book(city='Lisbon')" in done.stderr
    assert f"approve with: agent-kernel resume trip --approve {request_id}" in done.stderr
    assert not (project / "bookings.txt").exists()

    resumed = cli(project, "resume", "trip", "--approve", request_id, "--json")
    assert resumed.returncode == EXIT["completed"], resumed.stderr
    lines = json_lines(resumed.stdout)
    assert lines[0]["type"] == "RunStarted" and lines[0]["resumed"] is True
    assert lines[-1] == {
        "type": "Outcome",
        "run_id": "trip",
        "reason": "completed",
        "output": "Your room in Lisbon is booked.",
        "pending": [],
        "stop": None,
        "error": None,
    }
    assert (project / "bookings.txt").read_text() == "Lisbon\n"

    again = cli(project, "resume", "trip", "--approve", request_id)  # delivered twice: applied once
    assert again.returncode == EXIT["completed"], again.stderr
    assert (project / "bookings.txt").read_text() == "Lisbon\n"


def test_a_denied_request_reaches_the_model_with_its_reason(project: Path) -> None:
    assert cli(project, "run", "Book", "--run-id", "d").returncode == EXIT["suspended"]
    done = cli(project, "resume", "d", "--deny", "d/1/call_1_1", "--reason", "too pricey", "--json")
    assert done.returncode == EXIT["completed"], done.stderr
    finished = [e for e in json_lines(done.stdout) if e["type"] == "ToolCallFinished"]
    assert finished[0]["result"]["is_error"] and "too pricey" in finished[0]["result"]["content"]
    assert not (project / "bookings.txt").exists()


def test_json_lines_are_the_event_stream_then_the_outcome(project: Path) -> None:
    done = cli(project, "run", "Book", "--json", "--run-id", "j")
    assert done.returncode == EXIT["suspended"]
    lines = json_lines(done.stdout)
    assert [line["seq"] for line in lines[:-1]] == sorted({line["seq"] for line in lines[:-1]})
    assert {line["run_id"] for line in lines} == {"j"}
    assert lines[0]["type"] == "RunStarted" and lines[-2]["type"] == "RunEnded"
    assert "ApprovalRequested" in [line["type"] for line in lines]
    assert lines[-1]["type"] == "Outcome" and lines[-1]["pending"][0]["tool"] == "book"


def read_until(fd: int, needle: bytes, timeout: float = 30.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"timed out waiting for {needle!r}; got {seen.decode(errors='replace')!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen


@pytest.mark.parametrize(("answer", "booked"), [("y", True), ("not today", False)])
def test_on_a_terminal_the_cli_asks_and_goes_on(project: Path, answer: str, booked: bool) -> None:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_kernel", "run", "Book me Lisbon", "--run-id", "tty"],
        cwd=project,
        env=cli_env(project, TERM="dumb"),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    try:
        shown = read_until(controller, b"? [y]es / [n]o / or type a reason to deny: ")
        assert b"approve book(city='Lisbon')?" in shown
        os.write(controller, answer.encode() + b"\n")
        rest = read_until(controller, b"[completed] run tty")
        assert process.wait(timeout=30) == EXIT["completed"]
    finally:
        process.kill()
        os.close(controller)
    assert (b"Your room in Lisbon is booked." in rest) is True
    assert (project / "bookings.txt").exists() is booked
    if not booked:
        assert b"not today" in rest


def wait_for_line(process: subprocess.Popen[Any], line: Any) -> None:
    """Read the process's stderr until `line` (the tool is then running)."""
    assert process.stderr is not None
    while (got := process.stderr.readline()) != line:
        assert got, "the run ended before the tool started"


def test_ctrl_c_cancels_the_run_which_another_process_resumes(project: Path) -> None:
    config = CONFIG.replace("cli_agent:booking", "cli_agent:waiting")
    (project / "agent.toml").write_text(config)
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_kernel", "run", "Wait", "--run-id", "c", "--json"],
        cwd=project,
        env=cli_env(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    wait_for_line(process, b"slow tool started\n")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == EXIT["cancelled"] == 5, err
    last = json.loads(out.splitlines()[-1])
    assert last["type"] == "Outcome", "the JSON stream ends with its outcome, an interrupted one too"
    assert (last["run_id"], last["reason"], last["resume"]) == ("c", "cancelled", "agent-kernel resume c")
    assert last["error"]["type"] == "KeyboardInterrupt"

    resumed = cli(project, "resume", "c", "--json", SLOW_SECONDS="0")
    assert resumed.returncode == EXIT["completed"], resumed.stderr
    events = json_lines(resumed.stdout)
    assert events[0]["type"] == "RunStarted" and events[0]["attempt"] == 2
    assert [e["result"]["content"] for e in events if e["type"] == "ToolCallFinished"] == ["waited"]
    assert events[-1]["output"] == "Done waiting."


def test_ctrl_c_in_plain_mode_says_how_to_continue(project: Path) -> None:
    (project / "agent.toml").write_text(CONFIG.replace("cli_agent:booking", "cli_agent:waiting"))
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_kernel", "run", "Wait", "--run-id", "p"],
        cwd=project,
        env=cli_env(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    wait_for_line(process, "slow tool started\n")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == EXIT["cancelled"]
    assert "[cancelled] run p: interrupted; continue with: agent-kernel resume p" in err


# ---------------------------------------------------------------------- exit codes and errors


def test_exit_codes_for_stopped_error_and_configuration_error(project: Path) -> None:
    (project / "agent.toml").write_text(CONFIG.replace("cli_agent:booking", "cli_agent:looping"))
    stopped = cli(project, "run", "Loop", "--set", "plugins.limits.max_steps=2")
    assert stopped.returncode == EXIT["stopped"] == 3, stopped.stderr
    assert "limit.steps" in stopped.stderr

    failed = cli(project, "run", "Go", "--plugin", "cli_agent:Explodes")
    assert failed.returncode == EXIT["error"] == 1
    assert "explodes.agent_step_start" in failed.stderr and "this plugin is broken" in failed.stderr

    bad = cli(project, "run", "Go", "--set", "plugins.limits.max_steps=ten")
    assert bad.returncode == 2
    assert bad.stderr == (
        "agent-kernel: configuration error:\n"
        'option plugins.limits.max_steps: plugins.limits.max_steps: expected an integer, got "ten"\n'
    )


def test_a_run_needs_a_model(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "agent.toml").write_text("")
    assert main(["run", "hi"]) == 2
    assert "no model: pass --model MODEL or set model in the [agent] table" in capsys.readouterr().err


def test_resuming_an_unknown_run_is_an_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resume", "nope"]) == EXIT["error"]
    assert "no run 'nope' in the journal" in capsys.readouterr().err


def test_config_check_prints_the_merged_configuration_without_secrets(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "agent.toml").write_text(CONFIG + '\n[plugins.openai]\napi_key_env = "MY_KEY"\n')
    monkeypatch.setenv("MY_KEY", "sk-do-not-print")
    monkeypatch.setenv("AGENT_KERNEL__PLUGINS__SQLITE__DURABILITY", "batched")
    assert main(["config", "check", "--set", "agent.instructions=Be brief."]) == 0
    out = capsys.readouterr().out
    assert "sk-do-not-print" not in out
    assert out.startswith(
        "# files read: agent.toml\n# plugins loaded: approval, openai-config, scripted, sqlite, toolbox\n"
        '# $MY_KEY: set\n[agent]\nmodel = "scripted"\ninstructions = "Be brief."\n'
    )
    assert '[plugins.sqlite]\npath = "runs.db"\ndurability = "batched"\n' in out

    assert main(["config", "check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["plugins"]["approval"]["require"] == ["book"]
    assert data["secrets"] == {"MY_KEY": True} and data["files"] == ["agent.toml"]
    assert {"approval", "sqlite", "openai-config"} <= set(data["plugins"])

    (project / "agent.toml").write_text("[plugins.retry]\nmax_attempts = 0\n")
    assert main(["config", "check"]) == 2
    assert "AGENT_KERNEL__PLUGINS__SQLITE__DURABILITY: plugins.sqlite.path: missing" in capsys.readouterr().err
    monkeypatch.delenv("AGENT_KERNEL__PLUGINS__SQLITE__DURABILITY")
    assert main(["config", "check"]) == 2
    assert "agent.toml: plugins.retry: max_attempts" in capsys.readouterr().err

    (project / "agent.toml").write_text("[plugins.approval]\nrequire = 'book'\n")
    assert main(["config", "check"]) == 2
    assert 'agent.toml: plugins.approval.require: expected a list, got "book"' in capsys.readouterr().err


def test_plugins_lists_the_installed_plugins_and_plugin_commands_are_added(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--hook", "agent_register_commands"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert "sqlite" in {row["name"] for row in rows}
    with pytest.raises(SystemExit):
        main(["--help"])  # fast: the plugins are not loaded for it
    assert "installed plugins add more commands" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["sqlite", "--help"])  # a command that is not built in loads them
    assert "usage: agent-kernel sqlite" in capsys.readouterr().out


# ---------------------------------------------------------------------- rich and plain output


def test_rich_styles_the_output_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    file = io.StringIO()
    console = Console(file)
    assert console.rich
    console.line("careful", "yellow")
    assert file.getvalue() == "\x1b[33mcareful\x1b[0m\n"


def test_without_rich_the_output_is_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    file = io.StringIO()
    console = Console(file)
    assert not console.rich
    console.line("careful", "yellow")
    console.write("part")
    assert file.getvalue() == "careful\npart"


@pytest.mark.parametrize("rich_importable", [True, False])
def test_the_cli_works_with_and_without_rich(project: Path, rich_importable: bool) -> None:
    blocker = project / "no_rich"
    (blocker / "rich").mkdir(parents=True)
    (blocker / "rich" / "__init__.py").write_text("raise ImportError('rich is not installed')\n")
    env = {"FORCE_COLOR": "1"}
    if not rich_importable:
        env["PYTHONPATH"] = os.pathsep.join([str(blocker), str(project)])
    done = cli(project, "run", "Book", "--block", "approval", **env)
    assert done.returncode == 0, done.stderr
    assert ("\x1b[" in done.stderr) is rich_importable
    assert "← book: booked in Lisbon" in done.stderr


def test_the_printer_ends_streamed_text_before_a_status_line() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = EventPrinter(Console(out, use_rich=False), Console(err, use_rich=False))
    printer.show(ev.TextDelta(seq=1, run_id="r", text="Hello"))
    printer.status("status")
    printer.show(ev.TextDelta(seq=2, run_id="r", text=" again"))
    printer.end_text()
    assert out.getvalue() == "Hello\n again\n"
    assert err.getvalue() == "  status\n"


# ---------------------------------------------------------------------- properties

TURN = st.one_of(
    st.builds(text, st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20)),
    st.builds(lambda n: tool_call("add", a=n, b=1), st.integers(-5, 5)),
    st.just(tool_call("missing_tool")),
)


PROPERTY_CONFIG = """
[agent]
model = "scripted"
autoload = false
plugins = ["cli_property_agent:model", "cli_property_agent:toolbox"]
"""


def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: the first.
        b: the second.
    """
    return a + b


@given(turns=st.lists(TURN, max_size=5), max_steps=st.integers(1, 4))
def test_json_mode_streams_ordered_events_and_exits_with_the_outcomes_code(
    tmp_path_factory: pytest.TempPathFactory, turns: list[Any], max_steps: int
) -> None:
    from agent_plugin_tools import Toolbox

    config = tmp_path_factory.mktemp("property") / "agent.toml"
    config.write_text(PROPERTY_CONFIG)
    module = types.ModuleType("cli_property_agent")
    module.model = ScriptedModel([*turns, text("the end")])  # type: ignore[attr-defined]
    module.toolbox = Toolbox([add])  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            code = main(
                [
                    *("run", "go", "--json", "--config", str(config), "--no-user-config"),
                    "--set",
                    f"plugins.limits.max_steps={max_steps}",
                ]
            )
    finally:
        del sys.modules[module.__name__]
    lines = json_lines(out.getvalue())
    events, outcome = lines[:-1], lines[-1]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    assert events[0]["type"] == "RunStarted" and events[-1]["type"] == "RunEnded"
    assert outcome["type"] == "Outcome" and outcome["reason"] == events[-1]["reason"]
    assert code == EXIT[outcome["reason"]]
    steps_needed = next((n + 1 for n, turn in enumerate(turns) if type(turn).__name__ == "Text"), len(turns) + 1)
    assert outcome["reason"] == ("completed" if steps_needed <= max_steps else "stopped")
