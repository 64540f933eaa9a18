"""Configuration: ``agent.toml`` files, the environment and command-line overrides.

Layers, each overriding the one before, key by key:

1. the user file ``$XDG_CONFIG_HOME/agent-kernel/config.toml`` (``~/.config/...``);
2. the project file ``./agent.toml`` (or the path given);
3. environment variables ``AGENT_KERNEL__<SECTION>__<KEY>`` (``__`` separates keys,
   e.g. ``AGENT_KERNEL__PLUGINS__LIMITS__MAX_STEPS=20``; keys are lowercased), values
   read as TOML values;
4. overrides from the caller (the CLI's options and ``--set KEY=VALUE``).

The ``[agent]`` table selects the model and the plugins; each ``[plugins.NAME]`` table
configures the installed plugin NAME through its settings class (see `find_settings`).
Settings are frozen attrs classes structured strictly with cattrs: an unknown key or a
bad value is a `ConfigError` naming the file, the key path and what was expected.
Secrets never come from files: a key named like one (``api_key``, ``token``...) is
refused; settings name the environment variable instead (``api_key_env``).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from attrs import Factory, field, fields, frozen, has

from ._agent import DEFAULT_MAX_STEPS
from ._plugins import GROUP
from .errors import AgentError, ConfigurationError

if TYPE_CHECKING:
    from cattrs import Converter

    from ._agent import Agent

ENV_PREFIX = "AGENT_KERNEL__"
PROJECT_FILE = "agent.toml"
#: Keys that name a secret: ``api_key``, ``password``, ``client_secret``, ``token`` and the
#: kinds of token that are credentials (``auth_token``, ``access_token``...). Other
#: ``*_token`` keys are settings, not secrets: ``chars_per_token``, ``eos_token``.
SECRET_KEY = re.compile(
    r"(^|[_-])(api[_-]?key|apikey|password|passwd|secret|private[_-]?key)$"
    r"|^((auth|access|refresh|bearer|api|session|id|oauth|bot|personal[_-]access|github|gh|hf|slack)[_-])?token$",
    re.IGNORECASE,
)
#: Header names whose values are credentials (compared case-insensitively).
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token"})
_SECRET_VALUE = re.compile(r"^\s*(bearer|basic|token)\s+\S|^\s*(sk|pk|rk|ghp|gho|ghs|hf|xox[abp])[-_]\S{8,}", re.I)

KeyPath = tuple[str | int, ...]


class ConfigError(ConfigurationError):
    """A configuration file, variable or option is wrong; the message says where and why.

    .. versionadded:: 0.1
    """


@frozen
class AgentSettings:
    """The ``[agent]`` table.

    Attributes:
        model: the model string, e.g. ``"openai:gpt-4o-mini"``.
        instructions: the system message of every new run.
        plugins: extra plugins to load, as ``"module"`` or ``"module:attribute"``
            (a class is instantiated without arguments).
        block: names of installed plugins to skip.
        autoload: load the installed plugins (entry points).
        settings: provider settings sent with every request (``temperature``...).
        max_steps: the most steps of a run (``Agent(max_steps=...)``, default 50); 0 or
            ``"none"`` removes the limit.
        thread: continue this thread of the memory plugin (its id or name; created when
            there is none): the same as ``[plugins.memory] thread``.
    """

    model: str | None = None
    instructions: str | None = None
    plugins: tuple[str, ...] = ()
    block: tuple[str, ...] = ()
    autoload: bool = True
    settings: dict[str, Any] = Factory(dict)
    max_steps: int = DEFAULT_MAX_STEPS
    thread: str | None = None


@frozen
class Config:
    """The merged configuration: `load_config` makes it, `make_agent` uses it.

    Attributes:
        agent: the ``[agent]`` table.
        plugins: each configured plugin's settings object, by plugin name.
        files: the files read, in layer order.

    .. versionadded:: 0.1
    """

    agent: AgentSettings
    plugins: Mapping[str, Any]
    files: tuple[str, ...]
    origins: Mapping[KeyPath, str] = field(repr=False)

    def plugin_objects(self) -> list[object]:
        """The plugins to pass to `Agent`: extra ``agent.plugins``, then configured ones.

        Raises:
            ConfigError: an import spec does not import, or a settings object refused
                to build its plugin.
        """
        objects = [
            import_object(spec, _where(self.origins, ("agent", "plugins", i)))
            for i, spec in enumerate(self.agent.plugins)
        ]
        for name, settings in self.plugins.items():
            if name in self.agent.block:
                continue
            try:
                objects.append(settings.plugin())
            except (ValueError, TypeError, AgentError) as exc:
                raise ConfigError(f"{_where(self.origins, ('plugins', name))}: {exc}") from exc
        return objects

    def make_agent(self, plugins: Iterable[object] = ()) -> Agent:
        """An `Agent` with this configuration, plus `plugins` given in code."""
        from ._agent import Agent

        return Agent(
            model=self.agent.model,
            plugins=[*self.plugin_objects(), *plugins],
            autoload=self.agent.autoload,
            block=self.agent.block,
            instructions=self.agent.instructions,
            settings=self.agent.settings,
            max_steps=self.agent.max_steps or None,
        )

    def as_dict(self) -> dict[str, Any]:
        """The merged configuration with every default filled in (it holds no secret)."""
        conv = _converter()
        return {
            "agent": conv.unstructure(self.agent),
            "plugins": {name: conv.unstructure(s) for name, s in self.plugins.items()},
        }

    def secret_variables(self) -> dict[str, bool]:
        """Environment variables named by ``*_env`` settings, and whether each is set."""
        found: dict[str, bool] = {}

        def walk(value: Any, key: str = "") -> None:
            if key.endswith("_env"):  # a name, a list of names or a table of names
                names = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
                for name in names:
                    if isinstance(name, str) and name:
                        found[name] = bool(os.environ.get(name))
            elif isinstance(value, dict):
                for k, v in value.items():
                    walk(v, k)

        walk(self.as_dict())
        return found


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/agent-kernel/config.toml``, with ``~/.config`` as the default base."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "agent-kernel" / "config.toml"


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    user: bool = True,
) -> Config:
    """Read and merge the configuration layers, then check and structure them.

    Args:
        path: the project file; ``./agent.toml`` when omitted (optional then, required
            when given).
        overrides: dotted key paths to values (``{"agent.model": "scripted"}``), the
            last layer.
        env: the environment to read ``AGENT_KERNEL__*`` and ``XDG_CONFIG_HOME`` from
            (default `os.environ`).
        user: read the user file.

    Raises:
        ConfigError: every problem found, one per line, each naming where it came from.

    .. versionadded:: 0.1
    """
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    origins: dict[KeyPath, str] = {}
    layers: list[tuple[str, dict[str, Any]]] = []
    if user:
        user_file = user_config_path(env)
        if user_file.is_file():
            layers.append((str(user_file), _read_toml(user_file, str(user_file))))
    project = Path(path) if path is not None else Path(PROJECT_FILE)
    if path is not None and not project.is_file():
        raise ConfigError(f"{os.fspath(path)}: no such configuration file")
    if project.is_file():
        label = os.fspath(path) if path is not None else PROJECT_FILE
        layers.append((label, _read_toml(project, label)))
    files = [label for label, _ in layers]
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            keys = name[len(ENV_PREFIX) :].lower().split("__")
            layers.append((f"environment variable {name}", _nest(keys, _parse_value(env[name]), name)))
    for dotted, value in (overrides or {}).items():
        layers.append((f"option {dotted}", _nest(dotted.split("."), value, dotted)))
    for label, data in layers:
        _merge(merged, data, (), label, origins)
    return _structure(merged, origins, tuple(files))


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"plugins.limits.max_steps=20"`` -> ``("plugins.limits.max_steps", 20)`` (a TOML value or a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. plugins.limits.max_steps=20")
    return key.strip(), _parse_value(value.strip())


def find_settings(name: str) -> tuple[type, str] | None:
    """The settings class of the installed plugin `name`, and its distribution.

    The convention: the entry point's object, or else the top-level package of its
    module, has an attribute ``Settings``, an attrs class whose instances have a
    ``plugin()`` method returning the plugin object to register. Returns None when
    the plugin takes no settings.

    Raises:
        ConfigError: no installed plugin is named `name`.

    .. versionadded:: 0.1
    """
    from importlib_metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    ep = found.get(name)
    if ep is None:
        installed = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"no installed plugin is named {name!r} (installed: {installed})")
    dist = ep.dist.name if ep.dist else "?"
    try:
        obj = ep.load()
    except Exception as exc:
        raise ConfigError(f"plugin {name!r} from {dist} failed to load: {exc!r}") from exc
    settings = getattr(obj, "Settings", None)
    if settings is None:
        settings = getattr(importlib.import_module(ep.module.partition(".")[0]), "Settings", None)
    if settings is None or not has(settings) or not callable(getattr(settings, "plugin", None)):
        return None
    return settings, dist


# ---------------------------------------------------------------------- reading and merging


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read it: {exc.strerror}") from None


def _parse_value(text: str) -> Any:
    """A TOML value (``20``, ``true``, ``["a"]``, ``"x"``), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _nest(keys: list[str], value: Any, label: str) -> dict[str, Any]:
    if not all(keys):
        raise ConfigError(f"{label}: empty key in the key path")
    out: dict[str, Any] = {keys[-1]: value}
    for key in reversed(keys[:-1]):
        out = {key: out}
    return out


def _merge(
    into: dict[str, Any], data: Mapping[str, Any], path: KeyPath, label: str, origins: dict[KeyPath, str]
) -> None:
    """Deep-merge `data` into `into`: tables merge key by key, other values replace."""
    for key, value in data.items():
        here = (*path, key)
        origins[here] = label
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, here, label, origins)
        elif isinstance(value, dict):
            into[key] = {}
            _merge(into[key], value, here, label, origins)
        else:
            into[key] = value


# ---------------------------------------------------------------------- checking and structuring


class _Expected(Exception):
    def __init__(self, what: str, value: Any) -> None:
        super().__init__(f"expected {what}, got {_show(value)}")


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list {json.dumps(value, default=str)}"
    return json.dumps(value, default=str)


def _where(origins: Mapping[KeyPath, str], path: KeyPath) -> str:
    """``"agent.toml: plugins.limits.max_steps"``: the layer that set the path (or its table)."""
    for n in range(len(path), 0, -1):
        label = origins.get(path[:n])
        if label is not None:
            break
    else:
        label = "configuration"
    return f"{label}: {_dotted(path)}"


def _dotted(path: KeyPath) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


_SEQUENCES: tuple[Any, ...] = (list, tuple, set, frozenset, Sequence, Iterable)


def _origin(t: Any) -> Any:
    return get_origin(t)


def _converter() -> Converter:
    """A strict converter: no str -> int coercion, lists must be lists, unknown keys refused."""
    from cattrs import Converter

    def scalar(kind: type, what: str) -> Callable[[Any, Any], Any]:
        def hook(value: Any, _: Any) -> Any:
            if isinstance(value, bool) and kind is not bool:
                raise _Expected(what, value)
            if kind is float and isinstance(value, int):
                return float(value)
            if not isinstance(value, kind):
                raise _Expected(what, value)
            return value

        return hook

    def make(strict_containers: bool) -> Converter:
        conv = Converter(forbid_extra_keys=True, detailed_validation=True)
        for kind, what in ((str, "a string"), (int, "an integer"), (float, "a number"), (bool, "true or false")):
            conv.register_structure_hook(kind, scalar(kind, what))
        conv.register_structure_hook(Any, lambda value, _: value)

        def literal(value: Any, t: Any) -> Any:
            choices = get_args(t)
            if not any(value == c and type(value) is type(c) for c in choices):
                raise _Expected("one of " + ", ".join(json.dumps(c) for c in choices), value)
            return value

        conv.register_structure_hook_func(lambda t: _origin(t) is Literal, literal)
        if strict_containers:
            loose = make(False)

            def container(t: Any) -> Callable[[Any, Any], Any]:
                inner = loose.get_structure_hook(t)
                what, kind = ("a list", list) if _origin(t) in _SEQUENCES else ("a table", dict)

                def hook(value: Any, _: Any) -> Any:
                    if not isinstance(value, kind):
                        raise _Expected(what, value)
                    return inner(value, t)

                return hook

            conv.register_structure_hook_factory(
                lambda t: _origin(t) in (*_SEQUENCES, dict, Mapping) and not has(t), container
            )
        return conv

    return make(True)


def _errors(exc: BaseException, path: KeyPath) -> list[tuple[KeyPath, str]]:
    """Flatten cattrs' validation errors to (key path, message) pairs."""
    from cattrs.errors import (
        AttributeValidationNote,
        ClassValidationError,
        ForbiddenExtraKeysError,
        IterableValidationError,
        IterableValidationNote,
    )

    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = ", ".join(f.name for f in fields(exc.cl))
        return [((*path, key), _unknown_key(allowed)) for key in sorted(exc.extra_fields) if not _secret(key)]
    if isinstance(exc, ClassValidationError | IterableValidationError):
        out = []
        for sub in exc.exceptions:
            here = path
            for note in getattr(sub, "__notes__", ()):
                if isinstance(note, AttributeValidationNote):
                    here = (*path, note.name)
                elif isinstance(note, IterableValidationNote) and isinstance(note.index, int | str):
                    here = (*path, note.index)
            out += _errors(sub, here)
        return out
    if isinstance(exc, KeyError):
        return [(path, "missing (this key is required)")]
    if isinstance(exc, _Expected):
        return [(path, str(exc))]
    return [(path, f"{exc}")]


def _unknown_key(allowed: str) -> str:
    return f"unknown key (expected one of: {allowed})"


def _secret(key: str) -> bool:
    return bool(SECRET_KEY.search(key))


def _secret_header(name: str, value: Any) -> bool:
    """A header whose value is a credential: by its name, or by the value's look (``Bearer ...``, ``sk-...``)."""
    name = name.lower()
    return (
        name in SECRET_HEADERS
        or _secret(name.replace("-", "_"))
        or (isinstance(value, str) and bool(_SECRET_VALUE.search(value)))
    )


def _secret_paths(value: Any, path: KeyPath) -> list[tuple[KeyPath, str]]:
    if not isinstance(value, dict):
        return []
    out: list[tuple[KeyPath, str]] = []
    for key, sub in value.items():
        here = (*path, key)
        if key.endswith("_env") and isinstance(sub, dict) and all(_VARIABLE.match(str(v)) for v in sub.values()):
            continue  # a table naming environment variables (``headers_env = {X-Api-Key = "VAR"}``)
        if _secret(key):
            out.append((here, _SECRET_PROBLEM))
        elif key == "headers" and isinstance(sub, dict):
            out += [((*here, name), _SECRET_HEADER_PROBLEM) for name, v in sub.items() if _secret_header(name, v)]
        else:
            out += _secret_paths(sub, here)
    return out


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SECRET_PROBLEM = "secrets are never read from configuration: set an environment variable and name it in a *_env key"
_SECRET_HEADER_PROBLEM = (
    "a credential in a header value is a secret, never read from configuration: set an environment "
    "variable and name it in a *_env key (api_key_env sends it as the Authorization header)"
)


def redact_headers(data: Any) -> Any:
    """`data` with the value of every header (a key in a ``headers`` table) replaced by ``"<hidden>"``."""
    if isinstance(data, dict):
        return {
            k: {h: "<hidden>" for h in v} if k == "headers" and isinstance(v, dict) else redact_headers(v)
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact_headers(v) for v in data]
    return data


def _steps(value: Any) -> int:
    """``[agent] max_steps``: a positive int, or 0 / ``"none"`` for no limit (stored as 0)."""
    if isinstance(value, str) and value.strip().lower() == "none":
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Expected('a positive integer, or 0 or "none" for no limit', value)
    return value


def _structure(merged: dict[str, Any], origins: dict[KeyPath, str], files: tuple[str, ...]) -> Config:
    conv = _converter()
    problems: list[tuple[KeyPath, str]] = _secret_paths(merged, ())
    problems += [((key,), _unknown_key("agent, plugins")) for key in merged if key not in ("agent", "plugins")]
    agent = AgentSettings()
    raw_agent = merged.get("agent", {})
    if not isinstance(raw_agent, dict):
        problems.append((("agent",), str(_Expected("a table", raw_agent))))
    else:
        raw_agent = dict(raw_agent)
        if "max_steps" in raw_agent:
            try:
                raw_agent["max_steps"] = _steps(raw_agent["max_steps"])
            except _Expected as exc:
                problems.append((("agent", "max_steps"), str(exc)))
                del raw_agent["max_steps"]
        try:
            agent = conv.structure(raw_agent, AgentSettings)
        except Exception as exc:
            problems += _errors(exc, ("agent",))
    plugins: dict[str, Any] = {}
    raw_plugins = merged.get("plugins", {})
    if not isinstance(raw_plugins, dict):
        problems.append((("plugins",), str(_Expected("a table of plugin tables", raw_plugins))))
        raw_plugins = {}
    if agent.thread:
        # [agent] thread is the memory plugin's thread: [plugins.memory] thread
        memory = raw_plugins.get("memory", {})
        raw_plugins = {
            **raw_plugins,
            "memory": {**memory, "thread": agent.thread} if isinstance(memory, dict) else memory,
        }
        origins.setdefault(("plugins", "memory"), origins.get(("agent", "thread"), "configuration"))
        origins.setdefault(("plugins", "memory", "thread"), origins.get(("agent", "thread"), "configuration"))
    for name, section in raw_plugins.items():
        here: KeyPath = ("plugins", name)
        if not isinstance(section, dict):
            problems.append((here, str(_Expected("a table", section))))
            continue
        try:
            found = find_settings(name)
        except ConfigError as exc:
            problems.append((here, str(exc)))
            continue
        if found is None:
            if section:
                problems.append((here, f"plugin {name!r} takes no settings"))
            continue
        settings_class, _ = found
        try:
            plugins[name] = conv.structure(section, settings_class)
        except Exception as exc:
            problems += _errors(exc, here)
    if problems:
        raise ConfigError("\n".join(f"{_where(origins, p)}: {message}" for p, message in problems))
    return Config(agent, plugins, files, origins)


def import_object(spec: str, where: str, *, instantiate: bool = True) -> object:
    """Import ``module:attribute`` (or a module); a class is instantiated without arguments.

    With ``instantiate=False`` a class is returned as it is (a factory, for instance).
    A module that is not on ``sys.path`` is looked for in the current directory too
    (``agent.plugins = ["mytools:tools"]`` beside ``agent.toml``), as ``python -m`` does.
    """
    module_name, _, attribute = spec.partition(":")
    try:
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            top = module_name.partition(".")[0]
            if exc.name != top or os.getcwd() in sys.path or "" in sys.path:
                raise
            sys.path.append(os.getcwd())  # after everything else: never shadows an installed module
            obj = importlib.import_module(module_name)
        for part in filter(None, attribute.split(".")):
            obj = getattr(obj, part)
    except ModuleNotFoundError as exc:
        tried = f"the current directory {os.getcwd()} and sys.path" if exc.name == module_name.partition(".")[0] else ""
        raise ConfigError(
            f"{where}: cannot import {spec!r} ({exc}"
            + (f"; looked in {tried}: is the file {exc.name}.py there, or is the package installed?)" if tried else ")")
        ) from exc
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: cannot import {spec!r} ({exc})") from exc
    if instantiate and isinstance(obj, type):
        try:
            return obj()
        except Exception as exc:
            raise ConfigError(f"{where}: {spec} could not be created without arguments: {exc}") from exc
    return obj


def to_toml(data: Mapping[str, Any]) -> str:
    """Render nested tables of TOML values as TOML text (None values are left out)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            if not v:
                return "{}"
            return "{ " + ", ".join(f"{_key(k)} = {value(x)}" for k, x in v.items() if x is not None) + " }"
        return _string(str(v))

    def table(data: Mapping[str, Any], path: list[str]) -> None:
        tables = {k: v for k, v in data.items() if isinstance(v, dict) and v}
        scalars = {k: v for k, v in data.items() if v is not None and k not in tables}
        if path and (scalars or not tables):
            lines.append(("\n" if lines else "") + f"[{'.'.join(_key(p) for p in path)}]")
        lines.extend(f"{_key(k)} = {value(v)}" for k, v in scalars.items())
        for k, v in tables.items():
            table(v, [*path, k])

    table(data, [])
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _string(k)


def _string(s: str) -> str:
    """A TOML basic string."""
    escaped = (
        "\\" + ch if ch in '"\\' else f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in s
    )
    return '"' + "".join(escaped) + '"'


__all__ = [
    "AgentSettings",
    "Config",
    "ConfigError",
    "find_settings",
    "import_object",
    "load_config",
    "parse_assignment",
    "redact_headers",
    "to_toml",
    "user_config_path",
]
