"""Registrars handed to the registration hooks, and the protocols of what they hold.

Every registered item records the plugin it came from. The kernel calls a
registration hook one implementation at a time (`register`), with the registrar
bound to that implementation's plugin, so plugin authors never repeat their own name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from attrs import field, frozen

from ._state import ApprovalRequest, Decision, Request, Response, RunState, StateKey, ToolCall, ToolResult, ToolSpec
from .errors import AgentError, ConfigurationError, PluginLoadError

if TYPE_CHECKING:
    import pluggy

    from .journal import Journal


class Deltas(Protocol):
    """Where an executor reports streamed pieces of its answer as they arrive."""

    def text(self, text: str) -> None:
        """A piece of assistant text."""

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> None:
        """A piece of tool call `index`: its id and name (once known) and an argument fragment."""


@runtime_checkable
class ModelExecutor(Protocol):
    """Runs one inference. Raise `InferenceError` (with `retryable`) on failure."""

    async def infer(self, request: Request, deltas: Deltas) -> Response: ...


@frozen
class ToolContext:
    """What a running tool may know about its call.

    `idempotency_key` is stable across retries and resumes: `run_id:step:call_id`.
    `decisions` holds the decisions for the requests of the tool's last
    `ToolSuspended`, when it is called again after them (otherwise it is empty).
    """

    run_id: str
    step: int
    call_id: str
    attempt: int
    state: RunState
    decisions: Mapping[str, Decision] = field(factory=dict)

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.step}:{self.call_id}"


ToolFunction = Callable[[Mapping[str, Any], ToolContext], Awaitable[ToolResult]]


@runtime_checkable
class ToolStrategy(Protocol):
    """Decides how the ready tool calls of a step run.

    `run` must await `execute(call)` exactly once for every call and return only
    when all have finished. `concurrent` says whether calls may overlap; the kernel
    then evaluates their hooks on one snapshot and merges their patches in call order.
    A sequential strategy starts the first call without waiting: when no hook runs in
    between, the model's response is made durable with that call's intent.
    """

    @property
    def concurrent(self) -> bool:
        """Whether calls may overlap."""

    async def run(self, calls: Sequence[ToolCall], execute: Callable[[ToolCall], Awaitable[None]]) -> None: ...


Approver = Callable[[ApprovalRequest, RunState], Awaitable[Decision | None]]


@frozen
class Registered:
    """A registered item and the plugin it came from."""

    item: Any
    plugin: str


class _Registrar:
    """Base: what is registered is attributed to `plugin`, the plugin whose hook is being called."""

    plugin = "<direct>"  # outside `register`: a registrar used by hand


class ModelRegistrar(_Registrar):
    """Passed to `agent_register_models`: maps model strings to executors."""

    def __init__(self) -> None:
        self.exact: dict[str, Registered] = {}
        self.prefixes: dict[str, Registered] = {}

    def add(self, name: str, executor: ModelExecutor) -> None:
        """Serve the model string `name` exactly (e.g. "scripted") with `executor`."""
        self._put(self.exact, name, executor)

    def add_prefix(self, prefix: str, factory: Callable[[str], ModelExecutor]) -> None:
        """Serve every model string starting with `prefix` (e.g. "openai:").

        `factory(rest)` is called lazily, once per model string, with the part after
        the prefix, and returns the executor.
        """
        self._put(self.prefixes, prefix, factory)

    def _put(self, table: dict[str, Registered], key: str, item: Any) -> None:
        plugin = self.plugin
        if key in table and table[key].plugin != plugin:
            raise ConfigurationError(
                f"model {key!r} is registered by both {table[key].plugin!r} and {plugin!r}; block one of them"
            )
        table[key] = Registered(item, plugin)


class ToolRegistrar(_Registrar):
    """Passed to `agent_register_tools`: the tools the model may call."""

    def __init__(self) -> None:
        self.tools: dict[str, tuple[ToolSpec, ToolFunction]] = {}

    def add(self, spec: ToolSpec, function: ToolFunction) -> None:
        """Offer the tool `spec` to the model; `function(arguments, context)` runs it.

        `function` raises `ToolInputError` for invalid arguments; any other exception
        goes to the `agent_on_tool_error` decision.
        """
        plugin = self.plugin
        if spec.name in self.tools:
            other = self.tools[spec.name][0].plugin
            raise ConfigurationError(f"tool {spec.name!r} is registered by both {other!r} and {plugin!r}")
        if not spec.plugin:
            spec = ToolSpec(spec.name, spec.description, spec.parameters, spec.idempotent, plugin)
        self.tools[spec.name] = (spec, function)


class RuntimeRegistrar(_Registrar):
    """Passed to `agent_register_runtime`: the run's machinery.

    One tool strategy and one journal per agent (registering a second, different one
    is an error naming both plugins); any number of state keys and approvers.
    """

    def __init__(self) -> None:
        self.strategy: Registered | None = None
        self.default_strategy: Registered | None = None
        self.journal: Registered | None = None
        self.state_keys: dict[str, Registered] = {}
        self.approvers: list[Registered] = []
        self.redactors: list[Registered] = []

    def set_tool_strategy(self, strategy: ToolStrategy, *, default: bool = False) -> None:
        """Use `strategy` to run each step's tool calls.

        A `default` strategy is used only when no plugin sets a non-default one.
        """
        if default:
            if self.default_strategy is None:
                self.default_strategy = Registered(strategy, self.plugin)
            return
        self.strategy = self._single("tool strategy", self.strategy, strategy)

    def set_journal(self, journal: Journal) -> None:
        """Journal runs in `journal` instead of the in-memory default."""
        self.journal = self._single("journal", self.journal, journal)

    def add_state_key(self, key: StateKey[Any]) -> None:
        """Declare a plugin `StateKey` so its values (de)serialise with its type."""
        plugin = self.plugin
        known = self.state_keys.get(key.name)
        if known is not None and known.item is not key:
            raise ConfigurationError(f"state key {key.name!r} is declared by both {known.plugin!r} and {plugin!r}")
        self.state_keys[key.name] = Registered(key, plugin)

    def add_approver(self, approver: Approver) -> None:
        """Ask `approver(request, state)` before suspending; the first non-None decision applies."""
        self.approvers.append(Registered(approver, self.plugin))

    def add_redactor(self, redactor: Callable[[Any], Any]) -> None:
        """Pass every journal entry and event through `redactor` before it is kept or sent.

        `redactor(value)` receives an `Entry` or an `Event` and returns it, or a copy
        with secrets removed. Entries are redacted before they are folded and
        journaled, so state, requests, the journal, events and the outcome (its
        error included) all hold the redacted text. Redactors compose in
        registration order.
        """
        self.redactors.append(Registered(redactor, self.plugin))

    def _single(self, what: str, current: Registered | None, item: Any) -> Registered:
        plugin = self.plugin
        if current is not None and current.item != item:
            raise ConfigurationError(f"{what} is registered by both {current.plugin!r} and {plugin!r}; block one")
        return Registered(item, plugin)


class CommandRegistrar(_Registrar):
    """Passed to `agent_register_commands`: extra `agent-kernel` subcommands."""

    def __init__(self) -> None:
        self.commands: dict[str, Registered] = {}

    def add(self, name: str, configure: Callable[[Any], None], run: Callable[[Any], int], help: str = "") -> None:
        """Add subcommand `name`: `configure(parser)` adds arguments, `run(args)` returns the exit code."""
        if name in self.commands:
            raise ConfigurationError(
                f"command {name!r} is registered by both {self.commands[name].plugin!r} and {self.plugin!r}"
            )
        self.commands[name] = Registered((configure, run, help), self.plugin)


def register(caller: pluggy.HookCaller, registrar: _Registrar) -> None:
    """Call every implementation of registration hook `caller`, in pluggy's call order,
    each with `registrar` bound to its own plugin.

    Raises:
        PluginLoadError: an implementation raised (naming its plugin); an `AgentError`
            it raised (a clash both plugins are named in) passes through.
    """
    for impl in reversed(caller.get_hookimpls()):
        registrar.plugin = impl.plugin_name
        try:
            impl.function(*[registrar for _ in impl.argnames])  # the hook's one argument, if taken
        except AgentError:
            raise
        except Exception as exc:
            raise PluginLoadError(
                f"plugin {impl.plugin_name!r} failed in {caller.name}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            registrar.plugin = _Registrar.plugin
