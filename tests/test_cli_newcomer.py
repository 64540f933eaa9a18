"""Issue 13, the newcomer's path: what a first user of the CLI, ``agent.toml`` and ``Agent(...)`` meets."""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent_kernel import Agent
from agent_kernel._agent import DEFAULT_MAX_STEPS
from agent_kernel.config import ConfigError, _secret, import_object, load_config
from agent_kernel.errors import MissingComponent, PluginLoadError
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_tools import Toolbox


def ping() -> str:
    """Answer pong."""
    return "pong"


def looping_agent(**kwargs: Any) -> Agent:
    model = ScriptedModel([tool_call("ping")] * 200)  # never answers in time
    return Agent(model="scripted", plugins=[model, Toolbox([ping])], autoload=False, **kwargs)


# ---------------------------------------------------------------------- 3. a default step limit


async def test_a_looping_model_stops_at_the_default_step_limit() -> None:
    outcome = await looping_agent().run("loop")
    assert DEFAULT_MAX_STEPS == 50
    assert outcome.reason == "stopped"
    assert outcome.stop is not None and outcome.stop.code == "limit.steps"
    assert outcome.stats.steps == DEFAULT_MAX_STEPS


async def test_the_step_limit_is_overridable_and_removable() -> None:
    outcome = await looping_agent(max_steps=3).run("loop")
    assert (outcome.reason, outcome.stats.steps) == ("stopped", 3)
    agent = looping_agent(max_steps=None)
    assert agent.max_steps is None and looping_agent(max_steps=0).max_steps is None
    finite = ScriptedModel([tool_call("ping")] * 60 + [text("done")])
    outcome = await Agent(model="scripted", plugins=[finite, Toolbox([ping])], autoload=False, max_steps=None).run("go")
    assert (outcome.reason, outcome.stats.steps) == ("completed", 61)


async def test_a_run_that_answers_at_the_last_step_completes() -> None:
    model = ScriptedModel([tool_call("ping"), text("done")])
    outcome = await Agent(model="scripted", plugins=[model, Toolbox([ping])], autoload=False, max_steps=2).run("go")
    assert outcome.reason == "completed" and outcome.output == "done"


async def test_a_run_stopped_by_the_step_limit_resumes_to_the_same_outcome() -> None:
    agent = looping_agent(max_steps=2)
    first = await agent.run("loop")
    again = await agent.resume(first.run_id)
    assert (again.reason, again.stop) == (first.reason, first.stop)
    assert again.stats.steps == first.stats.steps == 2


@pytest.mark.parametrize("bad", [-1, 2.5, True, "10"])
def test_a_bad_step_limit_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_steps"):
        looping_agent(max_steps=bad)


# ---------------------------------------------------------------------- 7. model strings


def model_error(model: str) -> str:
    agent = Agent(model=model, plugins=[ScriptedModel([text("hi")])], autoload=True, block=["approval"])
    problem = agent.unknown_model(model)
    assert problem is not None
    return problem


def test_a_provider_name_alone_says_to_add_the_model_name() -> None:
    message = model_error("openai")
    assert "install" not in message
    assert "'openai' names a provider, not a model: write openai:<model name>" in message


def test_a_bare_model_name_suggests_the_provider_prefix() -> None:
    message = model_error("gpt-4o-mini")
    assert "did you mean" in message and "openai:gpt-4o-mini" in message


def test_an_unknown_provider_says_what_to_install() -> None:
    assert "install agent-plugin-anthropic" in Agent(autoload=False).unknown_model("anthropic:claude")  # type: ignore[operator]


async def test_running_an_unknown_model_raises_the_same_message() -> None:
    agent = Agent(model="openai", plugins=[ScriptedModel([text("hi")])], autoload=True, block=["approval"])
    outcome = await agent.run("hi")
    assert outcome.reason == "error" and outcome.error is not None
    assert "write openai:<model name>" in outcome.error.message
    assert agent.unknown_model("scripted") is None and agent.unknown_model("openai:gpt-4o-mini") is None
    with pytest.raises(MissingComponent, match="write openai:<model name>"):
        agent._wiring.executor("openai")  # what the run reported: the executor lookup's error


# ---------------------------------------------------------------------- 8. duplicate plugin names


class Named:
    name = "sqlite"


def test_two_plugins_of_one_name_are_both_described() -> None:
    with pytest.raises(PluginLoadError) as info:
        Agent(model="scripted", plugins=[Named(), Named()], autoload=False)
    message = str(info.value)
    assert "from code and code" not in message
    assert message.count(f"{__name__}.Named object given in code") == 2


# ---------------------------------------------------------------------- the CLI, as a real process

MODULE = '''
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_tools import Toolbox


def book(city: str) -> str:
    """Book a hotel.

    Args:
        city: where.
    """
    with open("bookings.txt", "a") as f:
        f.write(city + "\\n")
    return f"booked in {city}"


def ping() -> str:
    """Answer pong."""
    return "pong"


def boom() -> str:
    """Fail."""
    raise RuntimeError("boom")


def count_users(request):
    users = [m.content for m in request.messages if m.role == "user"]
    return text(f"{len(users)} user messages: {' | '.join(users)}")


booking = ScriptedModel([tool_call("book", city="Lisbon"), text("Booked.")])
looping = ScriptedModel([tool_call("ping")] * 200)
counting = ScriptedModel([count_users] * 10)  # a thread run counts the turns before it
toolbox = Toolbox([book, ping, boom])


class Explodes:
    name = "explodes"

    def agent_step_start(self, ctx):
        raise ValueError("this plugin is broken")
'''

BIN = Path(sys.executable).parent


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "newcomer_tools.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in list(os.environ):
        if name.startswith("AGENT_KERNEL") or name in ("NO_COLOR", "FORCE_COLOR", "PYTHONPATH"):
            monkeypatch.delenv(name)
    return tmp_path


def console_script(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed ``agent-kernel`` script, run in `project` with no PYTHONPATH: as a user runs it."""
    return run_words(project, [str(BIN / "agent-kernel"), *args], **env)


def run_words(project: Path, words: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_KERNEL") and k != "PYTHONPATH"}
    environment.update(XDG_CONFIG_HOME=str(project / "xdg"), **env)
    return subprocess.run(
        words, cwd=project, env=environment, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def toml(project: Path, name: str, plugins: list[str], extra: str = "") -> None:
    listed = ", ".join(f'"{p}"' for p in plugins)
    body = f'[agent]\nmodel = "scripted"\nautoload = false\nplugins = [{listed}]\n{extra}'
    (project / name).write_text(body)


def test_the_cli_step_limit_defaults_to_50_and_is_set_by_option_or_file(project: Path) -> None:
    toml(project, "agent.toml", ["newcomer_tools:looping", "newcomer_tools:toolbox"])
    stopped = console_script(project, "run", "loop", "--max-steps", "3")
    assert stopped.returncode == 3, stopped.stderr
    assert "limit.steps" in stopped.stderr and "steps 3 ·" in stopped.stderr
    default = console_script(project, "run", "loop")
    assert default.returncode == 3 and "steps 50 ·" in default.stderr, default.stderr
    toml(project, "agent.toml", ["newcomer_tools:looping", "newcomer_tools:toolbox"], "max_steps = 4\n")
    assert "steps 4 ·" in console_script(project, "run", "loop").stderr
    unlimited = console_script(project, "run", "loop", "--max-steps", "none")
    assert unlimited.returncode == 1, unlimited.stderr  # the script runs out of turns past step 200
    assert "steps 201 ·" in unlimited.stderr
    bad = console_script(project, "run", "loop", "--max-steps", "ten")
    assert bad.returncode == 2
    assert 'option agent.max_steps: agent.max_steps: expected a positive integer, or 0 or "none"' in bad.stderr


def test_config_sets_the_agents_step_limit(project: Path) -> None:
    for value, expected in (("7", 7), ("0", None), ('"none"', None), ('"None"', None)):
        (project / "agent.toml").write_text(f"[agent]\nmax_steps = {value}\nautoload = false\n")
        assert load_config(user=False).make_agent().max_steps == expected
    (project / "agent.toml").write_text("[agent]\nautoload = false\n")
    assert load_config(user=False).make_agent().max_steps == DEFAULT_MAX_STEPS
    (project / "agent.toml").write_text("[agent]\nmax_steps = -2\n")
    with pytest.raises(ConfigError, match=r"agent\.toml: agent\.max_steps: expected a positive integer"):
        load_config(user=False)


def resume_words(stderr: str, marker: str) -> list[str]:
    """The command printed after `marker`, as words, with the installed script in place of ``agent-kernel``."""
    line = next(line for line in stderr.splitlines() if marker in line)
    words = shlex.split(line.split(marker, 1)[1])
    assert words[0] == "agent-kernel"
    return [str(BIN / "agent-kernel"), *words[1:]]


def test_the_printed_resume_command_carries_the_options_and_resumes(project: Path) -> None:
    # everything the run needs comes from options: without them, resuming fails
    (project / "custom.toml").write_text("[agent]\nautoload = true\n")
    options = ["-c", "custom.toml", "-m", "scripted", "-p", "newcomer_tools:booking", "-p", "newcomer_tools:toolbox"]
    options += ["--set", "plugins.approval.require=['book']", "--journal", "my runs.db", "--max-steps", "9"]
    done = console_script(project, "run", "Book Lisbon", "--run-id", "r 1", *options)
    assert done.returncode == 4, done.stderr
    words = resume_words(done.stderr, "approve with: ")
    assert words[1:4] == ["resume", "r 1", "-c"] and "my runs.db" in words and "newcomer_tools:booking" in words
    resumed = run_words(project, words)
    assert resumed.returncode == 0, resumed.stderr
    assert (project / "bookings.txt").read_text() == "Lisbon\n"


def test_an_error_outcome_says_how_to_continue(project: Path) -> None:
    toml(project, "agent.toml", ["newcomer_tools:booking", "newcomer_tools:toolbox"])
    failed = console_script(project, "run", "Go", "-p", "newcomer_tools:Explodes", "--journal", "runs.db")
    assert failed.returncode == 1
    words = resume_words(failed.stderr, "continue with: ")
    assert words[-4:] == ["-p", "newcomer_tools:Explodes", "--journal", "runs.db"]
    as_json = console_script(project, "run", "Go", "-p", "newcomer_tools:Explodes", "--json")
    last = json.loads(as_json.stdout.splitlines()[-1])
    assert last["type"] == "Outcome" and last["reason"] == "error"
    assert last["resume"].startswith("agent-kernel resume ") and "-p newcomer_tools:Explodes" in last["resume"]


def test_plugins_import_from_the_current_directory(project: Path) -> None:
    toml(project, "agent.toml", ["newcomer_tools:booking", "newcomer_tools:toolbox"])
    done = console_script(project, "run", "Book Lisbon", "--no-input")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Booked.\n"
    toml(project, "agent.toml", ["missing_tools:tools"])
    failed = console_script(project, "run", "hi")
    assert failed.returncode == 2
    assert "cannot import 'missing_tools:tools' (No module named 'missing_tools'" in failed.stderr
    assert f"looked in the current directory {project} and sys.path" in failed.stderr


def test_an_installed_module_is_not_shadowed_by_the_current_directory(project: Path) -> None:
    (project / "json.py").write_text("raise SystemExit('the current directory shadowed json')\n")
    assert import_object("json:dumps", "test") is json.dumps


def test_help_does_not_import_the_plugins(project: Path) -> None:
    script = (
        "import sys\nfrom agent_kernel._cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('agent_plugin_')))\n"
    )
    done = run_words(project, [sys.executable, "-c", script])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert "installed plugins add more commands" in done.stdout


# ---------------------------------------------------------------------- config check


def test_config_check_rejects_an_unknown_model_string(project: Path) -> None:
    (project / "agent.toml").write_text('[agent]\nmodel = "gpt-4o-mini"\nblock = ["approval"]\n')
    done = console_script(project, "config", "check")
    assert done.returncode == 2
    assert "agent.toml: agent.model: no LLM executor for model 'gpt-4o-mini'" in done.stderr
    assert "did you mean" in done.stderr and "openai:gpt-4o-mini" in done.stderr
    as_json = console_script(project, "config", "check", "--json")
    assert as_json.returncode == 2
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["error"] == "configuration"
    assert any("openai:gpt-4o-mini" in line for line in data["problems"])
    (project / "agent.toml").write_text('[agent]\nmodel = "openai:gpt-4o-mini"\nblock = ["approval"]\n')
    good = console_script(project, "config", "check", "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["ok"] is True


@pytest.mark.parametrize(
    "key", ["token", "auth_token", "access_token", "refresh_token", "api_key", "apikey", "client_secret", "password"]
)
def test_secret_names_are_refused(key: str) -> None:
    assert _secret(key)


@pytest.mark.parametrize(
    "key", ["chars_per_token", "max_tokens", "eos_token", "stop_token", "tokens", "api_key_env", "token_env"]
)
def test_names_with_token_that_are_settings_are_allowed(key: str) -> None:
    assert not _secret(key)


def test_the_documented_chars_per_token_is_accepted(project: Path) -> None:
    (project / "agent.toml").write_text("[plugins.limits]\nchars_per_token = 3.5\nmax_input_tokens = 1000\n")
    assert load_config(user=False).plugins["limits"].chars_per_token == 3.5


@pytest.mark.parametrize(
    "header",
    ['Authorization = "Bearer sk-abcdefgh1234"', '"X-Api-Key" = "abc"', 'X-Custom = "sk-proj-abcdefghijkl"'],
)
def test_a_secret_in_a_header_is_refused_without_being_shown(project: Path, header: str) -> None:
    (project / "agent.toml").write_text(f"[plugins.openai]\nheaders = {{ {header} }}\n")
    with pytest.raises(ConfigError) as info:
        load_config(user=False)
    message = str(info.value)
    assert "agent.toml: plugins.openai.headers." in message and "*_env" in message
    assert "abc" not in message


def test_config_check_never_prints_a_header_value(project: Path) -> None:
    (project / "agent.toml").write_text('[plugins.openai]\nheaders = { X-Title = "my-private-app" }\n')
    for args in (["config", "check"], ["config", "check", "--json"]):
        done = console_script(project, *args)
        assert done.returncode == 0, done.stderr
        assert "my-private-app" not in done.stdout and "<hidden>" in done.stdout


# ---------------------------------------------------------------------- a sign of life on a terminal


def read_all(fd: int, process: subprocess.Popen[bytes]) -> bytes:
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    return seen


@pytest.mark.parametrize("json_mode", [False, True])
def test_on_a_terminal_a_spinner_waits_for_the_model_then_is_erased(project: Path, json_mode: bool) -> None:
    toml(project, "agent.toml", ["newcomer_tools:counting"])
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(BIN / "agent-kernel"), "run", "hi", *(["--json"] if json_mode else [])],
        cwd=project,
        env={**os.environ, "XDG_CONFIG_HOME": str(project / "xdg"), "TERM": "dumb"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    try:
        shown = read_all(controller, process)
        out, _ = process.communicate(timeout=120)
    finally:
        process.kill()
        os.close(controller)
    assert process.returncode == 0
    if json_mode:
        assert b"waiting for" not in shown and b"\x1b[K" not in shown
        assert json.loads(out.splitlines()[-1])["type"] == "Outcome"
    else:
        assert "waiting for scripted…".encode() in shown
        assert shown.index("waiting for scripted…".encode()) < shown.index(b"\r\x1b[K")
        assert out == b"1 user messages: hi\n"


def test_without_a_terminal_there_is_no_spinner(project: Path) -> None:
    toml(project, "agent.toml", ["newcomer_tools:counting"])
    done = console_script(project, "run", "hi")
    assert done.returncode == 0, done.stderr
    assert "waiting for" not in done.stderr and "\x1b" not in done.stderr


# ---------------------------------------------------------------------- the plugin template, outside the repository

ROOT = Path(__file__).parent.parent
TEMPLATE = ROOT / "templates" / "agent-plugin"


def generate_plugin(dest: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "copier"), "copy", "--defaults", "--data", "name=shout", str(TEMPLATE.relative_to(cwd)), dest]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("relative_destination", [False, True])
def test_the_template_stores_its_path_relative_to_the_generated_plugin(
    tmp_path: Path, relative_destination: bool
) -> None:
    project = tmp_path / "elsewhere" / "agent-plugin-shout"
    dest = os.path.relpath(project, ROOT) if relative_destination else str(project)
    done = generate_plugin(dest, ROOT)  # as docs/tutorial.md runs it: from the repository root
    assert done.returncode == 0, done.stderr
    answers = (project / ".copier-answers.yml").read_text()
    src = next(line.split(": ", 1)[1] for line in answers.splitlines() if line.startswith("_src_path: "))
    assert not src.startswith("/"), "an absolute path works only on the machine that generated the plugin"
    assert (project / src).resolve() == TEMPLATE.resolve()

    # copier finds the template from the plugin's own directory: recopy restores a changed file
    readme = (project / "README.md").read_text()
    (project / "README.md").write_text("changed\n")
    again = subprocess.run(
        [str(BIN / "copier"), "recopy", "--defaults", "--overwrite"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert (project / "README.md").read_text() == readme


# ---------------------------------------------------------------------- threads


def test_run_with_a_thread_continues_its_conversation(project: Path) -> None:
    toml(project, "agent.toml", ["newcomer_tools:counting"], '\n[plugins.sqlite]\npath = "runs.db"\n')
    first = console_script(project, "run", "I am Ada", "--thread", "support")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "1 user messages: I am Ada\n"
    second = console_script(project, "run", "Who am I?", "--thread", "support")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "2 user messages: I am Ada | Who am I?\n"
    other = console_script(project, "run", "Hello", "--set", "agent.thread='other'")
    assert other.stdout == "1 user messages: Hello\n", other.stderr
    (project / "agent.toml").write_text(
        (project / "agent.toml").read_text().replace("autoload = false", 'autoload = false\nthread = "support"')
    )
    third = console_script(project, "run", "Again")
    assert third.stdout == "3 user messages: I am Ada | Who am I? | Again\n", third.stderr


def test_a_thread_needs_a_journal_file(project: Path) -> None:
    toml(project, "agent.toml", ["newcomer_tools:counting"])
    done = console_script(project, "run", "hi", "--thread", "support")
    assert done.returncode == 1
    assert "threads need a journal file" in done.stderr
