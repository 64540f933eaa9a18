"""Configuration: layers, strict typed settings, error messages, secrets, building the agent."""

from __future__ import annotations

import json
import os
import tomllib
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_kernel import Agent
from agent_kernel.config import (
    Config,
    ConfigError,
    find_settings,
    load_config,
    parse_assignment,
    to_toml,
    user_config_path,
)
from agent_kernel.testing import ScriptedModel, text, tool_call

FIRST_PARTY = ["limits", "retry", "approval", "sqlite", "openai", "anthropic", "llamacpp", "guardrails", "mcp"]
REQUIRED: dict[str, dict[str, Any]] = {"approval": {"require": ["shell"]}, "sqlite": {"path": "runs.db"}}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory as the working directory; no user file, no AGENT_KERNEL__ variables."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in list(os.environ):
        if name.startswith("AGENT_KERNEL__"):
            monkeypatch.delenv(name)
    return tmp_path


def write(path: Path, text_: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text_)
    return path


def error_of(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)
    return str(info.value)


# ---------------------------------------------------------------------- layers


def test_layers_override_key_by_key_user_project_env_options(project: Path) -> None:
    user = write(
        user_config_path({"XDG_CONFIG_HOME": str(project / "xdg")}),
        '[agent]\nmodel = "user-model"\ninstructions = "from the user file"\n[plugins.limits]\nmax_steps = 1\nmax_tool_calls = 7\n',
    )
    write(project / "agent.toml", '[agent]\nmodel = "project-model"\n[plugins.limits]\nmax_steps = 2\n')
    env = {"XDG_CONFIG_HOME": str(project / "xdg"), "AGENT_KERNEL__PLUGINS__LIMITS__MAX_STEPS": "3"}

    config = load_config(env=env)
    assert config.files == (str(user), "agent.toml")
    assert config.agent.model == "project-model"
    assert config.agent.instructions == "from the user file"
    assert config.plugins["limits"].max_steps == 3
    assert config.plugins["limits"].max_tool_calls == 7

    config = load_config(env=env, overrides={"plugins.limits.max_steps": 4, "agent.model": "cli-model"})
    assert (config.agent.model, config.plugins["limits"].max_steps) == ("cli-model", 4)

    assert load_config(env=env, user=False).agent.instructions is None


def test_no_file_at_all_gives_the_defaults(project: Path) -> None:
    config = load_config()
    assert config.files == ()
    assert config.agent.model is None and config.agent.autoload and config.plugins == {}


def test_an_explicit_path_must_exist(project: Path) -> None:
    assert error_of(path="nope.toml") == "nope.toml: no such configuration file"


def test_user_config_path_follows_xdg(tmp_path: Path) -> None:
    assert user_config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "agent-kernel" / "config.toml"
    assert user_config_path({}).parts[-3:] == (".config", "agent-kernel", "config.toml")


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "c"]),
            st.integers() | st.dictionaries(st.sampled_from("xy"), st.integers(), min_size=1, max_size=2),
            max_size=3,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_merge_keeps_for_each_leaf_the_last_layer_that_set_it(layers: list[dict[str, Any]]) -> None:
    from agent_kernel.config import _merge

    merged: dict[str, Any] = {}
    origins: dict[Any, str] = {}
    for n, layer in enumerate(layers):
        _merge(merged, layer, (), f"layer{n}", origins)

    def leaves(d: dict[str, Any], path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
        out: dict[tuple[str, ...], Any] = {}
        for k, v in d.items():
            out.update(leaves(v, (*path, k)) if isinstance(v, dict) else {(*path, k): v})
        return out

    expected: dict[tuple[str, ...], Any] = {}
    for n, layer in enumerate(layers):
        for path, value in leaves(layer).items():
            # a later scalar replaces a table, and a later table replaces a scalar
            expected = {p: v for p, v in expected.items() if p[: len(path)] != path and path[: len(p)] != p}
            expected[path] = (value, f"layer{n}")
    assert {p: v for p, v in leaves(merged).items()} == {p: v for p, (v, _) in expected.items()}
    assert all(origins[p] == label for p, (_, label) in expected.items())


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[plugins.limits]\nmax_steps = "ten"', 'agent.toml: plugins.limits.max_steps: expected an integer, got "ten"'),
        ("[plugins.limits]\nmax_steps = true", "agent.toml: plugins.limits.max_steps: expected an integer, got true"),
        (
            "[plugins.limits]\nmax_duration = [1]",
            "agent.toml: plugins.limits.max_duration: expected a number, got a list [1]",
        ),
        (
            "[plugins.limits]\nstop_after_tools = 'x'",
            'agent.toml: plugins.limits.stop_after_tools: expected a list, got "x"',
        ),
        (
            "[plugins.limits]\nstop_after_tools = ['a', 3]",
            "agent.toml: plugins.limits.stop_after_tools[1]: expected a string, got 3",
        ),
        (
            "[plugins.limits]\nmax_calls_per_tool = {a = 'b'}",
            'agent.toml: plugins.limits.max_calls_per_tool.a: expected an integer, got "b"',
        ),
        (
            "[plugins.limits]\nmax_calls_per_tool = 3",
            "agent.toml: plugins.limits.max_calls_per_tool: expected a table, got 3",
        ),
        (
            "[plugins.sqlite]\ndurability = 'fast'",
            'agent.toml: plugins.sqlite.path: missing (this key is required)\nagent.toml: plugins.sqlite.durability: expected one of "commit", "batched", got "fast"',
        ),
        (
            "[plugins.retry]\njitter = 1",
            'agent.toml: plugins.retry.jitter: expected one of "full", "equal", "none", got 1',
        ),
        (
            "[agent]\nmodle = 'x'",
            "agent.toml: agent.modle: unknown key (expected one of: model, instructions, plugins, block, autoload, settings, "
            "max_steps, thread)",
        ),
        ("[agent]\nautoload = 'yes'", 'agent.toml: agent.autoload: expected true or false, got "yes"'),
        ("agent = 3", "agent.toml: agent: expected a table, got 3"),
        ("plugins = 3", "agent.toml: plugins: expected a table of plugin tables, got 3"),
        ("[plugins]\nlimits = 3", "agent.toml: plugins.limits: expected a table, got 3"),
        ("model = 'x'", "agent.toml: model: unknown key (expected one of: agent, plugins)"),
        (
            "[plugins.limits]\nmax_step = 3",
            "agent.toml: plugins.limits.max_step: unknown key (expected one of: max_steps, max_tool_calls, max_requests, max_input_tokens, max_output_tokens, max_total_tokens, max_calls_per_tool, max_duration, max_cost, prices, loop_detection, max_consecutive_tool_errors, stop_after_tools, stop_on_content, chars_per_token)",
        ),
        ("[plugins.tools]\nparallel = true", "agent.toml: plugins.tools: plugin 'tools' takes no settings"),
    ],
)
def test_bad_values_name_the_file_the_key_path_and_what_was_expected(project: Path, toml: str, message: str) -> None:
    write(project / "agent.toml", toml)
    assert error_of() == message


def test_an_unknown_plugin_lists_the_installed_ones(project: Path) -> None:
    write(project / "agent.toml", "[plugins.nope]\n")
    message = error_of()
    assert message.startswith("agent.toml: plugins.nope: no installed plugin is named 'nope' (installed: ")
    assert "limits" in message and "sqlite" in message


def test_every_problem_is_reported_at_once(project: Path) -> None:
    write(project / "agent.toml", "[agent]\nmodel = 1\n[plugins.limits]\nmax_steps = 'x'\nmax_tool_calls = 'y'\n")
    assert error_of().splitlines() == [
        "agent.toml: agent.model: expected a string, got 1",
        'agent.toml: plugins.limits.max_steps: expected an integer, got "x"',
        'agent.toml: plugins.limits.max_tool_calls: expected an integer, got "y"',
    ]


def test_the_error_names_the_layer_that_set_the_bad_value(project: Path) -> None:
    write(project / "agent.toml", "[plugins.limits]\nmax_steps = 3\n")
    env = {"AGENT_KERNEL__PLUGINS__LIMITS__MAX_STEPS": "ten"}
    assert error_of(env=env) == (
        'environment variable AGENT_KERNEL__PLUGINS__LIMITS__MAX_STEPS: plugins.limits.max_steps: expected an integer, got "ten"'
    )
    assert error_of(overrides={"plugins.limits.max_steps": "x"}) == (
        'option plugins.limits.max_steps: plugins.limits.max_steps: expected an integer, got "x"'
    )
    write(project / "other.toml", "[plugins.sqlite]\ntimeout = 1\n")
    assert error_of(path="other.toml") == "other.toml: plugins.sqlite.path: missing (this key is required)"


def test_invalid_toml_names_the_file_and_the_line(project: Path) -> None:
    write(project / "agent.toml", "[agent]\nmodel = \n")
    message = error_of()
    assert message.startswith("agent.toml: invalid TOML: ") and "line 2" in message


def test_a_settings_value_the_plugin_refuses_names_the_section(project: Path) -> None:
    write(project / "agent.toml", "[plugins.retry]\nmax_attempts = 0\n")
    config = load_config()
    with pytest.raises(ConfigError) as info:
        config.plugin_objects()
    assert str(info.value).startswith("agent.toml: plugins.retry: ")
    assert "max_attempts" in str(info.value)


def test_an_extra_plugin_that_does_not_import_is_named(project: Path) -> None:
    write(project / "agent.toml", "[agent]\nplugins = ['agent_kernel.testing:RunRecorder', 'no_such_module:x']\n")
    with pytest.raises(ConfigError) as info:
        load_config().plugin_objects()
    assert str(info.value).startswith("agent.toml: agent.plugins[1]: cannot import 'no_such_module:x'")


# ---------------------------------------------------------------------- secrets

SECRET_NAMES = st.sampled_from(
    ["api_key", "apikey", "token", "password", "secret", "client_secret", "auth_token", "API_KEY"]
)
PLAIN_NAMES = st.sampled_from(["max_tokens", "api_key_env", "token_env", "base_url", "model", "tokens"])


@given(st.lists(PLAIN_NAMES, max_size=3), SECRET_NAMES, st.text(min_size=1, max_size=20))
def test_a_secret_is_refused_wherever_it_is_in_a_file(
    tmp_path_factory: pytest.TempPathFactory, path: list[str], key: str, value: str
) -> None:
    directory = tmp_path_factory.mktemp("secret")
    table = ".".join(["plugins", "openai", *path])
    secret = "sk-SECRET-" + value
    write(directory / "agent.toml", f"[{table}]\n{key} = {to_toml({'v': secret})[4:]}")
    with pytest.raises(ConfigError) as info:
        load_config(directory / "agent.toml", user=False, env={})
    message = str(info.value)
    assert message.splitlines()[0] == (
        f"{directory / 'agent.toml'}: {table}.{key}: secrets are never read from configuration: "
        "set an environment variable and name it in a *_env key"
    )
    assert "sk-SECRET-" not in message


@pytest.mark.parametrize("name", ["max_tokens", "api_key_env", "tokens", "keyring", "secretary"])
def test_names_that_only_look_like_secrets_are_allowed(name: str) -> None:
    from agent_kernel.config import _secret

    assert not _secret(name)


def test_secrets_come_from_the_environment_and_are_never_shown(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(project / "agent.toml", '[plugins.openai]\napi_key_env = "MY_OPENAI_KEY"\n')
    monkeypatch.setenv("MY_OPENAI_KEY", "sk-very-secret")
    config = load_config()
    assert config.secret_variables() == {"MY_OPENAI_KEY": True}
    assert "sk-very-secret" not in to_toml(config.as_dict())
    openai = config.plugin_objects()[0]
    assert type(openai).__name__ == "OpenAI" and openai.api_key == "sk-very-secret"  # type: ignore[attr-defined]
    monkeypatch.delenv("MY_OPENAI_KEY")
    assert load_config().secret_variables() == {"MY_OPENAI_KEY": False}


def test_tables_and_lists_of_variable_names_are_not_secrets_and_are_reported(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        project / "agent.toml",
        "[plugins.mcp.servers.api]\n"
        'url = "http://127.0.0.1:9/mcp"\n'
        'headers_env = { X-Api-Key = "API_KEY_VAR" }\n'
        "[plugins.mcp.servers.local]\n"
        'command = "mcp-server-time"\n'
        'pass_env = ["HOME_VAR"]\n',
    )
    monkeypatch.setenv("HOME_VAR", "/home/x")
    monkeypatch.delenv("API_KEY_VAR", raising=False)
    assert load_config().secret_variables() == {"API_KEY_VAR": False, "HOME_VAR": True}


# ---------------------------------------------------------------------- values and rendering

TOML_SCALARS = (
    st.text(max_size=12)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
)
TOML_KEYS = st.text(min_size=1, max_size=8)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TOML_KEYS, inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(TOML_KEYS, TOML_VALUES, max_size=5))
def test_to_toml_round_trips_through_tomllib(data: dict[str, Any]) -> None:
    assert tomllib.loads(to_toml(data)) == data


@given(TOML_SCALARS | st.lists(st.integers(), max_size=3))
def test_an_assignment_value_is_read_as_toml(value: Any) -> None:
    rendered = to_toml({"v": value})[4:].strip()
    assert parse_assignment(f"plugins.x.y={rendered}") == ("plugins.x.y", value)


def test_an_assignment_value_that_is_not_toml_is_a_string() -> None:
    assert parse_assignment("agent.model=openai:gpt-4o-mini") == ("agent.model", "openai:gpt-4o-mini")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_assignment("agent.model")


# ---------------------------------------------------------------------- plugins and the agent


@pytest.mark.parametrize("name", FIRST_PARTY)
def test_first_party_settings_build_their_plugin_with_the_defaults(project: Path, name: str) -> None:
    found = find_settings(name)
    assert found is not None
    settings_class, dist = found
    assert dist == f"agent-plugin-{name}"
    lines = [f"[plugins.{name}]", *(f"{k} = {json.dumps(v)}" for k, v in REQUIRED.get(name, {}).items())]
    write(project / "agent.toml", "\n".join(lines))
    config = load_config()
    assert isinstance(config.plugins[name], settings_class)
    (plugin,) = config.plugin_objects()
    assert plugin.name in (name, f"{name}-config")  # type: ignore[attr-defined]
    assert tomllib.loads(to_toml(config.as_dict()))["plugins"][name]


def test_plugins_without_settings_say_so() -> None:
    assert find_settings("tools") is None


def test_a_blocked_plugin_is_checked_but_not_built(project: Path) -> None:
    write(project / "agent.toml", "[agent]\nblock = ['limits']\n[plugins.limits]\nmax_steps = 1\n")
    config = load_config()
    assert config.plugins["limits"].max_steps == 1
    assert config.plugin_objects() == []


def _agent(config: Config, turns: list[Any]) -> Agent:
    from agent_plugin_tools import Toolbox

    def add(a: int, b: int) -> int:
        """Add.

        Args:
            a: a.
            b: b.
        """
        return a + b

    return config.make_agent([ScriptedModel(turns), Toolbox([add])])


def test_the_configured_limits_stop_the_run(project: Path, run_async: Any) -> None:
    write(project / "agent.toml", "[agent]\nmodel = 'scripted'\nautoload = false\n[plugins.limits]\nmax_steps = 2\n")
    agent = _agent(load_config(), [tool_call("add", a=1, b=2)] * 5 + [text("done")])
    outcome = run_async(agent.run, "add forever")
    assert outcome.reason == "stopped" and outcome.stop.code == "limit.steps"


def test_the_configured_sqlite_journal_outlives_the_agent(project: Path, run_async: Any) -> None:
    write(
        project / "agent.toml",
        "[agent]\nmodel = 'scripted'\nautoload = false\ninstructions = 'Be brief.'\n[plugins.sqlite]\npath = 'runs.db'\n",
    )
    turns = [tool_call("add", a=1, b=2), text("3")]
    first = run_async(partial(_agent(load_config(), turns).run, run_id="r1"), "1+2?")
    assert first.reason == "completed" and (project / "runs.db").is_file()
    second = _agent(load_config(), turns)
    again = run_async(second.resume, "r1")
    assert (again.reason, again.output) == ("completed", "3")
    assert again.state.messages[0].content == "Be brief."


FIELDS = {
    "max_steps": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "max_duration": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "stop_on_content": ("a string", lambda v: isinstance(v, str)),
    "stop_after_tools": ("a list", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
}


@given(st.sampled_from(sorted(FIELDS)), TOML_VALUES)
def test_a_value_is_accepted_exactly_when_its_toml_type_fits(
    tmp_path_factory: pytest.TempPathFactory, key: str, value: Any
) -> None:
    from agent_kernel.config import _show

    what, fits = FIELDS[key]
    empty = tmp_path_factory.mktemp("empty") / "agent.toml"
    empty.write_text("")
    try:
        config = load_config(empty, user=False, env={}, overrides={f"plugins.limits.{key}": value})
    except ConfigError as error:
        assert not fits(value)
        first = str(error).splitlines()[0]
        assert first.startswith(f"option plugins.limits.{key}: plugins.limits.{key}")
        if key == "stop_after_tools" and isinstance(value, list):  # a wrong item is named by its index
            assert first.startswith(f"option plugins.limits.{key}: plugins.limits.{key}[")
            assert ": expected a string, got " in first
        else:
            assert first.endswith(f": expected {what}, got {_show(value)}")
    else:
        assert fits(value)
        got = getattr(config.plugins["limits"], key)
        expected = tuple(value) if isinstance(value, list) else float(value) if key == "max_duration" else value
        assert got == expected and type(got) is type(expected)
